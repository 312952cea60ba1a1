//! The kill phase (issue 19): a worker holding many running tasks is SIGKILLed; every one of them
//! must start again on the surviving workers, none before the kill (while its first worker
//! lived) and none twice after it. The delay of each restart is its new `started_at` minus the
//! moment of the kill. Also the worker RSS per running task at high concurrency.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;
use switchyard_shared::keys::Keys;
use tokio::time::Instant;

use crate::api::Api;
use crate::error::BenchError;
use crate::held::{QUEUE, enqueue_sleeps, stat, wait_stat};
use crate::percentile::Percentiles;
use crate::procs::Rss;
use crate::report::Target;
use crate::services::Launcher;

/// Key prefix of the kill phase.
pub const PREFIX: &str = "bench5:";
/// Key prefix of the RSS figure.
pub const RSS_PREFIX: &str = "bench6:";
/// Sleep of each task: long enough to be running still when restarted.
const TASK_MS: u64 = 120_000;
/// Workers that survive the kill.
pub const SURVIVORS: usize = 2;
/// How long the victim holds its tasks beside the live survivors before the kill: several
/// reclaimer passes, none of which may take anything.
const HOLD: Duration = Duration::from_secs(3);
/// Target: median restart delay, ms.
pub const TARGET_MEDIAN_MS: f64 = 2_000.0;
/// Target: worst restart delay, ms.
pub const TARGET_WORST_MS: f64 = 3_000.0;
/// How long the restarts may take before the phase gives up.
const RESTART_DEADLINE: Duration = Duration::from_secs(60);

/// What the kill phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KillFigures {
    /// Tasks the victim held when it was killed.
    pub tasks: u64,
    /// Tasks taken from the victim while it lived (must be 0).
    pub reclaimed_before_kill: u64,
    /// Tasks started again on a survivor.
    pub restarted: u64,
    /// Tasks started more than twice (must be 0).
    pub started_more_than_twice: u64,
    /// Restart delays after the kill.
    pub delay: Percentiles,
}

/// Start times (ms) and attempts of `ids`, and the worker running each.
async fn starts(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    ids: &[String],
) -> Result<Vec<(u32, String, i64)>, BenchError> {
    // Through the reader: a running task is its entry pending in the group (no hash).
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let t = switchyard_shared::store::load_task(con, keys, QUEUE, id)
            .await
            .map_err(|e| BenchError::Reply(e.to_string()))?;
        rows.push(match t {
            Some(t) => {
                let ms = t
                    .started_at
                    .as_deref()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map_or(0, |t| t.timestamp_millis());
                (t.attempts, t.worker.unwrap_or_default(), ms)
            }
            None => (0, String::new(), 0),
        });
    }
    Ok(rows)
}

