//! Giving work back: on shutdown (and at start-up, for what a previous run under the same
//! `WORKER_ID` left behind) every entry still pending under this consumer is returned to its
//! queue at once, so nothing waits for a lease to expire; then the consumer leaves the groups.

use redis::streams::{StreamPendingCountReply, StreamRangeReply};
use switchyard_shared::keys::GROUP;
use switchyard_shared::scripts::{self, Delivered, RequeueStatus};
use switchyard_shared::store::StoreError;
use tracing::{info, warn};

use crate::context::Ctx;

/// Most pending entries examined per round trip.
const PAGE: usize = 100;

/// Hands every entry pending under this consumer back to its queue. Returns how many tasks went
/// back. Entries of tasks that still run here must have been stopped first.
pub async fn hand_back_pending(ctx: &Ctx) -> Result<usize, StoreError> {
    let mut handed = 0;
    let mut con = ctx.pool.get().await?;
    // Every lane of every queue: a task runs from the stream of its lane.
    for queue in &ctx.paused.sources(&ctx.cfg.worker_queues) {
        let stream = ctx.keys.stream(queue);
        loop {
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(&stream)
                .arg(GROUP)
                .arg("-")
                .arg("+")
                .arg(PAGE)
                .arg(&ctx.id)
                .query_async(&mut *con)
                .await?;
            if pending.ids.is_empty() {
                break;
            }
            for p in &pending.ids {
                let range: StreamRangeReply = redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg(&p.id)
                    .arg(&p.id)
                    .query_async(&mut *con)
                    .await?;
                // A reference entry names its task; a fresh one is its task.
                let delivered = range
                    .ids
                    .first()
                    .map(|e| Delivered::of(queue, p.id.clone(), e.get::<String>("id")));
                match delivered {
                    Some(d) => {
                        let id = &d.id;
                        if scripts::requeue(&mut *con, &ctx.keys, queue, &ctx.id, &d).await?
                            == RequeueStatus::Queued
                        {
                            info!(task_id = %id, queue, worker = %ctx.id, state = "queued", "pending task handed back");
                            handed += 1;
                        }
                    }
                    None => {
                        // The entry's data is gone (deleted); only its pending record remains.
                        let _: i64 = redis::cmd("XACK")
                            .arg(&stream)
                            .arg(GROUP)
                            .arg(&p.id)
                            .query_async(&mut *con)
                            .await?;
                    }
                }
            }
        }
    }
    Ok(handed)
}

/// Removes this consumer from every group it joined, once its pending lists are empty, so
/// `XINFO CONSUMERS` shows only live workers.
pub async fn leave_groups(ctx: &Ctx) -> Result<(), StoreError> {
    let mut con = ctx.pool.get().await?;
    for queue in &ctx.paused.sources(&ctx.cfg.worker_queues) {
        let stream = ctx.keys.stream(queue);
        let pending: i64 = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&stream)
            .arg(GROUP)
            .arg(&ctx.id)
            .query_async(&mut *con)
            .await?;
        if pending > 0 {
            warn!(
                queue,
                pending, "left the group with entries still pending; the reclaimer will take them"
            );
        }
    }
    Ok(())
}
