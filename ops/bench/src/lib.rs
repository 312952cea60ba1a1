//! The switchyard benchmark (issue #6): one run against one fresh `redis-server` it starts itself
//! measures the raw-Redis ceiling, enqueue throughput, end-to-end throughput, open-loop latency,
//! the `?wait_ms=` round trip, Redis's cost per task and the processes' memory, and reports
//! every figure against the ceiling and the targets.
//!
//! # Layout
//! - [`config`]: flags and `SY_BENCH_*` variables → [`Config`].
//! - [`redis_server`]: the run's own `redis-server` (`--stream-node-max-entries` as asked), and
//!   connections to it.
//! - [`procs`]: the run's temp dir and how children start in it (the process harness is
//!   `switchyard_harness`, shared with the end-to-end tests), a dead child's error, and memory
//!   and CPU read from `/proc`.
//! - [`services`]: `dispatcher` and `worker` started on free ports and waited for until healthy.
//! - [`api`]: the dispatcher's HTTP API as the bench calls it.
//! - [`ceiling`]: raw XADD / XREADGROUP / XACK, the reference rate.
//! - [`enqueue`]: closed-loop producers, single and batch.
//! - [`e2e`]: enqueue with a worker running until all succeeded; the drain of a preloaded queue.
//! - [`latency`]: open-loop arrival, send → `succeeded` event.
//! - [`wait`]: sequential `?wait_ms=` round trips.
//! - [`streaming`]: time to first token through switchyard vs straight from a local provider,
//!   Redis commands per streamed token, dispatcher RSS with 1,000 open streams;
//!   [`stream_load`]: its clients; [`v1_load`]: its `/v1` clients.
//! - [`held`]: Redis commands and CPU per held (running, waiting) task, 10,000 `sleep` tasks
//!   over 4 workers; [`kill`]: restarts after a SIGKILL of a worker holding 1,000, and worker
//!   RSS per running task.
//! - [`info`]: `INFO` text → typed structs; [`efficiency`]: Redis cost per task from two of them.
//! - [`percentile`]: latency samples → p50/p95/p99/max.
//! - [`topology`]: `--redis tls|cluster`, the end-to-end load on the plain redis-server and on
//!   a TLS one or a cluster in the same run; [`topology_load`]: that load, clocked per queue.
//! - [`report`]: every figure, targets, failures, the `BENCH_JSON` line; [`table`]: the table.
//! - here: [`run`], the phases in order, each with its deadline, each raced against the exit
//!   of a child it needs.

pub mod api;
pub mod ceiling;
pub mod config;
pub mod e2e;
pub mod efficiency;
pub mod enqueue;
pub mod error;
pub mod held;
pub mod info;
pub mod kill;
pub mod latency;
pub mod percentile;
pub mod procs;
pub mod redis_server;
pub mod report;
pub mod services;
pub mod stream_load;
pub mod streaming;
pub mod table;
pub mod topology;
pub mod topology_load;
pub mod v1_load;
pub mod wait;

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use switchyard_harness::Proc;
use switchyard_shared::keys::Keys;
use tokio::time::Instant;

pub use config::Config;
pub use error::BenchError;
pub use report::Report;

use crate::api::Api;
use crate::efficiency::Efficiency;
use crate::enqueue::{Mode, closed_loop};
use crate::info::Snapshot;
use crate::procs::{Rss, RunDir, cpu_s, first_exit, own_cpu_s};
use crate::redis_server::{RedisServer, connect};
use crate::services::Launcher;

/// Longest each phase may take (the run's own deadline may cut it shorter).
const CEILING_BUDGET: Duration = Duration::from_secs(120);
const ENQUEUE_BUDGET: Duration = Duration::from_secs(300);
const DRAIN_BUDGET: Duration = Duration::from_secs(300);
const E2E_BUDGET: Duration = Duration::from_secs(600);
/// Added to `--latency-secs` for the last answers and events.
const LATENCY_SLACK: Duration = Duration::from_secs(60);
const WAIT_BUDGET: Duration = Duration::from_secs(300);
/// Key prefixes: one per group of phases, so none sees another's keys.
const ENQUEUE_PREFIX: &str = "bench1:";
const E2E_PREFIX: &str = "bench2:";

/// Progress on stderr.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bench] {}", format!($($arg)*)) };
}

