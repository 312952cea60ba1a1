//! The stats sampler: every few seconds, one pipeline reads every queue's numbers and the worker
//! registry, and sets the Prometheus gauges. Scrapes then cost Redis nothing, however many
//! Prometheus servers scrape.

use std::time::{Duration, Instant};

use metrics::gauge;
use switchyard_shared::clock;
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::metrics as m;
use switchyard_shared::registry::{self, WorkerStatus};
use switchyard_shared::store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::stats::sample;

/// Workers whose last heartbeat is older than this are removed from `{p}workers`.
const FORGET_OFFLINE_MS: u64 = 86_400_000;

/// How often the gauges are refreshed.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Samples queue and worker gauges.
#[derive(Debug)]
pub struct Sampler {
    state: AppState,
}

impl Sampler {
    /// A sampler over the dispatcher's queues.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Samples every [`SAMPLE_INTERVAL`] until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        duty::run(self, Pace::Every(SAMPLE_INTERVAL), shutdown).await;
    }

    /// One sample: reads Redis and sets the gauges.
    pub async fn tick(&self) -> Result<(), StoreError> {
        let began = Instant::now();
        let mut con = self.state.pool.get().await?;
        let queues = sample(&mut *con, &self.state.keys, &self.state.cfg.queues).await?;
        let paused = switchyard_shared::paused::read(&mut *con, &self.state.keys).await?;
        drop(con);
        for q in &queues {
            let label = [("queue", q.queue.clone())];
            gauge!(m::QUEUE_DEPTH, &label).set(q.depth as f64);
            gauge!(m::QUEUE_PENDING, &label).set(q.pending as f64);
            gauge!(m::QUEUE_WAITING, &label).set(q.waiting as f64);
            if let Some(lag) = q.lag {
                gauge!(m::QUEUE_LAG, &label).set(lag as f64);
            }
            gauge!(m::QUEUE_OLDEST_PENDING_AGE, &label).set(q.oldest_pending_ms as f64 / 1000.0);
            gauge!(m::QUEUE_DELAYED, &label).set(q.delayed as f64);
            gauge!(m::QUEUE_DEAD, &label).set(q.dead as f64);
            gauge!(m::QUEUE_CONSUMERS, &label).set(q.consumers as f64);
            let is_paused = paused.contains_key(&q.queue);
            gauge!(m::QUEUE_PAUSED, &label).set(if is_paused { 1.0 } else { 0.0 });
            for (state, n) in &q.counts {
                if switchyard_shared::task::TaskState::parse(state).is_some() {
                    gauge!(m::TASKS_BY_STATE, "queue" => q.queue.clone(), "state" => state.clone())
                        .set(*n as f64);
                }
            }
        }
        // Workers offline for a day are forgotten, so the registry set stays small.
        let mut con = self.state.pool.get().await?;
        let cutoff = clock::now_ms().saturating_sub(FORGET_OFFLINE_MS);
        let _: i64 = redis::cmd("ZREMRANGEBYSCORE")
            .arg(self.state.keys.workers())
            .arg("-inf")
            .arg(cutoff)
            .query_async(&mut *con)
            .await?;
        let workers = registry::list(&mut *con, &self.state.keys, clock::now_ms()).await?;
        drop(con);
        for status in WorkerStatus::ALL {
            let n = workers.iter().filter(|w| w.status == status).count();
            gauge!(m::WORKERS, "status" => status.as_str()).set(n as f64);
        }
        gauge!(m::SAMPLE_DURATION).set(began.elapsed().as_secs_f64());
        Ok(())
    }
}

impl Duty for Sampler {
    const COMPONENT: &'static str = "sampler";
    const FAILED: &'static str = "sampling queue stats failed";
    type Error = StoreError;

    async fn pass(&mut self, _: &CancellationToken) -> Result<Next, StoreError> {
        self.tick().await.map(|()| Next::Continue)
    }
}
