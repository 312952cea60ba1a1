//! The heartbeat: keeps this worker's registry record (`{p}worker:{id}`, TTL three intervals) and
//! its score in `{p}workers` fresh, keeps the idle time of every entry it runs fresh so a long
//! task is never taken from a live worker, and stops tasks whose entry another worker took or
//! whose cancellation was requested (a backstop for a missed pub/sub notice).

use std::collections::HashMap;

use std::sync::atomic::Ordering;

use switchyard_shared::clock;
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::record;
use switchyard_shared::registry::{self, WorkerRecord, WorkerStatus};
use switchyard_shared::scripts;
use switchyard_shared::store::StoreError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::capabilities;
use crate::context::{Ctx, InFlight, StopReason, lock};

/// Refreshes liveness.
#[derive(Debug)]
pub struct Heartbeat {
    ctx: Ctx,
}

impl Heartbeat {
    /// A heartbeat for this worker.
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }

    /// Beats every `HEARTBEAT_INTERVAL_MS` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let pace = Pace::Every(self.ctx.cfg.heartbeat_interval);
        duty::run(self, pace, shutdown).await;
    }

    /// One beat: registry record, leases, cancel backstop.
    pub async fn tick(&mut self) -> Result<(), StoreError> {
        let ctx = &self.ctx;
        let flights: Vec<(String, InFlight)> = lock(&ctx.in_flight)
            .iter()
            .map(|(id, f)| (id.clone(), f.clone()))
            .collect();
        let mut con = ctx.pool.get().await?;
        self.register(&mut con, &flights).await?;

        let mut by_queue: HashMap<&str, Vec<String>> = HashMap::new();
        for (_, f) in &flights {
            by_queue.entry(&f.queue).or_default().push(f.entry.clone());
        }
        for (queue, entries) in by_queue {
            let lost = scripts::extend(&mut *con, &ctx.keys, queue, &ctx.id, &entries).await?;
            for entry in lost {
                let Some((id, f)) = flights.iter().find(|(_, f)| f.entry == entry) else {
                    continue;
                };
                if f.is_committing() {
                    // Most likely acked by this worker's own commit since the snapshot above.
                    debug!(task_id = %id, queue, "entry left the pending list while its outcome is being committed");
                } else {
                    warn!(task_id = %id, queue, worker = %ctx.id, "lease lost: entry taken by another worker; abandoning the attempt");
                    f.stop(StopReason::LeaseLost);
                }
            }
        }
        if !flights.is_empty() {
            let mut pipe = redis::pipe();
            for (id, f) in &flights {
                pipe.hget(ctx.keys.task(&f.queue, id), record::CANCEL_REQUESTED);
            }
            let flags: Vec<Option<String>> = pipe.query_async(&mut *con).await?;
            for ((id, f), flag) in flights.iter().zip(flags) {
                if flag.as_deref() == Some("1") && f.stop_reason().is_none() {
                    debug!(task_id = %id, "cancel request found by heartbeat");
                    f.stop(StopReason::Cancelled);
                }
            }
        }
        Ok(())
    }

    async fn register(
        &self,
        con: &mut switchyard_shared::store::PooledConnection,
        flights: &[(String, InFlight)],
    ) -> Result<(), StoreError> {
        let ctx = &self.ctx;
        let in_flight: Vec<String> = flights.iter().map(|(id, _)| id.clone()).collect();
        let rec = WorkerRecord {
            id: ctx.id.clone(),
            host: host(),
            pid: std::process::id(),
            queues: ctx.cfg.worker_queues.clone(),
            concurrency: ctx.cfg.worker_concurrency as u64,
            capabilities: capabilities::served_tools(&ctx.cfg)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            providers: ctx.cfg.llm.llm_provider.clone(),
            models: ctx.cfg.llm.served_models(),
            status: WorkerStatus::of_live(ctx.draining.is_cancelled(), in_flight.len()),
            in_flight,
            processed: ctx.processed.load(Ordering::Relaxed),
            failed: ctx.failed.load(Ordering::Relaxed),
            started_at: ctx.started_at.clone(),
            last_seen: clock::now_rfc3339(),
            last_seen_ms: clock::now_ms(),
        };
        let ttl = ctx.cfg.registry_ttl();
        registry::write(&mut **con, &ctx.keys, &rec, ttl).await
    }

    /// Removes this worker's registry record (its `{p}workers` score stays, so it is listed as
    /// offline for a while).
    pub async fn deregister(&self) -> Result<(), StoreError> {
        let mut con = self.ctx.pool.get().await?;
        registry::remove(&mut *con, &self.ctx.keys, &self.ctx.id).await
    }
}

impl Duty for Heartbeat {
    const COMPONENT: &'static str = "heartbeat";
    const FAILED: &'static str = "heartbeat failed";
    type Error = StoreError;

    async fn pass(&mut self, _: &CancellationToken) -> Result<Next, StoreError> {
        self.tick().await.map(|()| Next::Continue)
    }
}

fn host() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
