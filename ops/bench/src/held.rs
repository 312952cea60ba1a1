//! The held phase (issue 19): what running tasks that only wait (long LLM calls) cost. `sleep`
//! tasks are spread over several workers and held; over a window of holding it measures Redis
//! commands and Redis CPU per held task per second, the processes' own idle cost included (and
//! the same window with nothing held, for reference), and the CPU and RSS of the workers. The
//! 60 s tasks then have to finish on their first attempt with `LEASE_TIMEOUT_MS` at its default:
//! none may be reclaimed from its live worker. [`crate::kill`] measures what a SIGKILL costs.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;
use switchyard_shared::keys::Keys;
use tokio::time::Instant;

use crate::api::Api;
use crate::error::BenchError;
use crate::info::Snapshot;
use crate::procs::{Rss, cpu_s};
use crate::report::Target;
use crate::services::{Launcher, Worker};

/// Key prefix of the phase.
pub const PREFIX: &str = "bench4:";
/// The queue every held task is on.
pub const QUEUE: &str = "tool";
/// How long each held task sleeps: the issue's 60 s task, twice `LEASE_TIMEOUT_MS`' default.
pub const TASK_MS: u64 = 60_000;
/// Target: Redis commands per held task per second, at most.
pub const TARGET_COMMANDS: f64 = 0.1;
/// Target: Redis CPU per held task per second, µs, at most.
pub const TARGET_CPU_US: f64 = 1.0;
/// Tasks per batch request (the dispatcher takes up to 1,000).
const BATCH: usize = 500;
/// Pause between all tasks started and the holding window: the workers' first beats over their
/// new tasks (each task's cancel flag is read once) are start-up, not holding.
const SETTLE: Duration = Duration::from_secs(2);
/// How often the stats hash is read while waiting.
const POLL: Duration = Duration::from_millis(200);

/// A `sleep` task of `ms` as the API takes it, with a timeout well past its sleep.
pub fn sleep_body(ms: u64) -> String {
    format!(
        r#"{{"kind":"tool","queue":"{QUEUE}","payload":{{"tool":"sleep","args":{{"ms":{ms}}}}},"timeout_ms":{}}}"#,
        ms * 2
    )
}

/// Enqueues `n` sleep tasks of `ms` in batches; their ids.
pub async fn enqueue_sleeps(api: &Api, n: u64, ms: u64) -> Result<Vec<String>, BenchError> {
    let body = sleep_body(ms);
    let mut ids = Vec::with_capacity(n as usize);
    while (ids.len() as u64) < n {
        let k = (n - ids.len() as u64).min(BATCH as u64) as usize;
        let out = api
            .enqueue_bodies(&vec![body.clone(); k])
            .await
            .map_err(|e| BenchError::Reply(format!("held: enqueue: {e}")))?;
        if let Some(first) = out.refused.first() {
            return Err(BenchError::Reply(format!("held: enqueue refused: {first}")));
        }
        ids.extend(out.ids);
    }
    Ok(ids)
}

/// One counter of the queue's stats hash (0 when absent); `running` is the group's pending
/// count, as `GET /api/queues` derives it (no script counts starts).
pub async fn stat(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    name: &str,
) -> Result<u64, BenchError> {
    if name == "running" {
        let summary: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(keys.stream(QUEUE))
            .arg(switchyard_shared::keys::GROUP)
            .query_async(con)
            .await?;
        return Ok(summary.count() as u64);
    }
    let v: Option<u64> = redis::cmd("HGET")
        .arg(keys.stats(QUEUE))
        .arg(name)
        .query_async(con)
        .await?;
    Ok(v.unwrap_or(0))
}