/// Runs every phase; the report says what failed. An error means the run could not go on
/// (Redis or a binary would not start or died, Redis stopped answering). Children's log tails
/// are printed on any failure. Everything started is stopped when this returns or is dropped.
pub async fn run(cfg: &Config) -> Result<Report, BenchError> {
    let mut dir = RunDir::create()?;
    let result = phases(cfg, &dir).await;
    match &result {
        Ok(r) if r.ok => {}
        Ok(_) | Err(_) => dir.print_log_tails(),
    }
    result
}

/// Runs `phase` unless one of `procs` exits first: a crashed child fails the run at once
/// instead of after the phase's deadline.
async fn watched<T>(
    procs: &[&Proc],
    phase: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    tokio::select! {
        r = phase => r,
        e = first_exit(procs) => Err(e),
    }
}

/// Why the run stopped after `phase`.
fn timed_out(phase: &str) -> String {
    format!("phase {phase} hit its deadline (per-phase budget or --timeout-s)")
}

/// What every phase needs.
struct Run<'a> {
    cfg: &'a Config,
    redis: &'a RedisServer,
    launcher: Launcher<'a>,
    admin: MultiplexedConnection,
    /// Deadline of the whole run.
    end: Instant,
    report: Report,
}

impl Run<'_> {
    /// The deadline of a phase given `budget`, never past the run's.
    fn deadline(&self, budget: Duration) -> Instant {
        (Instant::now() + budget).min(self.end)
    }

    fn batch_clients(&self) -> usize {
        (self.cfg.clients / 4).max(1)
    }
}

async fn phases(cfg: &Config, dir: &RunDir) -> Result<Report, BenchError> {
    let end = Instant::now() + cfg.timeout;
    // Before anything starts, so a wrong --bin-dir costs nothing.
    services::check_binaries(&cfg.bin_dir)?;
    let redis = RedisServer::start(dir, cfg.stream_node_max_entries).await?;
    progress!(
        "redis-server pid {} at {}, stream-node-max-entries {}",
        redis.proc.pid(),
        redis.url,
        redis.stream_node_max_entries
    );
    let mut run = Run {
        cfg,
        redis: &redis,
        launcher: Launcher::new(dir, &cfg.bin_dir, &redis.url, &cfg.log_level)?,
        admin: connect(&redis.url).await?,
        end,
        report: Report {
            settings: report::Settings {
                tasks: cfg.tasks,
                enqueue_tasks: cfg.enqueue_tasks,
                clients: cfg.clients,
                batch: cfg.batch,
                latency_secs: cfg.latency.as_secs(),
                wait_samples: cfg.wait_samples,
                worker_concurrency: config::WORKER_CONCURRENCY,
                redis_stream_node_max_entries: redis.stream_node_max_entries,
            },
            ..Report::default()
        },
    };
    let held_only = cfg.phases == config::Phases::HeldOnly;
    let stopped_at = match held_only {
        true => None,
        false => match ceiling_phase(&mut run).await? {
            None => match enqueue_phases(&mut run).await? {
                None => system_phases(&mut run).await?,
                why => why,
            },
            why => why,
        },
    };
    if stopped_at.is_none() && !held_only {
        progress!(
            "streaming: {} streams of {} tokens every {:?}, then {} open streams",
            streaming::STREAMS,
            streaming::TOKENS,
            streaming::TOKEN_INTERVAL,
            streaming::OPEN_STREAMS
        );
        let s = watched(
            &[&redis.proc],
            streaming::phase(&run.launcher, &mut run.admin),
        )
        .await?;
        progress!(
            "streaming: TTFT overhead p50 {:.3} ms, p99 {:.3} ms (/v1: {:.3} ms, {:.3} ms); {:.3} Redis commands per token; dispatcher RSS {} KiB with {} open streams",
            s.ttft_overhead_p50_ms,
            s.ttft_overhead_p99_ms,
            s.ttft_v1_overhead_p50_ms,
            s.ttft_v1_overhead_p99_ms,
            s.commands_per_token,
            s.dispatcher_rss_open_kib,
            s.open_streams
        );
        run.report.streaming = Some(s);
    }
    if stopped_at.is_none() && cfg.phases != config::Phases::NoHeld {
        held_phases(&mut run).await?;
    }
    let mut report = run.report;
    if let Some(why) = stopped_at {
        report
            .failures
            .push(format!("{why}; later phases did not run"));
    }
    report.finish();
    Ok(report)
}

