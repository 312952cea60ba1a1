//! Wakes requests that wait for a task to finish. One loop per dispatcher tails the `events`
//! stream of every queue (`XREAD BLOCK`, one dedicated connection) and notifies the requests
//! registered for each finished id, so a waiting request costs Redis nothing while it waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use metrics::{counter, histogram};
use redis::streams::{StreamRangeReply, StreamReadReply};
use switchyard_shared::config::RedisConfig;
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::events;
use switchyard_shared::keys::Keys;
use switchyard_shared::metrics as m;
use switchyard_shared::store::{self, StoreError};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::recent::Recent;
use crate::stats::entry_ms;

/// How long one `XREAD` blocks.
const BLOCK: Duration = Duration::from_millis(1_000);
/// Most events read per round trip.
const READ_COUNT: usize = 1_000;

type Senders = HashMap<String, Vec<oneshot::Sender<()>>>;

/// Registry of waiting requests, by task id.
#[derive(Debug, Clone, Default)]
pub struct Waiter {
    waiting: Arc<Mutex<Senders>>,
    /// Fired when the dispatcher shuts down: every wait ends at once, so shutdown is not held
    /// up by requests that could wait for minutes.
    closing: CancellationToken,
}

/// A request's place in the registry; dropping it withdraws the registration.
#[derive(Debug)]
pub struct Registration {
    id: String,
    waiter: Waiter,
    rx: Option<oneshot::Receiver<()>>,
}

impl Registration {
    /// Waits for the task's terminal event, at most `timeout` and never past shutdown. Returns
    /// whether the event came.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        tokio::select! {
            r = tokio::time::timeout(timeout, rx) => matches!(r, Ok(Ok(()))),
            () = self.waiter.closing.cancelled() => false,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut w = self.waiter.lock();
        if let Some(v) = w.get_mut(&self.id) {
            v.retain(|s| !s.is_closed());
            if v.is_empty() {
                w.remove(&self.id);
            }
        }
    }
}

impl Waiter {
    fn lock(&self) -> MutexGuard<'_, Senders> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers interest in task `id`. Register before reading the task's state, so an event
    /// between the read and the wait is not missed.
    pub fn register(&self, id: &str) -> Registration {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(id.to_owned()).or_default().push(tx);
        Registration {
            id: id.to_owned(),
            waiter: self.clone(),
            rx: Some(rx),
        }
    }

    /// Wakes every request waiting for `id`.
    pub fn notify(&self, id: &str) {
        if let Some(senders) = self.lock().remove(id) {
            for s in senders {
                let _ = s.send(());
            }
        }
    }

    /// Ends every wait now and from now on (dispatcher shutdown).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// The loop that tails the events streams.
#[derive(Debug)]
pub struct EventTail {
    waiter: Waiter,
    recent: Recent,
    /// Events stream key → queue.
    queues: HashMap<String, String>,
    redis: RedisConfig,
    conn: Option<store::Conn>,
    /// Events stream key → last id seen.
    cursors: Vec<(String, String)>,
}

impl EventTail {
    /// A tail over the events streams of `queues`.
    pub fn new(
        waiter: Waiter,
        recent: Recent,
        redis: RedisConfig,
        keys: &Keys,
        queues: &[String],
    ) -> Self {
        Self {
            waiter,
            recent,
            queues: queues.iter().map(|q| (keys.events(q), q.clone())).collect(),
            redis,
            conn: None,
            cursors: queues
                .iter()
                .map(|q| (keys.events(q), String::new()))
                .collect(),
        }
    }

    /// Tails until `shutdown`, reconnecting after failures and resuming after the last event
    /// seen, so a Redis hiccup loses no wake-up.
    pub async fn run(self, shutdown: CancellationToken) {
        // Continuous: each pass blocks in XREAD.
        duty::run(self, Pace::Continuous, shutdown).await;
    }

    /// Reads the next events (blocking up to a second) and wakes their waiters. Returns how many
    /// events it read.
    pub async fn tick(&mut self) -> Result<usize, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(store::blocking_connection(&self.redis, BLOCK).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        for (stream, cursor) in &mut self.cursors {
            if cursor.is_empty() {
                // Start after the newest event: requests registered from now on are served.
                let last: StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(&*stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(conn)
                    .await?;
                *cursor = last
                    .ids
                    .first()
                    .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
            }
        }
        let streams = self.cursors.iter().map(|(s, c)| (s.as_str(), c.as_str()));
        let reply: Option<StreamReadReply> = store::xread(READ_COUNT, BLOCK, streams)
            .query_async(conn)
            .await?;
        let mut n = 0;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(cursor) = self
                .cursors
                .iter_mut()
                .find(|(s, _)| *s == key.key)
                .map(|(_, c)| c)
            else {
                continue;
            };
            let queue = self.queues.get(&key.key).cloned().unwrap_or_default();
            for entry in key.ids {
                match events::decode(&entry) {
                    Ok(event) => {
                        for id in &event.ids {
                            self.waiter.notify(id);
                            observe(&self.recent, &queue, id, &event.state, &entry.id);
                        }
                        n += event.ids.len();
                    }
                    // Not ours (written by hand?): nothing to wake, and no reason to stop.
                    Err(e) => debug!(component = "waiter", error = %e, "skipped an event"),
                }
                *cursor = entry.id;
            }
        }
        if n > 0 {
            debug!(component = "waiter", events = n, "woke waiting requests");
        }
        Ok(n)
    }
}

impl Duty for EventTail {
    const COMPONENT: &'static str = "waiter";
    const FAILED: &'static str = "tailing events failed";
    type Error = StoreError;

    async fn pass(&mut self, shutdown: &CancellationToken) -> Result<Next, StoreError> {
        // Nothing is lost by cutting a blocked read short: the cursor only moves past events
        // that were handled.
        let r = tokio::select! {
            () = shutdown.cancelled() => return Ok(Next::Stop),
            r = self.tick() => r,
        };
        match r {
            Ok(_) => Ok(Next::Continue),
            Err(e) => {
                // The connection may be half-read; the next pass opens a fresh one.
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// Counts a finished task and its enqueue → finish latency (task id time to event time).
fn observe(recent: &Recent, queue: &str, id: &str, state: &str, event_entry: &str) {
    counter!(m::TASKS_FINISHED, "queue" => queue.to_owned(), "state" => state.to_owned())
        .increment(1);
    let (Some(created), Some(done)) = (m::created_ms(id), entry_ms(event_entry)) else {
        return;
    };
    let latency_ms = done.saturating_sub(created);
    histogram!(m::TASK_LATENCY, "queue" => queue.to_owned(), "state" => state.to_owned())
        .record(latency_ms as f64 / 1000.0);
    recent.record(done, queue, state, latency_ms);
}
