//! The reclaimer: takes over entries whose worker is gone, so a dead worker costs its tasks only
//! a short delay. Every tick it
//! 1. finds consumers of each queue's group whose registry record (`{p}worker:{id}`) has expired
//!    and which have been idle at least as long as that record lives (clock-skew margin), claims
//!    their pending entries (`XPENDING … IDLE` + `XCLAIM`) as far as it has free capacity, runs
//!    them, and removes such a consumer from the group (`XGROUP DELCONSUMER`) once it holds
//!    nothing;
//! 2. as a backstop, claims entries idle longer than `LEASE_TIMEOUT_MS` whoever holds them
//!    (`XAUTOCLAIM`): a live but hung owner, or an entry its owner leaked.
//!
//! Claims use a minimum idle time, so when several workers reclaim at once an entry goes to
//! exactly one of them; every claimed entry goes through `start.lua` (it may have a hash: a
//! cancel request, a hand-back), which counts the attempt from the delivery count and
//! dead-letters a task whose attempts are used up (a poison task that kills every worker that
//! takes it).

use std::collections::HashMap;
use std::time::Duration;

use metrics::counter;
use redis::streams::{
    StreamClaimReply, StreamInfoConsumer, StreamInfoConsumersReply, StreamPendingCountReply,
};
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::keys::GROUP;
use switchyard_shared::lane;
use switchyard_shared::metrics as m;
use switchyard_shared::scripts::Delivered;
use switchyard_shared::store::StoreError;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::context::Ctx;
use crate::runner::Runner;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReclaimReport {
    /// Entries claimed from dead consumers and started here.
    pub from_dead: usize,
    /// Entries claimed by the lease backstop and started here.
    pub from_expired_leases: usize,
    /// Dead consumers removed from a group.
    pub consumers_removed: usize,
}

/// Reclaims dead workers' entries.
#[derive(Debug)]
pub struct Reclaimer {
    ctx: Ctx,
    runner: Runner,
    /// XAUTOCLAIM cursor per source (queue or lane), so a long pending list is swept across
    /// ticks.
    cursors: HashMap<String, String>,
}

impl Reclaimer {
    /// A reclaimer that runs what it claims through `runner`.
    pub fn new(ctx: Ctx, runner: Runner) -> Self {
        let cursors = HashMap::new();
        Self {
            ctx,
            runner,
            cursors,
        }
    }