/// Held tasks, a SIGKILL among them, and RSS per running task (issue 19), each on processes
/// and keys of its own.
async fn held_phases(run: &mut Run<'_>) -> Result<(), BenchError> {
    let cfg = run.cfg;
    let settings = held::HeldSettings {
        tasks: cfg.held_tasks,
        workers: cfg.held_workers,
        secs: cfg.held_secs,
    };
    progress!(
        "held: {} sleep tasks of {} s over {} workers, windows of {} s idle and holding",
        settings.tasks,
        held::TASK_MS / 1_000,
        settings.workers,
        settings.secs
    );
    let procs = [&run.redis.proc];
    let h = watched(&procs, held::phase(&run.launcher, &mut run.admin, settings)).await?;
    progress!(
        "held: {:.4} Redis commands and {:.3} µs Redis CPU per held task per s; workers {:.3} µs CPU per task per s; idle {:.1} commands/s",
        h.commands_per_task_s,
        h.redis_cpu_us_per_task_s,
        h.workers_cpu_us_per_task_s,
        h.idle.commands_per_s
    );
    run.report.held = Some(h);
    progress!(
        "kill: a worker holding {} running tasks is SIGKILLed",
        cfg.kill_tasks
    );
    let k = watched(
        &procs,
        kill::phase(&run.launcher, &mut run.admin, cfg.kill_tasks),
    )
    .await?;
    progress!(
        "kill: {} of {} restarted, median {:.0} ms, worst {:.0} ms",
        k.restarted,
        k.tasks,
        k.delay.p50_ms,
        k.delay.max_ms
    );
    run.report.kill = Some(k);
    progress!("rss: one worker running {} sleep tasks", cfg.rss_tasks);
    let r = watched(
        &procs,
        kill::rss(&run.launcher, &mut run.admin, cfg.rss_tasks),
    )
    .await?;
    progress!(
        "rss: {:.0} bytes per running task ({} KiB idle, {} KiB running)",
        r.bytes_per_task,
        r.idle_kib,
        r.running_kib
    );
    run.report.held_rss = Some(r);
    Ok(())
}

/// The raw-Redis ceiling. This and the other phase groups answer why the run cannot go on, if
/// it cannot.
async fn ceiling_phase(run: &mut Run<'_>) -> Result<Option<String>, BenchError> {
    let tasks = run.cfg.tasks;
    progress!("ceiling: {tasks} entries, raw XADD / XREADGROUP + XACK");
    let at = run.deadline(CEILING_BUDGET);
    let before = Snapshot::take(&mut run.admin).await?;
    let c = watched(&[&run.redis.proc], ceiling::run(&run.redis.url, tasks, at)).await?;
    let after = Snapshot::take(&mut run.admin).await?;
    // The same cost figures as the end-to-end phase's, for reference.
    run.report.ceiling_efficiency = Some(Efficiency::between(&before, &after, c.acked, 0));
    progress!(
        "ceiling: {:.0} tasks/s ({} acked in {:.2} s)",
        c.tasks_per_s,
        c.acked,
        c.secs
    );
    let stop = c.timed_out;
    run.report.ceiling = Some(c);
    Ok(stop.then(|| timed_out("ceiling")))
}

