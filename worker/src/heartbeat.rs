//! The heartbeat: keeps this worker's registry record (`{p}worker:{id}`, TTL three intervals) and
//! its score in `{p}workers` fresh every beat: that record is the worker's liveness. The entries
//! it runs need far less: their idle time is refreshed only [`LEASE_REFRESHES`] times per
//! `LEASE_TIMEOUT_MS`, so the lease backstop never takes one from a live worker, in one
//! `extend.lua` call per queue for all of them. The same call finds entries another worker took
//! (fencing), and it also runs on the first beat after any gap long enough for the record to
//! have expired, since only then can another worker's reclaimer have taken one. A task whose
//! cancellation the pub/sub notice missed is stopped too: its flag is read once when the task
//! first appears here and for all running tasks after each new subscription of the canceller
//! (and on every beat while it has none), so a held task costs Redis nothing per beat.
//!
//! [`LEASE_REFRESHES`]: switchyard_shared::config::LEASE_REFRESHES

use std::collections::{HashMap, HashSet};

use std::sync::atomic::Ordering;
use std::time::Instant;

use switchyard_shared::clock;
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::record;
use switchyard_shared::registry::{self, WorkerRecord, WorkerStatus};
use switchyard_shared::scripts;
use switchyard_shared::store::{PooledConnection, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::canceller::Subscription;
use crate::capabilities;
use crate::context::{Ctx, InFlight, StopReason, lock};

/// Refreshes liveness and leases, and backs up the cancel channel.
#[derive(Debug)]
pub struct Heartbeat {
    ctx: Ctx,
    /// The canceller's subscription state.
    cancels: Subscription,
    /// When the last registry write that succeeded was sent.
    last_beat: Option<Instant>,
    /// When the last lease refresh of every running entry that succeeded was sent.
    last_refresh: Option<Instant>,
    /// The subscription the last full read of cancel flags was made under.
    cancels_checked_under: Option<u64>,
    /// Running tasks whose cancel flag was read since they started here.
    cancels_checked: HashSet<String>,
}

/// What one beat did beyond the registry write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Running entries whose lease was refreshed (0 when no refresh was due).
    pub leases_refreshed: usize,
    /// Attempts stopped because another worker took their entry.
    pub leases_lost: usize,
    /// Cancel flags read.
    pub cancels_read: usize,
    /// Attempts stopped because their cancellation was requested.
    pub cancelled: usize,
}

impl Heartbeat {
    /// A heartbeat for this worker, backing up the canceller whose state `cancels` reports.
    pub fn new(ctx: Ctx, cancels: Subscription) -> Self {
        Self {
            ctx,
            cancels,
            last_beat: None,
            last_refresh: None,
            cancels_checked_under: None,
            cancels_checked: HashSet::new(),
        }
    }