/// Polls until the stats counter `name` reaches `n`, or `deadline`; whether it did.
pub async fn wait_stat(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    name: &str,
    n: u64,
    deadline: Instant,
) -> Result<bool, BenchError> {
    loop {
        if stat(con, keys, name).await? >= n {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What the phase is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HeldSettings {
    /// Tasks held at once.
    pub tasks: u64,
    /// Workers holding them (each with room for its share).
    pub workers: usize,
    /// Length of each measuring window, s.
    pub secs: u64,
}

/// Costs over one window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    /// Tasks held during it.
    pub held: u64,
    /// Its length, s.
    pub secs: f64,
    /// Redis commands (`INFO commandstats`, calls inside scripts included) per second.
    pub commands_per_s: f64,
    /// `total_commands_processed` per second (commands sent by clients; a script is one).
    pub client_commands_per_s: f64,
    /// Redis CPU (`used_cpu_user + used_cpu_sys`), µs per second.
    pub redis_cpu_us_per_s: f64,
    /// CPU of all the workers, µs per second.
    pub workers_cpu_us_per_s: f64,
    /// CPU of the dispatcher, µs per second.
    pub dispatcher_cpu_us_per_s: f64,
    /// Commands by name, most called first: (name, calls, µs inside the command; a script's
    /// µs include the commands it calls, which are listed too).
    pub commands_by_name: Vec<(String, u64, u64)>,
}

/// What the phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeldFigures {
    /// Tasks held.
    pub tasks: u64,
    /// Workers holding them.
    pub workers: usize,
    /// Sleep of each task, ms.
    pub task_ms: u64,
    /// The processes with nothing held.
    pub idle: Window,
    /// The processes holding every task.
    pub holding: Window,
    /// Redis commands per held task per second (`holding.commands_per_s / tasks`; target ≤ 0.1).
    pub commands_per_task_s: f64,
    /// Redis CPU per held task per second, µs (target ≤ 1).
    pub redis_cpu_us_per_task_s: f64,
    /// Workers' CPU per held task per second, µs.
    pub workers_cpu_us_per_task_s: f64,
    /// RSS of all workers while holding, KiB.
    pub workers_rss_kib: u64,
    /// Of them before any task, KiB.
    pub workers_idle_rss_kib: u64,
    /// Tasks that succeeded (with no reclaim, fence or retry: each on its first attempt).
    pub succeeded: u64,
    /// Stats counters after the tasks ended: `reclaimed`, `fenced`, `retries` (all must be 0).
    pub reclaimed: u64,
    /// See `reclaimed`.
    pub fenced: u64,
    /// See `reclaimed`.
    pub retries: u64,
    /// Whether every task was running throughout the holding window.
    pub all_held: bool,
}

/// Process CPU of `workers` and the dispatcher at one moment.
fn cpu(workers: &[Worker], dispatcher: u32) -> Result<(f64, f64), BenchError> {
    let mut w = 0.0;
    for x in workers {
        w += cpu_s(x.proc.pid())?;
    }
    Ok((w, cpu_s(dispatcher)?))
}

async fn total_commands(admin: &mut MultiplexedConnection) -> Result<u64, BenchError> {
    let text: String = redis::cmd("INFO").arg("stats").query_async(admin).await?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("total_commands_processed:"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| BenchError::Reply("INFO stats without total_commands_processed".into()))
}

/// Measures one window of `secs` with `held` tasks running.
async fn window(
    admin: &mut MultiplexedConnection,
    workers: &[Worker],
    dispatcher: u32,
    held: u64,
    secs: u64,
) -> Result<Window, BenchError> {
    let before = Snapshot::take(admin).await?;
    let total_before = total_commands(admin).await?;
    let (w0, d0) = cpu(workers, dispatcher)?;
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (w1, d1) = cpu(workers, dispatcher)?;
    let wall = began.elapsed().as_secs_f64();
    let after = Snapshot::take(admin).await?;
    let total_after = total_commands(admin).await?;
    let calls = after.commands.total_calls() - before.commands.total_calls();
    Ok(Window {
        held,
        secs: wall,
        commands_per_s: calls as f64 / wall,
        client_commands_per_s: total_after.saturating_sub(total_before) as f64 / wall,
        redis_cpu_us_per_s: (after.cpu.total_s() - before.cpu.total_s()) * 1e6 / wall,
        workers_cpu_us_per_s: (w1 - w0) * 1e6 / wall,
        dispatcher_cpu_us_per_s: (d1 - d0) * 1e6 / wall,
        commands_by_name: after
            .commands
            .since(&before.commands)
            .into_iter()
            .map(|(n, c)| (n, c.calls, c.usec))
            .collect(),
    })
}

/// Runs the phase on a dispatcher and `settings.workers` workers of its own under [`PREFIX`].
pub async fn phase(
    launcher: &Launcher<'_>,
    admin: &mut MultiplexedConnection,
    settings: HeldSettings,
) -> Result<HeldFigures, BenchError> {
    let keys = Keys::new(PREFIX);
    let dispatcher = launcher.dispatcher(PREFIX).await?;
    let api = Api::new(&dispatcher.base_url, launcher.secret())?;
    let share = settings.tasks.div_ceil(settings.workers as u64).to_string();
    let mut workers = Vec::new();
    for i in 1..=settings.workers {
        let id = format!("bench-held-{i}");
        let extra = [("WORKER_CONCURRENCY", share.as_str())];
        workers.push(launcher.worker_with(PREFIX, &id, &extra).await?);
    }
    let mut idle_rss = 0;
    for w in &workers {
        idle_rss += Rss::of(w.proc.pid())?.rss_kib;
    }
    let d = dispatcher.proc.pid();
    let idle = window(admin, &workers, d, 0, settings.secs).await?;

    let ids = enqueue_sleeps(&api, settings.tasks, TASK_MS).await?;
    let n = ids.len() as u64;
    let started = Instant::now();
    let all_started = wait_stat(
        admin,
        &keys,
        "running",
        n,
        started + Duration::from_millis(TASK_MS / 2),
    )
    .await?;
    tokio::time::sleep(SETTLE).await;
    let holding = window(admin, &workers, d, n, settings.secs).await?;
    let mut rss = 0;
    for w in &workers {
        rss += Rss::of(w.proc.pid())?.rss_kib;
    }
    let still = stat(admin, &keys, "running").await?;
    let done_by = Instant::now() + Duration::from_millis(2 * TASK_MS);
    wait_stat(admin, &keys, "succeeded", n, done_by).await?;
    let per = |v: f64| if n == 0 { 0.0 } else { v / n as f64 };
    Ok(HeldFigures {
        tasks: n,
        workers: settings.workers,
        task_ms: TASK_MS,
        commands_per_task_s: per(holding.commands_per_s),
        redis_cpu_us_per_task_s: per(holding.redis_cpu_us_per_s),
        workers_cpu_us_per_task_s: per(holding.workers_cpu_us_per_s),
        idle,
        holding,
        workers_rss_kib: rss,
        workers_idle_rss_kib: idle_rss,
        succeeded: stat(admin, &keys, "succeeded").await?,
        reclaimed: stat(admin, &keys, "reclaimed").await?,
        fenced: stat(admin, &keys, "fenced").await?,
        retries: stat(admin, &keys, "retries").await?,
        all_held: all_started && still == n,
    })
}

/// The phase's targets.
pub fn targets(h: &HeldFigures) -> Vec<Target> {
    let t = |name, value: f64, limit: f64, unit| Target {
        name,
        value,
        limit,
        op: "<=",
        unit,
        pass: value <= limit,
    };
    vec![
        t(
            "Redis commands per held task per s",
            h.commands_per_task_s,
            TARGET_COMMANDS,
            "",
        ),
        t(
            "Redis CPU per held task per s",
            h.redis_cpu_us_per_task_s,
            TARGET_CPU_US,
            "µs",
        ),
    ]
}

/// What went wrong: a task not held throughout, taken from its live worker, or not succeeded
/// on its first attempt.
pub fn problems(h: &HeldFigures) -> Vec<String> {
    let mut f = Vec::new();
    if !h.all_held {
        f.push(format!(
            "held: not all {} tasks were running throughout the window",
            h.tasks
        ));
    }
    if h.reclaimed + h.fenced + h.retries > 0 || h.succeeded < h.tasks {
        f.push(format!(
            "held: {} of {} tasks succeeded; reclaimed {}, fenced {}, retries {} (all must be 0 with live workers)",
            h.succeeded, h.tasks, h.reclaimed, h.fenced, h.retries
        ));
    }
    f
}
