//! The consumer loop: fetches batches of entries from the worker's queues with `XREADGROUP`
//! under its own consumer name, as many as it has free capacity for, marks them running in one
//! `start.lua` call per queue, and runs each under a concurrency permit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use switchyard_shared::clock;
use switchyard_shared::keys::GROUP;
use switchyard_shared::scripts::{self, Delivered, StartStatus, Started};
use switchyard_shared::store::{self, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::context::{Ctx, InFlight, lock};
use crate::executor::Executor;
use crate::reporter::Reporter;

/// Longest pause between reads while Redis keeps failing.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(2);

/// Fetches and starts tasks.
#[derive(Debug)]
pub struct Consumer {
    ctx: Ctx,
    executor: Executor,
    reporter: Reporter,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    conn: Option<MultiplexedConnection>,
    /// Stream key → queue, for the worker's queues.
    streams: Vec<(String, String)>,
    errors: u32,
}

impl Consumer {
    /// A consumer whose tasks run under `permits` and are tracked by `tracker`.
    pub fn new(
        ctx: Ctx,
        executor: Executor,
        reporter: Reporter,
        permits: Arc<Semaphore>,
        tracker: TaskTracker,
    ) -> Self {
        let streams = ctx
            .cfg
            .worker_queues
            .iter()
            .map(|q| (ctx.keys.stream(q), q.clone()))
            .collect();
        Self {
            ctx,
            executor,
            reporter,
            permits,
            tracker,
            conn: None,
            streams,
            errors: 0,
        }
    }

    /// Fetches until `shutdown`. A read in progress is allowed to finish (at most
    /// `WORKER_BLOCK_MS`), so no delivered entry is dropped on the floor.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                p = self.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            match self.tick_with(permit).await {
                Ok(_) => self.errors = 0,
                Err(e) => {
                    self.errors += 1;
                    let pause = (Duration::from_millis(50) * 2u32.pow(self.errors.min(6)))
                        .min(MAX_ERROR_BACKOFF);
                    warn!(component = "consumer", error = %e, retry_in_ms = pause.as_millis() as u64, "fetch failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        debug!(component = "consumer", "stopped fetching");
    }

    /// One fetch: waits for a free slot, reads up to the free capacity, starts and spawns what
    /// it got. Returns how many tasks were started.
    pub async fn tick(&mut self) -> Result<usize, StoreError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::GaveUp("consumer: semaphore closed".into()))?;
        self.tick_with(permit).await
    }

    async fn tick_with(&mut self, first: OwnedSemaphorePermit) -> Result<usize, StoreError> {
        let mut permits = vec![first];
        while permits.len() < self.ctx.cfg.worker_batch_size {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let delivered = match self.read(permits.len()).await {
            Ok(d) => d,
            Err(e) => {
                if e.is_nogroup() {
                    // The stream or group vanished (Redis restarted empty, or an operator
                    // deleted it): recreate and read again next time.
                    let mut con = self.ctx.pool.get().await?;
                    store::ensure_groups(&mut *con, &self.ctx.keys, &self.ctx.cfg.worker_queues)
                        .await?;
                    info!(component = "consumer", "consumer groups re-created");
                    return Ok(0);
                }
                self.conn = None;
                return Err(e);
            }
        };
        let mut started = 0;
        for (queue, batch) in delivered {
            for task in self.start(&queue, &batch).await? {
                match permits.pop() {
                    Some(permit) => {
                        self.spawn(queue.clone(), task, permit);
                        started += 1;
                    }
                    // More entries than permits cannot happen (COUNT = permits), but if it
                    // did, the entry stays pending and is handed back at shutdown.
                    None => warn!(task_id = %task.id, "fetched beyond capacity"),
                }
            }
        }
        Ok(started)
    }

    async fn read(&mut self, count: usize) -> Result<Vec<(String, Vec<Delivered>)>, StoreError> {
        if self.conn.is_none() {
            let block = self.ctx.cfg.worker_block_ms;
            self.conn = Some(store::blocking_connection(&self.ctx.redis, block).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.ctx.id)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(self.ctx.cfg.worker_block_ms.as_millis() as u64)
            .arg("STREAMS");
        for (stream, _) in &self.streams {
            cmd.arg(stream);
        }
        for _ in &self.streams {
            cmd.arg(">");
        }
        let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
        let queue_of: HashMap<&str, &str> = self
            .streams
            .iter()
            .map(|(s, q)| (s.as_str(), q.as_str()))
            .collect();
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(queue) = queue_of.get(key.key.as_str()) else {
                continue;
            };
            let mut batch = Vec::new();
            for sid in key.ids {
                match sid.get::<String>("id") {
                    Some(id) => batch.push(Delivered { entry: sid.id, id }),
                    None => self.discard_malformed(&key.key, &sid.id).await,
                }
            }
            out.push(((*queue).to_owned(), batch));
        }
        Ok(out)
    }

    /// An entry without a task id was not written by a dispatcher; it can never run.
    async fn discard_malformed(&self, stream: &str, entry: &str) {
        warn!(
            component = "consumer",
            stream, entry, "entry carries no task id; discarding it"
        );
        if let Ok(mut con) = self.ctx.pool.get().await {
            let _: Result<(), _> = redis::pipe()
                .cmd("XACK")
                .arg(stream)
                .arg(GROUP)
                .arg(entry)
                .ignore()
                .cmd("XDEL")
                .arg(stream)
                .arg(entry)
                .ignore()
                .query_async(&mut *con)
                .await;
        }
    }

    async fn start(&self, queue: &str, batch: &[Delivered]) -> Result<Vec<Started>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = &self.ctx;
        let mut con = ctx.pool.get().await?;
        let now = clock::now_rfc3339();
        let replies = scripts::start(
            &mut *con,
            &ctx.keys,
            queue,
            &ctx.id,
            &now,
            &ctx.retention,
            batch,
        )
        .await?;
        let mut run = Vec::with_capacity(replies.len());
        for r in replies {
            match r.status {
                StartStatus::Run => run.push(r),
                StartStatus::Skip => {
                    debug!(task_id = %r.id, queue, reason = r.reason.as_deref().unwrap_or(""), "entry skipped");
                }
                StartStatus::Dead => {
                    warn!(task_id = %r.id, queue, worker = %ctx.id, state = "dead", error = r.reason.as_deref().unwrap_or(""), "task dead-lettered at start");
                }
            }
        }
        Ok(run)
    }

    fn spawn(&self, queue: String, task: Started, permit: OwnedSemaphorePermit) {
        let flight = InFlight {
            queue: queue.clone(),
            entry: task.entry.clone(),
            stop: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
        };
        lock(&self.ctx.in_flight).insert(task.id.clone(), flight.clone());
        let (ctx, executor, reporter) = (
            self.ctx.clone(),
            self.executor.clone(),
            self.reporter.clone(),
        );
        self.tracker.spawn(async move {
            let began = Instant::now();
            info!(task_id = %task.id, queue = %queue, worker = %ctx.id, attempt = task.attempts, state = "running", "task started");
            let outcome = executor.execute(&task, &flight).await;
            reporter.report(&queue, &task, outcome, began.elapsed()).await;
            lock(&ctx.in_flight).remove(&task.id);
            drop(permit);
        });
    }
}
