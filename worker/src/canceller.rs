//! Listens on the cancel channel (`{p}cancel`) and stops the running task a cancelled id names,
//! if it runs here. The same subscription carries pause notices (`{p}pause`), passed on to the
//! paused-queue watcher. It tells the heartbeat through a [`Subscription`] whether it is subscribed
//! and since when: a notice can only be missed before a subscription or while there is none, so
//! the heartbeat re-reads the `cancel_requested` flags of all running tasks after each new
//! subscription and on every beat without one, and otherwise only those of tasks new since its
//! last beat (a notice published between `start.lua` and the task's registration here).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::context::{Ctx, StopReason, lock};

/// Whether the canceller is subscribed to the cancel channel, and which subscription: shared
/// between the canceller (writer) and the heartbeat (reader).
#[derive(Debug, Clone, Default)]
pub struct Subscription(Arc<AtomicU64>);

impl Subscription {
    /// The current subscription's number (each new one gets a higher one), or `None` while
    /// there is none.
    pub fn current(&self) -> Option<u64> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// Records a new subscription, confirmed by Redis.
    pub fn subscribed(&self) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        self.0
            .store(NEXT.fetch_add(1, Ordering::Relaxed), Ordering::Release);
    }

    /// Records that the subscription is gone.
    pub fn lost(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Pub/sub listener for cancel requests.
#[derive(Debug)]
pub struct Canceller {
    ctx: Ctx,
    subscription: Subscription,
}

impl Canceller {
    /// A listener for this worker that reports its state through `subscription`.
    pub fn new(ctx: Ctx, subscription: Subscription) -> Self {
        Self { ctx, subscription }
    }

    /// Listens until `shutdown`, reconnecting with a pause after any failure.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.listen() => if let Err(e) = r {
                    warn!(component = "canceller", error = %e, "cancel channel lost; reconnecting");
                },
            }
            self.subscription.lost();
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn listen(&self) -> redis::RedisResult<()> {
        // The Redis, the current primary (sentinel), or a seed node (a cluster forwards PUBLISH
        // to every node).
        let client = switchyard_shared::store::pubsub_client(&self.ctx.redis)
            .await
            .map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Io, "pub/sub client", e.to_string()))
            })?;
        let pubsub = tokio::time::timeout(self.ctx.redis.redis_timeout, client.get_async_pubsub())
            .await
            .map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Io, "timed out connecting for pub/sub"))
            })??;
        let (mut sink, mut messages) = pubsub.split();
        let paused_channel = self.ctx.keys.paused_channel();
        sink.subscribe(&[self.ctx.keys.cancel_channel(), paused_channel.clone()])
            .await?;
        self.subscription.subscribed();
        // A pause notice may have been missed while there was no subscription.
        self.ctx.paused.poke();
        debug!(component = "canceller", "listening for cancel requests");
        // A connection that died without a reset would look subscribed forever while every
        // notice is lost: a ping unanswered within REDIS_TIMEOUT_MS ends the subscription, and
        // the heartbeat re-reads the flags once the next one is confirmed.
        let mut probe = tokio::time::interval(self.ctx.cfg.registry_ttl());
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) if msg.get_channel_name() == paused_channel => self.ctx.paused.poke(),
                    Some(msg) => {
                        if let Ok(id) = msg.get_payload::<String>() {
                            self.handle(&id);
                        }
                    }
                    None => break,
                },
                _ = probe.tick() => {
                    let pong = tokio::time::timeout(self.ctx.redis.redis_timeout, sink.ping::<redis::Value>());
                    match pong.await {
                        Ok(r) => drop(r?),
                        Err(_) => break,
                    }
                }
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "pub/sub connection closed or unanswered",
        )))
    }

    /// Stops task `id` if it runs here. Returns whether it did.
    pub fn handle(&self, id: &str) -> bool {
        match lock(&self.ctx.in_flight).get(id) {
            Some(f) => {
                info!(task_id = id, worker = %self.ctx.id, "cancel request received; aborting task");
                f.stop(StopReason::Cancelled);
                true
            }
            None => false,
        }
    }
}
