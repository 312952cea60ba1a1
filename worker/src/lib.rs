//! The switchyard worker: consumes queues through the `workers` consumer group, runs chat and
//! tool tasks, reports their outcomes atomically, and on shutdown gives back what it could not
//! finish.
//!
//! # Layout
//! - [`consumer`]: `XREADGROUP` batches → `start.lua` → one tokio task per task, under permits.
//! - [`runner`]: `start.lua` for a batch, then one tracked tokio task per task.
//! - [`executor`]: runs one task to exactly one [`executor::Outcome`] (timeout, panic, cancel).
//! - [`reporter`]: commits each outcome: successes via the completer, the rest by their script.
//! - [`completer`]: fuses concurrent successes into one `complete.lua` call per queue.
//! - [`reclaimer`]: claims dead or hung workers' entries and runs them.
//! - [`heartbeat`]: registry record every beat; lease refresh and fencing of running entries a
//!   few times per lease, batched per queue; cancel backstop for notices the canceller missed.
//! - [`canceller`]: pub/sub listener that aborts tasks cancelled while running, and passes on
//!   pause notices.
//! - [`paused`]: which queues are paused; the consumer leaves them out of its reads.
//! - [`lanes`]: the lanes (per-tenant, per-priority sub-streams) of the worker's queues.
//! - [`shutdown`]: hands pending entries back to their queues; leaves the groups.
//! - [`health`]: `GET /health`.
//! - [`tools`], [`providers`], [`chat`]: what tasks run.
//! - [`limiter`]: provider limits the fleet shares (budgets and pauses in Redis).
//! - [`quota`]: tenants' `max_running` slots and `tpm` budgets, shared by the fleet.
//! - [`output`]: writes a chat attempt's streamed text and tool calls to its output stream,
//!   coalesced ([`output::buffer`]).
//! - [`capabilities`]: which tools this worker serves and which queues carry them.
//! - [`backoff`]: retry delays.
//! - [`context`]: state shared by all of the above.
//!
//! [`run`] is the supervisor: it owns the start-up and shutdown order, one function a phase
//! (start, spawn duties, fetch, drain, leave).

pub mod backoff;
pub mod canceller;
pub mod capabilities;
pub mod chat;
pub mod completer;
pub mod consumer;
pub mod context;
pub mod executor;
pub mod health;
pub mod heartbeat;
pub mod lanes;
pub mod limiter;
pub mod output;
pub mod paused;
pub mod providers;
pub mod quota;
pub mod reclaimer;
pub mod reporter;
pub mod runner;
pub mod shutdown;
pub mod tools;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_shared::clock;
use switchyard_shared::config::{
    self, ConfigError, HttpConfig, LogConfig, RedisConfig, RuntimeConfig, WorkerConfig,
};
use switchyard_shared::keys::Keys;
use switchyard_shared::retry::while_unavailable;
use switchyard_shared::scripts::Retention;
use switchyard_shared::store::{self, StoreError};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::context::{StopReason, WorkerContext, lock};

/// Everything the worker reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Redis connection and key prefix.
    pub redis: RedisConfig,
    /// Logging.
    pub log: LogConfig,
    /// Threads of the async runtime.
    pub runtime: RuntimeConfig,
    /// The health server (header read timeout).
    pub http: HttpConfig,
    /// Worker behaviour.
    pub worker: WorkerConfig,
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
            worker: {
                let w = WorkerConfig::from_vars(vars)?;
                capabilities::check_queues(&w)?;
                w
            },
        })
    }
}

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Another live worker already uses this `WORKER_ID`.
    #[error(
        "another live worker already uses WORKER_ID={0}: its registry record keeps being refreshed; give each worker a unique WORKER_ID (or leave it unset for hostname-pid)"
    )]
    DuplicateId(String),
    /// Redis could not be set up before shutdown.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The health port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The chat providers could not be set up.
    #[error(transparent)]
    Provider(#[from] providers::SetupError),
    /// The enabled tools could not be set up.
    #[error(transparent)]
    Tools(#[from] tools::ToolSetupError),
}

/// Extra time, after the grace period, for interrupted tasks to be handed back.
const HAND_BACK_MARGIN: Duration = Duration::from_secs(3);

/// Runs a worker until `shutdown` fires, then stops fetching, lets running tasks finish within
/// `SHUTDOWN_GRACE_MS`, hands back the rest, deregisters and returns.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let http = settings.http;
    let (ctx, provider, toolbox) = context(settings)?;
    let listener = bind_health(&ctx).await?;
    start(&ctx, &listener, &provider, &shutdown).await?;
    let health = Health { listener, http };
    let duties = Duties::spawn(&ctx, health, provider, toolbox, &shutdown).await;
    fetch(&ctx, &duties.runner, &shutdown).await;
    // Shutdown order: stop fetching (done) → drain with a deadline → hand back → deregister.
    drain(&ctx, &duties).await;
    leave(&ctx, duties).await;
    Ok(())
}