/// Runs the kill phase with `tasks` held by the victim.
pub async fn phase(
    launcher: &Launcher<'_>,
    admin: &mut MultiplexedConnection,
    tasks: u64,
) -> Result<KillFigures, BenchError> {
    let keys = Keys::new(PREFIX);
    let dispatcher = launcher.dispatcher(PREFIX).await?;
    let api = Api::new(&dispatcher.base_url, launcher.secret())?;
    let room = tasks.to_string();
    let extra = [("WORKER_CONCURRENCY", room.as_str())];
    let victim = launcher.worker_with(PREFIX, "bench-victim", &extra).await?;
    let ids = enqueue_sleeps(&api, tasks, TASK_MS).await?;
    let n = ids.len() as u64;
    let at = Instant::now() + Duration::from_millis(TASK_MS / 4);
    if !wait_stat(admin, &keys, "running", n, at).await? {
        return Err(BenchError::Reply(format!(
            "kill: {n} tasks never all ran on the victim"
        )));
    }
    let mut survivors = Vec::new();
    for i in 1..=SURVIVORS {
        let id = format!("bench-survivor-{i}");
        survivors.push(launcher.worker_with(PREFIX, &id, &extra).await?);
    }
    tokio::time::sleep(HOLD).await;
    let reclaimed_before_kill = stat(admin, &keys, "reclaimed").await?;

    let kill_ms = chrono::Utc::now().timestamp_millis();
    victim.proc.sigkill();
    let deadline = Instant::now() + RESTART_DEADLINE;
    let rows = loop {
        let rows = starts(admin, &keys, &ids).await?;
        let all = rows.iter().all(|(a, w, _)| *a >= 2 && w != "bench-victim");
        if all || Instant::now() >= deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let restarted: Vec<&(u32, String, i64)> = rows
        .iter()
        .filter(|(a, w, _)| *a >= 2 && w != "bench-victim")
        .collect();
    let delays: Vec<u64> = restarted
        .iter()
        .map(|(_, _, ms)| ((ms - kill_ms).max(0) as u64) * 1_000)
        .collect();
    drop(survivors);
    Ok(KillFigures {
        tasks: n,
        reclaimed_before_kill,
        restarted: restarted.len() as u64,
        started_more_than_twice: rows.iter().filter(|(a, _, _)| *a > 2).count() as u64,
        delay: Percentiles::from_micros(delays),
    })
}

/// Worker RSS while it runs `tasks` sleep tasks at once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RssFigures {
    /// Tasks running at once (`WORKER_CONCURRENCY`).
    pub tasks: u64,
    /// RSS before any task, KiB.
    pub idle_kib: u64,
    /// RSS with all of them running, KiB.
    pub running_kib: u64,
    /// `(running - idle) / tasks`, bytes.
    pub bytes_per_task: f64,
}

/// One worker with room for `tasks`, its RSS idle and running them all.
pub async fn rss(
    launcher: &Launcher<'_>,
    admin: &mut MultiplexedConnection,
    tasks: u64,
) -> Result<RssFigures, BenchError> {
    let keys = Keys::new(RSS_PREFIX);
    let dispatcher = launcher.dispatcher(RSS_PREFIX).await?;
    let api = Api::new(&dispatcher.base_url, launcher.secret())?;
    let room = tasks.to_string();
    let extra = [("WORKER_CONCURRENCY", room.as_str())];
    let worker = launcher
        .worker_with(RSS_PREFIX, "bench-rss", &extra)
        .await?;
    let idle = Rss::of(worker.proc.pid())?.rss_kib;
    let ids = enqueue_sleeps(&api, tasks, TASK_MS).await?;
    let n = ids.len() as u64;
    let at = Instant::now() + Duration::from_millis(TASK_MS / 4);
    if !wait_stat(admin, &keys, "running", n, at).await? {
        return Err(BenchError::Reply(format!("rss: {n} tasks never all ran")));
    }
    // A few beats, so every task's first steps (and the beat's own buffers) are in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = Rss::of(worker.proc.pid())?.rss_kib;
    Ok(RssFigures {
        tasks: n,
        idle_kib: idle,
        running_kib: running,
        bytes_per_task: running.saturating_sub(idle) as f64 * 1024.0 / n.max(1) as f64,
    })
}

/// The kill phase's targets.
pub fn targets(k: &KillFigures) -> Vec<Target> {
    let t = |name, value: f64, limit: f64| Target {
        name,
        value,
        limit,
        op: "<=",
        unit: "ms",
        pass: value <= limit,
    };
    vec![
        t(
            "restart after SIGKILL, median",
            k.delay.p50_ms,
            TARGET_MEDIAN_MS,
        ),
        t(
            "restart after SIGKILL, worst",
            k.delay.max_ms,
            TARGET_WORST_MS,
        ),
    ]
}

/// Tasks lost, taken early or run too often.
pub fn problems(k: &KillFigures) -> Vec<String> {
    let mut f = Vec::new();
    if k.restarted < k.tasks || k.reclaimed_before_kill > 0 || k.started_more_than_twice > 0 {
        f.push(format!(
            "kill: {} of {} tasks restarted; {} reclaimed while the victim lived; {} started more than twice",
            k.restarted, k.tasks, k.reclaimed_before_kill, k.started_more_than_twice
        ));
    }
    f
}
