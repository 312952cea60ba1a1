//! The switchyard dispatcher (root node): accepts chat and tool tasks over HTTP, queues them on
//! Redis streams, answers clients when workers finish, and moves delayed tasks back to their
//! queues when they are due.
//!
//! # Layout
//! - [`http`]: the API, one file per resource, errors, auth; `/v1`, the OpenAI-compatible door.
//! - [`submit`]: validation and enqueueing of a new task.
//! - [`routing`]: the queue of a chat task by its model (`MODEL_ROUTES`).
//! - [`waiter`]: tails the events streams and wakes waiting requests.
//! - [`streams`]: reads the output streams of streamed tasks and fans them out to clients.
//! - [`subscription`]: one streaming client: its task's events, in order, until the end.
//! - [`replay`]: output entries → SSE events and their ids (the same on every dispatcher).
//! - [`disconnect`]: cancel on client disconnect, with a grace period to resume a stream.
//! - [`promoter`]: moves due delayed tasks back into their streams.
//! - [`stats`]: queue statistics in one pipeline.
//! - [`sampler`]: refreshes the Prometheus queue and worker gauges every few seconds.
//! - [`recent`]: the last minute of finished tasks, for `GET /api/metrics`.
//! - [`tenants`]: what this dispatcher remembers about tenant API keys (briefly).
//! - [`ui`]: the web console at `/ui` (pages, login sessions, CSRF, the live feed).
//! - [`state`]: what handlers and duties share.
//!
//! [`run`] is the supervisor: start-up checks, background duties, serving, shutdown order.

pub mod disconnect;
pub mod http;
pub mod promoter;
pub mod recent;
pub mod replay;
pub mod routing;
pub mod sampler;
pub mod state;
pub mod stats;
pub mod streams;
pub mod submit;
pub mod subscription;
pub mod tenants;
pub mod ui;
pub mod waiter;

use std::net::SocketAddr;
use std::sync::Arc;

use switchyard_shared::config::{
    self, ConfigError, DispatcherConfig, HttpConfig, LogConfig, RedisConfig, RuntimeConfig,
};
use switchyard_shared::keys::Keys;
use switchyard_shared::retry::while_unavailable;
use switchyard_shared::scripts::Retention;
use switchyard_shared::serve;
use switchyard_shared::store::{self, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::state::AppState;
use crate::waiter::{EventTail, Waiter};

/// Everything the dispatcher reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Redis connection and key prefix.
    pub redis: RedisConfig,
    /// Logging.
    pub log: LogConfig,
    /// Threads of the async runtime.
    pub runtime: RuntimeConfig,
    /// The HTTP server (header read timeout).
    pub http: HttpConfig,
    /// Dispatcher behaviour.
    pub dispatcher: DispatcherConfig,
}

impl Settings {
    /// Reads and checks the settings from `vars` (the environment as pairs).
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        config::check_unknown(vars)?;
        Ok(Self {
            redis: RedisConfig::from_vars(vars)?,
            log: LogConfig::from_vars(vars)?,
            runtime: RuntimeConfig::from_vars(vars)?,
            http: HttpConfig::from_vars(vars)?,
            dispatcher: DispatcherConfig::from_vars(vars)?,
        })
    }
}

/// Why the dispatcher could not run.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    /// `DISPATCHER_ADDR` is not `host:port`.
    #[error("configuration: DISPATCHER_ADDR {0:?} is not an address like 0.0.0.0:3000")]
    BadAddr(String),
    /// No secret and a non-loopback address.
    #[error(
        "ROOT_NODE_SECRET is unset: refusing to listen on {0}, which is reachable from other hosts; set ROOT_NODE_SECRET, or bind a loopback address (DISPATCHER_ADDR=127.0.0.1:3000)"
    )]
    NoSecret(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Redis could not be set up.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds the shared state (pool, keys, waiter) for `settings`.
pub fn app_state(settings: &Settings) -> Result<AppState, StoreError> {
    Ok(AppState {
        pool: store::create_pool(&settings.redis)?,
        keys: Keys::new(&settings.redis.queue_prefix),
        cfg: Arc::new(settings.dispatcher.clone()),
        redis: Arc::new(settings.redis.clone()),
        retention: Retention {
            result_ttl: settings.redis.result_ttl,
            events_maxlen: settings.redis.events_maxlen,
        },
        waiter: Waiter::default(),
        streams: streams::Hub::new(settings.dispatcher.stream_buffer),
        recent: recent::Recent::default(),
        tenants: tenants::KeyCache::new(settings.dispatcher.tenant_cache),
        metrics: switchyard_shared::metrics::install(),
    })
}

/// Runs the dispatcher until `shutdown`: then stops accepting, answers the requests in flight,
/// stops the background duties and returns.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), DispatcherError> {
    let addr: SocketAddr = settings
        .dispatcher
        .dispatcher_addr
        .parse()
        .map_err(|_| DispatcherError::BadAddr(settings.dispatcher.dispatcher_addr.clone()))?;
    if settings.dispatcher.root_node_secret.is_none() {
        if !addr.ip().is_loopback() {
            return Err(DispatcherError::NoSecret(addr));
        }
        warn!(%addr, "ROOT_NODE_SECRET is unset: /api/* is open to anyone who can reach this loopback address");
    }
    let state = app_state(&settings)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DispatcherError::Bind { addr, source })?;

    // Groups exist before any task is enqueued, so XINFO works and no entry predates its group.
    while_unavailable("start-up", &shutdown, || async {
        let mut con = state.pool.get().await?;
        store::ensure_groups(&mut *con, &state.keys, &state.cfg.queues).await
    })
    .await?;

    let background = CancellationToken::new();
    let tail = EventTail::new(
        state.waiter.clone(),
        state.recent.clone(),
        settings.redis.clone(),
        &state.keys,
        &state.cfg.queues,
    );
    let tail = tokio::spawn(tail.run(background.clone()));
    let promoter = promoter::Promoter::new(
        state.pool.clone(),
        state.keys.clone(),
        state.cfg.queues.clone(),
        state.cfg.promote_interval,
    );
    let promoter = tokio::spawn(promoter.run(background.clone()));
    let outputs = streams::OutputTail::new(
        state.streams.clone(),
        state.pool.clone(),
        settings.redis.clone(),
    );
    let outputs = tokio::spawn(outputs.run(background.clone()));
    let sampler = tokio::spawn(sampler::Sampler::new(state.clone()).run(background.clone()));
    let upkeep = tokio::spawn(switchyard_shared::metrics::upkeep(
        state.metrics.clone(),
        background.clone(),
    ));

    info!(%addr, queues = ?state.cfg.queues, "dispatcher listening");
    let waiter = state.waiter.clone();
    let hub = state.streams.clone();
    // On shutdown: stop accepting, answer waiting requests with the task's state as it is (the
    // task itself goes on), end the SSE streams (their clients resume on another dispatcher),
    // and let requests in flight finish.
    let stopping = async move {
        shutdown.cancelled().await;
        waiter.close();
        hub.close();
    };
    serve::serve(listener, http::router(state), settings.http, stopping).await;
    background.cancel();
    let _ = tokio::join!(tail, promoter, outputs, sampler, upkeep);
    info!("dispatcher stopped");
    Ok(())
}