    /// Reclaims every heartbeat interval until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let pace = Pace::Every(self.ctx.cfg.heartbeat_interval);
        duty::run(self, pace, shutdown).await;
    }

    /// One pass over every queue and every lane of it.
    pub async fn tick(&mut self) -> Result<ReclaimReport, StoreError> {
        let mut report = ReclaimReport::default();
        for source in self.ctx.paused.sources(&self.ctx.cfg.worker_queues) {
            self.reclaim_dead(&source, &mut report).await?;
            self.reclaim_expired(&source, &mut report).await?;
        }
        Ok(report)
    }

    /// The idle time beyond which a consumer without a registry record counts as dead: as long
    /// as a record outlives its last heartbeat.
    fn dead_after(&self) -> Duration {
        self.ctx.cfg.registry_ttl()
    }

    /// Claims the pending entries of `queue`'s dead consumers as far as there are free permits,
    /// runs them, and removes dead consumers that hold nothing from the group.
    async fn reclaim_dead(
        &self,
        queue: &str,
        report: &mut ReclaimReport,
    ) -> Result<(), StoreError> {
        let ctx = &self.ctx;
        let stream = ctx.keys.stream(queue);
        for c in self.dead_consumers(&stream).await? {
            if c.pending == 0 {
                self.remove_consumer(&stream, &c.name).await?;
                info!(component = "reclaimer", queue, consumer = %c.name, "removed dead consumer from the group");
                report.consumers_removed += 1;
                continue;
            }
            let mut permits = self.runner.try_permits(c.pending);
            if permits.is_empty() {
                debug!(component = "reclaimer", queue, dead_worker = %c.name, pending = c.pending, "no free capacity; leaving the entries to other workers or the next pass");
                return Ok(());
            }
            let Some(claimed) = self.claim_from(&stream, &c.name, permits.len()).await? else {
                continue;
            };
            let n = self.run_claimed(queue, claimed, &mut permits).await?;
            if n > 0 {
                info!(component = "reclaimer", queue, dead_worker = %c.name, worker = %ctx.id, entries = n, "claimed a dead worker's entries");
            }
            report.from_dead += n;
            counter!(m::WORKER_RECLAIMED, "queue" => lane::queue_part(queue).to_owned(), "source" => "dead")
                .increment(n as u64);
        }
        Ok(())
    }

    /// The consumers of `stream`'s group, other than this worker, that have been idle for
    /// [`Self::dead_after`] and whose registry record is gone.
    async fn dead_consumers(&self, stream: &str) -> Result<Vec<StreamInfoConsumer>, StoreError> {
        let ctx = &self.ctx;
        let mut con = ctx.pool.get().await?;
        let consumers: StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(GROUP)
            .query_async(&mut *con)
            .await?;
        let candidates: Vec<_> = consumers
            .consumers
            .into_iter()
            .filter(|c| c.name != ctx.id && c.idle as u128 >= self.dead_after().as_millis())
            .collect();
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let mut pipe = redis::pipe();
        for c in &candidates {
            pipe.cmd("EXISTS").arg(ctx.keys.worker(&c.name));
        }
        let alive: Vec<bool> = pipe.query_async(&mut *con).await?;
        Ok(candidates
            .into_iter()
            .zip(alive)
            .filter_map(|(c, alive)| (!alive).then_some(c))
            .collect())
    }

    /// Removes `consumer` from `stream`'s group.
    async fn remove_consumer(&self, stream: &str, consumer: &str) -> Result<(), StoreError> {
        let mut con = self.ctx.pool.get().await?;
        let _: i64 = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(stream)
            .arg(GROUP)
            .arg(consumer)
            .query_async(&mut *con)
            .await?;
        Ok(())
    }

    /// Claims up to `count` of `consumer`'s entries idle long enough to be claimed; `None`
    /// when it holds none such.
    async fn claim_from(
        &self,
        stream: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Option<StreamClaimReply>, StoreError> {
        let min_idle = self.min_claim_idle().as_millis() as u64;
        let mut con = self.ctx.pool.get().await?;
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .arg("IDLE")
            .arg(min_idle)
            .arg("-")
            .arg("+")
            .arg(count)
            .arg(consumer)
            .query_async(&mut *con)
            .await?;
        if pending.ids.is_empty() {
            return Ok(None);
        }
        let ids: Vec<&str> = pending.ids.iter().map(|p| p.id.as_str()).collect();
        let claimed: StreamClaimReply = redis::cmd("XCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(&self.ctx.id)
            .arg(min_idle)
            .arg(&ids)
            .query_async(&mut *con)
            .await?;
        Ok(Some(claimed))
    }

    /// Claims need the entry to have sat idle this long, so two reclaimers racing for one entry
    /// cannot both win: the first claim resets its idle time.
    fn min_claim_idle(&self) -> Duration {
        self.ctx.cfg.heartbeat_interval
    }

    async fn reclaim_expired(
        &mut self,
        queue: &str,
        report: &mut ReclaimReport,
    ) -> Result<(), StoreError> {
        let ctx = &self.ctx;
        let mut permits = self.runner.try_permits(ctx.cfg.worker_batch_size);
        if permits.is_empty() {
            return Ok(());
        }
        let mut con = ctx.pool.get().await?;
        let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(ctx.keys.stream(queue))
            .arg(GROUP)
            .arg(&ctx.id)
            .arg(ctx.cfg.lease_timeout.as_millis() as u64)
            .arg(self.cursors.get(queue).map_or("0-0", String::as_str))
            .arg("COUNT")
            .arg(permits.len())
            .query_async(&mut *con)
            .await?;
        drop(con);
        self.cursors
            .insert(queue.to_owned(), reply.next_stream_id.clone());
        let claimed = StreamClaimReply { ids: reply.claimed };
        let n = self.run_claimed(queue, claimed, &mut permits).await?;
        if n > 0 {
            warn!(component = "reclaimer", queue, worker = %ctx.id, entries = n, lease_ms = ctx.cfg.lease_timeout.as_millis() as u64, "claimed entries whose lease expired (owner hung?)");
        }
        report.from_expired_leases += n;
        counter!(m::WORKER_RECLAIMED, "queue" => lane::queue_part(queue).to_owned(), "source" => "lease")
            .increment(n as u64);
        Ok(())
    }

    async fn run_claimed(
        &self,
        queue: &str,
        claimed: StreamClaimReply,
        permits: &mut Vec<OwnedSemaphorePermit>,
    ) -> Result<usize, StoreError> {
        let batch: Vec<Delivered> = claimed
            .ids
            .into_iter()
            .map(|e| {
                let reference = e.get::<String>("id");
                Delivered::of(queue, e.id, reference)
            })
            .collect();
        self.runner.start_and_spawn(queue, &batch, permits).await
    }
}

impl Duty for Reclaimer {
    const COMPONENT: &'static str = "reclaimer";
    const FAILED: &'static str = "reclaim pass failed";
    type Error = StoreError;

    async fn pass(&mut self, _: &CancellationToken) -> Result<Next, StoreError> {
        let r = self.tick().await?;
        if r != ReclaimReport::default() {
            info!(component = "reclaimer", worker = %self.ctx.id, from_dead = r.from_dead, from_expired_leases = r.from_expired_leases, consumers_removed = r.consumers_removed, "reclaimed");
        }
        Ok(Next::Continue)
    }
}