/// The worker's shared state, its provider chain and its tools, from the settings.
fn context(
    settings: Settings,
) -> Result<(context::Ctx, providers::Provider, tools::Toolbox), WorkerError> {
    let cfg = settings.worker;
    let provider = providers::Provider::from_config(&cfg)?;
    let toolbox = tools::Toolbox::from_config(&cfg)?;
    capabilities::warn_unused(&cfg);
    let ctx = Arc::new(WorkerContext {
        id: cfg.worker_id.clone().unwrap_or_else(default_worker_id),
        pool: store::create_pool(&settings.redis)?,
        keys: Keys::new(&settings.redis.queue_prefix),
        retention: Retention {
            result_ttl: settings.redis.result_ttl,
            events_maxlen: settings.redis.events_maxlen,
        },
        redis: settings.redis,
        in_flight: Mutex::new(HashMap::new()),
        processed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        started_at: clock::now_rfc3339(),
        draining: CancellationToken::new(),
        paused: Default::default(),
        cfg,
    });
    Ok((ctx, provider, toolbox))
}

/// Binds the health port before anything else, so a taken port fails start-up at once.
async fn bind_health(ctx: &context::Ctx) -> Result<tokio::net::TcpListener, WorkerError> {
    let addr = format!("{}:{}", ctx.cfg.worker_bind, ctx.cfg.worker_port);
    tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| WorkerError::Bind { addr, source })
}

/// Start-up: the consumer groups exist, no live worker holds this id, and what an earlier run
/// of this worker left pending is handed back.
async fn start(
    ctx: &context::Ctx,
    listener: &tokio::net::TcpListener,
    provider: &providers::Provider,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    // Start-up waits for Redis rather than failing: workers often start before it.
    while_unavailable("start-up", shutdown, || async {
        let mut con = ctx.pool.get().await?;
        store::ensure_groups(&mut *con, &ctx.keys, &ctx.cfg.worker_queues).await
    })
    .await?;
    ensure_unique_id(ctx).await?;
    // The lanes (and paused queues) first: an earlier run may have left entries in lanes too.
    paused::Watcher::new(ctx.clone()).tick().await?;
    let recovered = shutdown::hand_back_pending(ctx).await?;
    if recovered > 0 {
        info!(worker = %ctx.id, recovered, "handed back tasks left by an earlier run of this worker");
    }
    let health = listener.local_addr().map_or_else(
        |_| format!("{}:{}", ctx.cfg.worker_bind, ctx.cfg.worker_port),
        |a| a.to_string(),
    );
    info!(worker = %ctx.id, queues = ?ctx.cfg.worker_queues, concurrency = ctx.cfg.worker_concurrency, health = %health, provider = %provider.name(), tools = ?capabilities::served_tools(&ctx.cfg), "worker started");
    Ok(())
}

/// The health server's bound port and settings.
struct Health {
    listener: tokio::net::TcpListener,
    http: HttpConfig,
}

/// What runs beside the consumer, and what stopping it in order needs.
struct Duties {
    /// Starts and runs tasks; shared by the consumer and the reclaimer.
    runner: runner::Runner,
    /// Every running task.
    tracker: TaskTracker,
    /// Fired only when the process must exit: ends retries against an unreachable Redis.
    give_up: CancellationToken,
    completer: JoinHandle<()>,
    /// Kept to remove the registry record last.
    heartbeat: heartbeat::Heartbeat,
    /// Stops the duties that outlive the drain (heartbeat, canceller, health, metrics).
    background: CancellationToken,
    background_tasks: Vec<JoinHandle<()>>,
}

impl Duties {
    /// Spawns the completer, heartbeat, canceller, health endpoint and metrics upkeep, and
    /// builds the runner the consumer and reclaimer share.
    async fn spawn(
        ctx: &context::Ctx,
        health: Health,
        provider: providers::Provider,
        toolbox: tools::Toolbox,
        shutdown: &CancellationToken,
    ) -> Self {
        let background = CancellationToken::new();
        let give_up = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (reporter, completer) = reporter::reporter(ctx.clone(), give_up.clone());
        let completer = tokio::spawn(completer.run());
        let subscription = canceller::Subscription::default();
        let mut heartbeat = heartbeat::Heartbeat::new(ctx.clone(), subscription.clone());
        if let Err(e) = heartbeat.tick().await {
            warn!(component = "heartbeat", error = %e, "first heartbeat failed");
        }
        let router = health::router(ctx.clone());
        let stop = background.clone();
        let permits = Arc::new(Semaphore::new(ctx.cfg.worker_concurrency));
        let slots = limiter::Slots::new(permits.clone(), ctx.cfg.worker_concurrency);
        let quotas = quota::Quotas::of(ctx, permits.clone());
        let limiter =
            limiter::Limiter::new(ctx.pool.clone(), ctx.keys.clone(), &ctx.cfg, Some(slots));
        let provider = provider.with_limiter(&limiter);
        let background_tasks = vec![
            tokio::spawn(switchyard_shared::metrics::upkeep(
                switchyard_shared::metrics::install(),
                background.clone(),
            )),
            tokio::spawn(
                heartbeat::Heartbeat::new(ctx.clone(), subscription.clone())
                    .run(background.clone()),
            ),
            tokio::spawn(
                canceller::Canceller::new(ctx.clone(), subscription).run(background.clone()),
            ),
            tokio::spawn(paused::Watcher::new(ctx.clone()).run(background.clone())),
            tokio::spawn(quotas.refresh(ctx.cfg.lease_refresh(), background.clone())),
            tokio::spawn(switchyard_shared::serve::serve(
                health.listener,
                router,
                health.http,
                stop.cancelled_owned(),
            )),
        ];
        let runner = runner::Runner::new(
            ctx.clone(),
            executor::Executor::new(ctx.clone(), provider, toolbox).with_quotas(quotas),
            reporter,
            permits,
            tracker.clone(),
            shutdown.clone(),
        );
        Self {
            runner,
            tracker,
            give_up,
            completer,
            heartbeat,
            background,
            background_tasks,
        }
    }
}

