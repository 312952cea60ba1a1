//! Starting delivered entries and running them: fresh entries at once, entries that may have a
//! hash (references, reclaimed ones) through `start.lua` for a batch of one queue; then one
//! tracked tokio task per runnable task, holding a concurrency permit until its outcome is
//! committed. Shared by the consumer and the reclaimer (claimed entries).

use std::sync::Arc;
use std::time::Instant;

use metrics::{gauge, histogram};
use switchyard_shared::clock;
use switchyard_shared::lane;
use switchyard_shared::metrics as m;
use switchyard_shared::retry::while_unavailable;
use switchyard_shared::scripts::{self, Delivered, Runnable, Started};
use switchyard_shared::store::StoreError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::context::{Ctx, InFlight, lock};
use crate::executor::Executor;
use crate::reporter::Reporter;

/// Starts and runs tasks under the worker's permits.
#[derive(Debug, Clone)]
pub struct Runner {
    ctx: Ctx,
    executor: Executor,
    reporter: Reporter,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Ends retries of `start.lua` against an unreachable Redis at shutdown.
    shutdown: CancellationToken,
}

impl Runner {
    /// A runner whose tasks hold `permits` and are tracked by `tracker`.
    pub fn new(
        ctx: Ctx,
        executor: Executor,
        reporter: Reporter,
        permits: Arc<Semaphore>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            ctx,
            executor,
            reporter,
            permits,
            tracker,
            shutdown,
        }
    }

    /// The worker's concurrency permits.
    pub fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// Takes up to `max` free permits without waiting.
    pub fn try_permits(&self, max: usize) -> Vec<OwnedSemaphorePermit> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => out.push(p),
                Err(_) => break,
            }
        }
        out
    }

    /// Spawns each of `fresh` (first attempts of fresh entries of `queue`, delivered to this
    /// consumer) with one of `permits`. Returns how many started.
    pub fn spawn_fresh(
        &self,
        queue: &str,
        fresh: Vec<Runnable>,
        permits: &mut Vec<OwnedSemaphorePermit>,
    ) -> usize {
        let mut started = 0;
        for task in fresh {
            match permits.pop() {
                Some(permit) => {
                    self.spawn(queue.to_owned(), task, permit);
                    started += 1;
                }
                // Callers fetch no more entries than permits; should it happen anyway, the
                // entry stays pending here and is handed back at shutdown or reclaimed.
                None => warn!(task_id = %task.delivered.id, queue, "started beyond capacity"),
            }
        }
        started
    }

    /// Starts `batch` (entries of `queue` held by this consumer that may have a hash) through
    /// `start.lua` and spawns each runnable task with one of `permits`. Returns how many
    /// started; unused permits are released.
    pub async fn start_and_spawn(
        &self,
        queue: &str,
        batch: &[Delivered],
        permits: &mut Vec<OwnedSemaphorePermit>,
    ) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let ctx = &self.ctx;
        // These entries are already delivered to this consumer: keep trying while Redis is
        // away rather than leave them pending until a lease expires. Start writes nothing for a
        // run, so a start re-sent after a lost reply answers the same.
        let replies = while_unavailable("start", &self.shutdown, || async {
            let mut con = ctx.pool.get().await?;
            let now = clock::now_rfc3339();
            scripts::start(&mut *con, &ctx.batch_call(queue, &now), batch).await
        })
        .await?;
        let mut started = 0;
        for r in replies {
            match r {
                Started::Run(task) if lock(&ctx.in_flight).contains_key(&task.delivered.id) => {
                    debug!(task_id = %task.delivered.id, queue, "entry delivered again while running here");
                }
                Started::Run(task) => match permits.pop() {
                    Some(permit) => {
                        self.spawn(queue.to_owned(), task, permit);
                        started += 1;
                    }
                    // Callers fetch no more entries than permits; should it happen anyway, the
                    // entry stays pending here and is handed back at shutdown or reclaimed.
                    None => warn!(task_id = %task.delivered.id, queue, "started beyond capacity"),
                },
                Started::Skip { delivered, reason } => {
                    debug!(task_id = %delivered.id, queue, reason = reason.as_str(), "entry skipped");
                }
                Started::Dead { delivered, reason } => {
                    warn!(task_id = %delivered.id, queue, worker = %ctx.id, state = "dead", error = reason.as_str(), "task dead-lettered at start");
                }
            }
        }
        Ok(started)
    }

    fn spawn(&self, queue: String, task: Runnable, permit: OwnedSemaphorePermit) {
        if task.attempts == 1
            && let Some(created) = m::created_ms(&task.delivered.id)
        {
            histogram!(m::WORKER_WAIT_TIME, "queue" => lane::queue_part(&queue).to_owned())
                .record(clock::now_ms().saturating_sub(created) as f64 / 1000.0);
        }
        let flight = InFlight::new(queue.clone(), task.delivered.entry.clone());
        {
            let mut in_flight = lock(&self.ctx.in_flight);
            in_flight.insert(task.delivered.id.clone(), flight.clone());
            gauge!(m::WORKER_IN_FLIGHT).set(in_flight.len() as f64);
        }
        let (ctx, executor, reporter) = (
            self.ctx.clone(),
            self.executor.clone(),
            self.reporter.clone(),
        );
        self.tracker.spawn(async move {
            let began = Instant::now();
            info!(task_id = %task.delivered.id, queue = %queue, worker = %ctx.id, attempt = task.attempts, state = "running", "task started");
            let outcome = executor.execute(&task, &flight).await;
            flight.mark_committing();
            reporter.report(&queue, &task, outcome, began.elapsed()).await;
            {
                let mut in_flight = lock(&ctx.in_flight);
                in_flight.remove(&task.delivered.id);
                gauge!(m::WORKER_IN_FLIGHT).set(in_flight.len() as f64);
            }
            drop(permit);
        });
    }
}