/// Single and batch enqueues with no worker, then the drain of what they left by a worker
/// started afterwards, on a dispatcher and key prefix of their own.
async fn enqueue_phases(run: &mut Run<'_>) -> Result<Option<String>, BenchError> {
    let cfg = run.cfg;
    let keys = Keys::new(ENQUEUE_PREFIX);
    let dispatcher = run.launcher.dispatcher(keys.prefix()).await?;
    let api = Api::new(&dispatcher.base_url, run.launcher.secret())?;
    let procs = [&run.redis.proc, &dispatcher.proc];
    let (n, clients, batch_clients) = (cfg.enqueue_tasks, cfg.clients, run.batch_clients());
    let at = run.deadline(ENQUEUE_BUDGET);

    progress!("enqueue: {n} single POSTs, {clients} clients");
    let single = watched(&procs, closed_loop(&api, Mode::Single, 0, n, clients, at)).await?;
    progress!(
        "enqueue single: {:.0} tasks/s, {} refused",
        single.tasks_per_s,
        single.refused_tasks
    );
    let (stop, mut preloaded) = (single.timed_out, single.accepted);
    run.report.enqueue_single = Some(single);
    if stop {
        return Ok(Some(timed_out("enqueue single")));
    }

    progress!(
        "enqueue: {n} tasks in batches of {}, {batch_clients} clients",
        cfg.batch
    );
    let load = closed_loop(&api, Mode::Batch(cfg.batch), n, n, batch_clients, at);
    let batch = watched(&procs, load).await?;
    run.report.batch_endpoint = !batch.missing_route;
    if batch.missing_route {
        let answer = batch.first_error.as_deref().unwrap_or("-");
        progress!("enqueue batch: POST /api/tasks/batch is missing ({answer})");
        run.report.notes.push(format!(
            "POST /api/tasks/batch is missing ({answer}): no batch enqueue figure; \
             e2e and latency sent one request per task"
        ));
    } else {
        progress!(
            "enqueue batch: {:.0} tasks/s, {} refused",
            batch.tasks_per_s,
            batch.refused_tasks
        );
    }
    let stop = batch.timed_out;
    preloaded += batch.accepted;
    run.report.enqueue_batch = Some(batch);
    run.report.memory.enqueue_dispatcher_peak_rss_kib =
        Some(Rss::of(dispatcher.proc.pid())?.peak_kib);
    if stop {
        return Ok(Some(timed_out("enqueue batch")));
    }
    if !cfg.drain {
        return Ok(None);
    }

    progress!("drain: {preloaded} preloaded tasks, worker started now");
    let at = run.deadline(DRAIN_BUDGET);
    let drain = e2e::drain(&run.launcher, &mut run.admin, &keys, preloaded, at);
    let (d, worker) = watched(&procs, drain).await?;
    progress!(
        "drain: {:.0} tasks/s ({} in {:.2} s)",
        d.tasks_per_s,
        d.succeeded,
        d.secs
    );
    let stop = d.timed_out;
    run.report.drain = Some(d);
    // Stopped before the next phase starts, so they take no CPU from it.
    drop((worker, dispatcher));
    Ok(stop.then(|| timed_out("drain")))
}

/// End to end, latency and wait on one dispatcher and one worker, whose memory is reported.
async fn system_phases(run: &mut Run<'_>) -> Result<Option<String>, BenchError> {
    let keys = Keys::new(E2E_PREFIX);
    let dispatcher = run.launcher.dispatcher(keys.prefix()).await?;
    let worker = run.launcher.worker(keys.prefix(), "bench-1").await?;
    let api = Api::new(&dispatcher.base_url, run.launcher.secret())?;
    let procs = [&run.redis.proc, &dispatcher.proc, &worker.proc];
    run.report.memory.dispatcher_idle_rss_kib = Some(Rss::of(dispatcher.proc.pid())?.rss_kib);
    run.report.memory.worker_idle_rss_kib = Some(Rss::of(worker.proc.pid())?.rss_kib);
    let stopped_at = system_load(run, &api, &keys, &procs).await?;

    // Peak figures once the load is over. A figure that cannot be read is a note, not a reason
    // to lose the others.
    let report = &mut run.report;
    match Rss::of(dispatcher.proc.pid()) {
        Ok(r) => report.memory.dispatcher_peak_rss_kib = Some(r.peak_kib),
        Err(e) => report.notes.push(format!("dispatcher RSS: {e}")),
    }
    match Rss::of(worker.proc.pid()) {
        Ok(r) => report.memory.worker_peak_rss_kib = Some(r.peak_kib),
        Err(e) => report.notes.push(format!("worker RSS: {e}")),
    }
    match info::memory(&mut run.admin).await {
        Ok(m) => {
            report.memory.redis_used_memory_bytes = Some(m.used_memory);
            report.memory.redis_used_memory_peak_bytes = Some(m.used_memory_peak);
        }
        Err(e) => report.notes.push(format!("Redis memory: {e}")),
    }
    Ok(stopped_at)
}