    /// Beats every `HEARTBEAT_INTERVAL_MS` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let pace = Pace::Every(self.ctx.cfg.heartbeat_interval);
        duty::run(self, pace, shutdown).await;
    }

    /// One beat: registry record; the leases when a refresh is due or the record may have
    /// lapsed; the cancel flags the pub/sub notices may have missed.
    pub async fn tick(&mut self) -> Result<Beat, StoreError> {
        // Read first: every notice published before this subscription was confirmed set its
        // flag before the flags are read below.
        let subscription = self.cancels.current();
        let flights: Vec<(String, InFlight)> = lock(&self.ctx.in_flight)
            .iter()
            .map(|(id, f)| (id.clone(), f.clone()))
            .collect();
        let mut con = self.ctx.pool.get().await?;
        let sent = Instant::now();
        self.register(&mut con, &flights).await?;
        let lapsed = self.record_may_have_lapsed(sent);
        self.last_beat = Some(sent);

        let mut beat = Beat::default();
        let resubscribed = subscription.is_some() && subscription != self.cancels_checked_under;
        if lapsed || resubscribed || self.refresh_due(sent) {
            // Owed until it succeeds: a failed check after a lapse is retried on the next beat.
            self.last_refresh = None;
            (beat.leases_refreshed, beat.leases_lost) = self.refresh(&mut con, &flights).await?;
            self.last_refresh = Some(sent);
        }
        let full = lapsed || subscription.is_none() || resubscribed;
        (beat.cancels_read, beat.cancelled) = self.read_cancels(&mut con, &flights, full).await?;
        if full {
            self.cancels_checked_under = subscription;
        }
        Ok(beat)
    }

    /// Whether this worker's record may have expired before the write sent at `sent` landed:
    /// the previous successful write was sent too long before (a failed beat, a paused
    /// process, a slow Redis). Only then can a reclaimer have taken one of its entries, short
    /// of the lease backstop.
    fn record_may_have_lapsed(&self, sent: Instant) -> bool {
        let cfg = &self.ctx.cfg;
        // One interval of margin for the write's own trip and clock-rate differences.
        let safe = cfg.registry_ttl().saturating_sub(cfg.heartbeat_interval);
        self.last_beat
            .is_none_or(|prev| Instant::now().saturating_duration_since(prev) >= safe)
            || sent.elapsed() >= safe
    }

    /// Whether the leases are due for a refresh at `now` (half a beat early rather than a whole
    /// beat late).
    fn refresh_due(&self, now: Instant) -> bool {
        let cfg = &self.ctx.cfg;
        let due_after = cfg
            .lease_refresh()
            .saturating_sub(cfg.heartbeat_interval / 2);
        self.last_refresh
            .is_none_or(|t| now.saturating_duration_since(t) >= due_after)
    }

    /// Refreshes the lease of every running entry, one `extend.lua` call per queue, and stops
    /// the attempts whose entry another worker took. Returns (refreshed, lost).
    async fn refresh(
        &self,
        con: &mut PooledConnection,
        flights: &[(String, InFlight)],
    ) -> Result<(usize, usize), StoreError> {
        let ctx = &self.ctx;
        let mut by_queue: HashMap<&str, Vec<String>> = HashMap::new();
        for (_, f) in flights {
            by_queue.entry(&f.queue).or_default().push(f.entry.clone());
        }
        let mut lost_count = 0;
        for (queue, entries) in by_queue {
            let lost = scripts::extend(&mut **con, &ctx.keys, queue, &ctx.id, &entries).await?;
            let lost: HashSet<String> = lost.into_iter().collect();
            for (id, f) in flights.iter().filter(|(_, f)| lost.contains(&f.entry)) {
                if f.is_committing() {
                    // Most likely acked by this worker's own commit since the snapshot above.
                    debug!(task_id = %id, queue, "entry left the pending list while its outcome is being committed");
                } else {
                    warn!(task_id = %id, queue, worker = %ctx.id, "lease lost: entry taken by another worker; abandoning the attempt");
                    f.stop(StopReason::LeaseLost);
                    lost_count += 1;
                }
            }
        }
        Ok((flights.len(), lost_count))
    }

    /// Reads the cancel flags of the running tasks a notice may have missed: all of them when
    /// `full`, else those not read since they started here; stops the flagged ones. Returns
    /// (flags read, tasks stopped).
    async fn read_cancels(
        &mut self,
        con: &mut PooledConnection,
        flights: &[(String, InFlight)],
        full: bool,
    ) -> Result<(usize, usize), StoreError> {
        let ctx = &self.ctx;
        let unread: Vec<&(String, InFlight)> = flights
            .iter()
            .filter(|(id, _)| full || !self.cancels_checked.contains(id))
            .collect();
        let mut stopped = 0;
        if !unread.is_empty() {
            // One round trip for all of them, whatever their queue.
            let mut pipe = redis::pipe();
            for (id, f) in &unread {
                pipe.hget(ctx.keys.task(&f.queue, id), record::CANCEL_REQUESTED);
            }
            let flags: Vec<Option<String>> = pipe.query_async(&mut **con).await?;
            for ((id, f), flag) in unread.iter().copied().zip(flags) {
                if flag.as_deref() == Some("1") && f.stop_reason().is_none() {
                    debug!(task_id = %id, "cancel request found by heartbeat");
                    f.stop(StopReason::Cancelled);
                    stopped += 1;
                }
            }
        }
        // Forget the finished ones: the set holds only what runs now.
        self.cancels_checked = flights.iter().map(|(id, _)| id.clone()).collect();
        Ok((unread.len(), stopped))
    }

    async fn register(
        &self,
        con: &mut PooledConnection,
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
        self.tick().await.map(|_| Next::Continue)
    }
}

fn host() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
