//! The state every duty of one worker shares: Redis pool and keys, its identity, settings, and
//! the registry of tasks it is running right now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use switchyard_shared::Pool;
use switchyard_shared::config::{RedisConfig, WorkerConfig};
use switchyard_shared::keys::Keys;
use switchyard_shared::scripts::{BatchCall, Retention};
use tokio_util::sync::CancellationToken;

/// Why a running task was told to stop before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A client cancelled it.
    Cancelled,
    /// Shutdown grace ran out: hand it back.
    Shutdown,
    /// Its entry now belongs to another worker: drop it silently.
    LeaseLost,
}

/// A task this worker is running.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Its queue.
    pub queue: String,
    /// Its stream entry.
    pub entry: String,
    /// Fired to stop it early; the reason is stored beside it.
    pub stop: CancellationToken,
    /// Why `stop` fired.
    pub reason: Arc<Mutex<Option<StopReason>>>,
    /// Set once the attempt ended and its outcome is being committed. From then on its entry
    /// may vanish from the pending list because this worker's own commit acked it, which is not
    /// a lost lease (and a commit after a real loss is fenced by the script anyway).
    pub committing: Arc<AtomicBool>,
}

impl InFlight {
    /// Stops the task for `reason` (the first reason wins).
    pub fn stop(&self, reason: StopReason) {
        let mut r = lock(&self.reason);
        if r.is_none() {
            *r = Some(reason);
        }
        self.stop.cancel();
    }

    /// Why the task was stopped, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *lock(&self.reason)
    }

    /// A flight for `entry` of `queue`, not stopped, not committing.
    pub fn new(queue: String, entry: String) -> Self {
        Self {
            queue,
            entry,
            stop: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
            committing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the attempt as finished, its outcome on its way to Redis.
    pub fn mark_committing(&self) {
        self.committing.store(true, Ordering::Release);
    }

    /// Whether the attempt finished and its outcome is being committed.
    pub fn is_committing(&self) -> bool {
        self.committing.load(Ordering::Acquire)
    }
}

/// Locks a mutex, recovering the data if a panicking holder poisoned it: the maps guarded here
/// stay consistent after any single insert or remove.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared by the consumer, executors, heartbeat, reclaimer and health server.
#[derive(Debug)]
pub struct WorkerContext {
    /// Consumer name in every group, and registry id.
    pub id: String,
    /// Redis pool for ordinary calls.
    pub pool: Pool,
    /// Key builder.
    pub keys: Keys,
    /// Redis settings (for dedicated connections).
    pub redis: RedisConfig,
    /// Worker settings.
    pub cfg: WorkerConfig,
    /// Result TTL and events cap.
    pub retention: Retention,
    /// Tasks running now, by task id.
    pub in_flight: Mutex<HashMap<String, InFlight>>,
    /// Tasks this worker finished successfully.
    pub processed: AtomicU64,
    /// Attempts this worker saw fail (retried, failed, dead).
    pub failed: AtomicU64,
    /// When the worker started (RFC 3339).
    pub started_at: String,
    /// Set once shutdown began: health answers `draining`.
    pub draining: CancellationToken,
    /// Which of its queues are paused (the consumer leaves them out).
    pub paused: crate::paused::PausedQueues,
}

impl WorkerContext {
    /// Ids of the tasks running now.
    pub fn in_flight_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.in_flight).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// How many tasks run now.
    pub fn in_flight_count(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// This worker's call of a batch script (`start`, `complete`) on `queue` at `now`.
    pub fn batch_call<'a>(&'a self, queue: &'a str, now: &'a str) -> BatchCall<'a> {
        BatchCall {
            keys: &self.keys,
            queue,
            consumer: &self.id,
            now,
            retention: &self.retention,
        }
    }

    /// Counts a finished task.
    pub fn count(&self, succeeded: bool) {
        let c = if succeeded {
            &self.processed
        } else {
            &self.failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle to the shared context.
pub type Ctx = Arc<WorkerContext>;
