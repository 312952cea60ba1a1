//! Listens on the cancel channel (`{p}cancel`) and stops the running task a cancelled id names,
//! if it runs here. The heartbeat re-checks the `cancel_requested` flag of running tasks, so a
//! notice missed while disconnected still takes effect within one interval.

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::context::{Ctx, StopReason, lock};

/// Pub/sub listener for cancel requests.
#[derive(Debug)]
pub struct Canceller {
    ctx: Ctx,
}

impl Canceller {
    /// A listener for this worker.
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
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
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn listen(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.ctx.redis.redis_url.as_str())?;
        let mut pubsub =
            tokio::time::timeout(self.ctx.redis.redis_timeout, client.get_async_pubsub())
                .await
                .map_err(|_| {
                    redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "timed out connecting for pub/sub",
                    ))
                })??;
        pubsub.subscribe(self.ctx.keys.cancel_channel()).await?;
        debug!(component = "canceller", "listening for cancel requests");
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            if let Ok(id) = msg.get_payload::<String>() {
                self.handle(&id);
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "pub/sub connection closed",
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
