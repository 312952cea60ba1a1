//! The promoter: moves tasks whose retry backoff or scheduled time has come from each queue's
//! delayed set back into its stream. Several dispatchers may run it at once; `promote.lua`
//! re-checks each id, so none is moved twice.

use redis::AsyncCommands;
use switchyard_shared::Pool;
use switchyard_shared::clock;
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::keys::Keys;
use switchyard_shared::scripts;
use switchyard_shared::store::StoreError;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Most ids promoted per script call.
const BATCH: isize = 500;

/// Promotes due delayed tasks.
#[derive(Debug)]
pub struct Promoter {
    pool: Pool,
    keys: Keys,
    queues: Vec<String>,
    interval: std::time::Duration,
}

impl Promoter {
    /// A promoter for `queues`, run every `interval`.
    pub fn new(pool: Pool, keys: Keys, queues: Vec<String>, interval: std::time::Duration) -> Self {
        Self {
            pool,
            keys,
            queues,
            interval,
        }
    }

    /// Promotes every `PROMOTE_INTERVAL_MS` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let pace = Pace::Every(self.interval);
        duty::run(self, pace, shutdown).await;
    }

    /// Moves every task due at `now_ms` back to its stream. Returns how many moved.
    pub async fn tick(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut con = self.pool.get().await?;
        let mut moved = 0;
        for q in &self.queues {
            loop {
                let due: Vec<String> = con
                    .zrangebyscore_limit(self.keys.delayed(q), "-inf", now_ms, 0, BATCH)
                    .await?;
                if due.is_empty() {
                    break;
                }
                let n = scripts::promote(&mut *con, &self.keys, q, now_ms, &due).await?;
                moved += n;
                if (due.len() as isize) < BATCH {
                    break;
                }
            }
        }
        if moved > 0 {
            debug!(component = "promoter", moved, "delayed tasks promoted");
        }
        Ok(moved)
    }
}

impl Duty for Promoter {
    const COMPONENT: &'static str = "promoter";
    const FAILED: &'static str = "promotion failed";
    type Error = StoreError;

    async fn pass(&mut self, _: &CancellationToken) -> Result<Next, StoreError> {
        self.tick(clock::now_ms()).await.map(|_| Next::Continue)
    }
}