async fn system_load(
    run: &mut Run<'_>,
    api: &Api,
    keys: &Keys,
    procs: &[&Proc],
) -> Result<Option<String>, BenchError> {
    let cfg = run.cfg;
    let (mode, clients) = if run.report.batch_endpoint {
        (Mode::Batch(cfg.batch), run.batch_clients())
    } else {
        (Mode::Single, cfg.clients)
    };
    progress!(
        "e2e: {} tasks with 1 worker running, {clients} producers",
        cfg.tasks
    );
    let at = run.deadline(E2E_BUDGET);
    let before = Snapshot::take(&mut run.admin).await?;
    // procs: redis, dispatcher, worker; the services' CPU per task is reported beside Redis's.
    let services_cpu =
        || -> Result<Vec<f64>, BenchError> { procs[1..].iter().map(|p| cpu_s(p.pid())).collect() };
    let services_before = services_cpu()?;
    let (cpu, wall) = (own_cpu_s()?, Instant::now());
    let load = e2e::run(api, &mut run.admin, keys, mode, cfg.tasks, clients, at);
    let e = watched(procs, load).await?;
    let services_after = services_cpu()?;
    run.report.bench_cpu.e2e_cpu_s = Some(own_cpu_s()? - cpu);
    run.report.bench_cpu.e2e_wall_s = Some(wall.elapsed().as_secs_f64());
    let after = Snapshot::take(&mut run.admin).await?;
    progress!(
        "e2e: {:.0} tasks/s ({} succeeded in {:.2} s)",
        e.tasks_per_s,
        e.succeeded,
        e.secs
    );
    let e2e_rate = e.tasks_per_s;
    let (stop, none) = (e.timed_out, e.succeeded == 0);
    if !none {
        let mut eff = Efficiency::between(&before, &after, e.succeeded, e.polls);
        let per_task =
            |i: usize| (services_after[i] - services_before[i]).max(0.0) * 1e6 / e.succeeded as f64;
        eff.dispatcher_cpu_us_per_task = Some(per_task(0));
        eff.worker_cpu_us_per_task = Some(per_task(1));
        progress!(
            "e2e: Redis {:.2} commands, {:.1} µs CPU per task; dispatcher {:.1} µs, worker {:.1} µs",
            eff.commands_per_task,
            eff.cpu_us_per_task,
            per_task(0),
            per_task(1)
        );
        run.report.efficiency = Some(eff);
    }
    run.report.e2e = Some(e);
    if stop {
        return Ok(Some(timed_out("e2e")));
    }
    if none {
        return Ok(Some("e2e: no task succeeded".to_owned()));
    }

    let rate = cfg.rate.unwrap_or(e2e_rate / 2.0).max(1.0);
    let secs = cfg.latency.as_secs();
    progress!("latency: open loop at {rate:.0} tasks/s for {secs} s");
    let tail = connect(&run.redis.url).await?;
    let at = run.deadline(cfg.latency + LATENCY_SLACK);
    let batched = run.report.batch_endpoint;
    let (cpu, wall) = (own_cpu_s()?, Instant::now());
    let load = latency::run(api, tail, keys, rate, cfg.latency, cfg.batch, batched, at);
    let l = watched(procs, load).await?;
    run.report.bench_cpu.latency_cpu_s = Some(own_cpu_s()? - cpu);
    run.report.bench_cpu.latency_wall_s = Some(wall.elapsed().as_secs_f64());
    let p = l.latency;
    progress!(
        "latency: p50 {:.3} ms, p99 {:.3} ms, {} never seen",
        p.p50_ms,
        p.p99_ms,
        l.never_seen
    );
    let stop = l.timed_out;
    run.report.latency = Some(l);
    if stop {
        return Ok(Some(timed_out("latency")));
    }

    progress!(
        "wait: {} sequential POST /api/tasks?wait_ms=5000",
        cfg.wait_samples
    );
    let at = run.deadline(WAIT_BUDGET);
    let w = watched(procs, async {
        Ok(wait::run(api, cfg.wait_samples, at).await)
    })
    .await?;
    let p = w.latency;
    progress!(
        "wait: p50 {:.3} ms, p99 {:.3} ms, {} errors",
        p.p50_ms,
        p.p99_ms,
        w.errors
    );
    let stop = w.timed_out;
    run.report.wait = Some(w);
    Ok(stop.then(|| timed_out("wait")))
}