/// Takes new work (fresh entries and reclaimed ones) until `shutdown` fires.
async fn fetch(ctx: &context::Ctx, runner: &runner::Runner, shutdown: &CancellationToken) {
    // The reclaimer stops with the consumer: neither takes new work once shutdown begins.
    let reclaimer =
        tokio::spawn(reclaimer::Reclaimer::new(ctx.clone(), runner.clone()).run(shutdown.clone()));
    consumer::Consumer::new(ctx.clone(), runner.clone())
        .run(shutdown.clone())
        .await;
    let _ = reclaimer.await;
}

/// Lets running tasks finish within the grace period, then stops the rest so they are handed
/// back; gives up on an unreachable Redis only after a further margin.
async fn drain(ctx: &context::Ctx, duties: &Duties) {
    let tracker = &duties.tracker;
    ctx.draining.cancel();
    tracker.close();
    let grace = ctx.cfg.shutdown_grace;
    info!(worker = %ctx.id, running = ctx.in_flight_count(), grace_ms = grace.as_millis() as u64, "draining");
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        let flights: Vec<_> = lock(&ctx.in_flight).values().cloned().collect();
        info!(worker = %ctx.id, unfinished = flights.len(), "grace period over; handing back unfinished tasks");
        for f in flights {
            f.stop(StopReason::Shutdown);
        }
        if tokio::time::timeout(HAND_BACK_MARGIN, tracker.wait())
            .await
            .is_err()
        {
            duties.give_up.cancel();
            tracker.wait().await;
        }
    }
}

/// Leaves last: the completer's last commits, entries fetched but never started handed back,
/// the consumer groups left, the registry record removed, then the background duties stopped.
async fn leave(ctx: &context::Ctx, duties: Duties) {
    let id = &ctx.id;
    // Every reporter is gone with the runner, so the completer ends once its queue is empty.
    drop(duties.runner);
    if tokio::time::timeout(HAND_BACK_MARGIN, duties.completer)
        .await
        .is_err()
    {
        warn!(worker = %id, "completer did not finish; its entries stay pending for the reclaimer");
    }
    match shutdown::hand_back_pending(ctx).await {
        Ok(0) => {}
        Ok(n) => {
            info!(worker = %id, handed_back = n, "handed back entries fetched but not started")
        }
        Err(e) => {
            warn!(worker = %id, error = %e, "could not hand back pending entries; the reclaimer will")
        }
    }
    if let Err(e) = shutdown::leave_groups(ctx).await {
        warn!(worker = %id, error = %e, "could not leave the consumer groups");
    }
    if let Err(e) = duties.heartbeat.deregister().await {
        warn!(worker = %id, error = %e, "could not remove the registry record; it expires by itself");
    }
    duties.background.cancel();
    futures::future::join_all(duties.background_tasks).await;
    info!(worker = %id, "worker stopped");
}

/// Refuses to start while another live worker holds this id: taking over its consumer name
/// would hand its running tasks back under it. A record left by a crashed earlier run of this
/// worker expires within one registry TTL, so that is how long this waits.
async fn ensure_unique_id(ctx: &context::Ctx) -> Result<(), WorkerError> {
    let key = ctx.keys.worker(&ctx.id);
    let deadline =
        tokio::time::Instant::now() + ctx.cfg.registry_ttl() + ctx.cfg.heartbeat_interval;
    loop {
        let mut con = ctx.pool.get().await?;
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut *con)
            .await
            .map_err(StoreError::from)?;
        if !exists {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WorkerError::DuplicateId(ctx.id.clone()));
        }
        info!(worker = %ctx.id, "a registry record with this id exists; waiting for it to expire");
        tokio::time::sleep(ctx.cfg.heartbeat_interval).await;
    }
}

/// `hostname-pid`: unique per process on a host, readable in `redis-cli`.
fn default_worker_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}
