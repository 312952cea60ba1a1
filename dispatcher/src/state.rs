//! What every request handler and background duty of the dispatcher shares.

use std::sync::Arc;

use switchyard_shared::Pool;
use switchyard_shared::config::{DispatcherConfig, RedisConfig};
use switchyard_shared::keys::Keys;
use switchyard_shared::scripts::Retention;

use crate::recent::Recent;
use crate::streams::Hub;
use crate::tenants::KeyCache;
use crate::waiter::Waiter;

/// Shared state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Redis pool.
    pub pool: Pool,
    /// Key builder.
    pub keys: Keys,
    /// Dispatcher settings.
    pub cfg: Arc<DispatcherConfig>,
    /// Redis settings.
    pub redis: Arc<RedisConfig>,
    /// Result TTL and events cap.
    pub retention: Retention,
    /// Wakes requests waiting for a task to finish.
    pub waiter: Waiter,
    /// Tasks finished in the last minute, for `GET /api/metrics`.
    pub recent: Recent,
    /// Streaming clients' fan-out from the output streams.
    pub streams: Hub,
    /// What this dispatcher read about tenant API keys lately.
    pub tenants: KeyCache,
    /// Renders `GET /metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    /// Whether `queue` is one this dispatcher accepts tasks for.
    pub fn knows_queue(&self, queue: &str) -> bool {
        self.cfg.queues.iter().any(|q| q == queue)
    }
}
