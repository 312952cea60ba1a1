//! Throughput through the whole system: tasks enqueued over HTTP while a real worker runs them,
//! clocked until the queue's stats hash counts them all succeeded; and the drain of a preloaded
//! queue by a worker started afterwards.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;
use switchyard_shared::keys::Keys;
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::Api;
use crate::ceiling::rate;
use crate::enqueue::{Load, Mode, closed_loop};
use crate::error::BenchError;
use crate::services::{Launcher, Worker};

/// The queue every bench task goes to.
pub const QUEUE: &str = "tool";
/// Interval of the stats polls that stop the clock.
const POLL: Duration = Duration::from_millis(20);

/// Terminal counters of the queue's stats hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Finished {
    /// `succeeded`.
    pub succeeded: u64,
    /// `failed`.
    pub failed: u64,
    /// `dead`.
    pub dead: u64,
}

impl Finished {
    /// Reads them in one HMGET; absent fields are 0 (the scripts create them on first use).
    pub async fn read(con: &mut MultiplexedConnection, keys: &Keys) -> Result<Self, BenchError> {
        let (succeeded, failed, dead): (Option<u64>, Option<u64>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(keys.stats(QUEUE))
                .arg("succeeded")
                .arg("failed")
                .arg("dead")
                .query_async(con)
                .await?;
        Ok(Self {
            succeeded: succeeded.unwrap_or(0),
            failed: failed.unwrap_or(0),
            dead: dead.unwrap_or(0),
        })
    }

    fn total(self) -> u64 {
        self.succeeded + self.failed + self.dead
    }
}

/// What the end-to-end phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct E2e {
    /// How the producers sent: `batch` or `single` (when the batch endpoint is missing).
    pub via: &'static str,
    /// The producers' own figures.
    pub enqueue: Load,
    /// Tasks that succeeded during the phase.
    pub succeeded: u64,
    /// Tasks that failed or were dead-lettered during the phase.
    pub failed: u64,
    /// First enqueue request → the stats hash counting every accepted task succeeded, seconds.
    pub secs: f64,
    /// `succeeded / secs`.
    pub tasks_per_s: f64,
    /// Stats polls the bench sent (subtracted from the Redis command counts).
    pub polls: u64,
    /// Whether the phase deadline cut it short.
    pub timed_out: bool,
}

/// Enqueues `tasks` echo tasks with `clients` concurrent producers while the worker runs, and
/// clocks until all accepted ones succeeded.
pub async fn run(
    api: &Api,
    con: &mut MultiplexedConnection,
    keys: &Keys,
    mode: Mode,
    tasks: u64,
    clients: usize,
    deadline: Instant,
) -> Result<E2e, BenchError> {
    let base = Finished::read(con, keys).await?;
    let start = Instant::now();
    let producers = {
        let api = api.clone();
        tokio::spawn(async move { closed_loop(&api, mode, 0, tasks, clients, deadline).await })
    };
    let mut producers = Some(producers);
    let mut load: Option<Load> = None;
    let mut polls = 0u64;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (now, timed_out) = loop {
        tick.tick().await;
        if let Some(h) = producers.take_if(|h| h.is_finished()) {
            load = Some(h.await??);
        }
        let now = Finished::read(con, keys).await?;
        polls += 1;
        if let Some(l) = &load
            && now.total().saturating_sub(base.total()) >= l.accepted
        {
            break (now, false);
        }
        if Instant::now() >= deadline {
            break (now, true);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let load = match (load, producers) {
        (Some(l), _) => l,
        (None, Some(h)) => h.await??,
        (None, None) => Load::default(),
    };
    let succeeded = now.succeeded.saturating_sub(base.succeeded);
    Ok(E2e {
        via: if mode == Mode::Single {
            "single"
        } else {
            "batch"
        },
        enqueue: load,
        succeeded,
        failed: (now.failed + now.dead).saturating_sub(base.failed + base.dead),
        secs,
        tasks_per_s: rate(succeeded, secs),
        polls,
        timed_out,
    })
}

/// What the drain measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Drain {
    /// Tasks waiting when the worker was started.
    pub tasks: u64,
    /// Of them, succeeded by the end.
    pub succeeded: u64,
    /// Worker spawn → all succeeded, seconds (worker start-up included).
    pub secs: f64,
    /// `succeeded / secs`.
    pub tasks_per_s: f64,
    /// Worker spawn → its `/health` answering, ms.
    pub worker_startup_ms: f64,
    /// Whether the phase deadline cut it short.
    pub timed_out: bool,
}

/// Starts a worker on a queue preloaded with `tasks` tasks and clocks until they all finished;
/// answers the worker too, so the caller decides when it stops.
pub async fn drain(
    launcher: &Launcher<'_>,
    con: &mut MultiplexedConnection,
    keys: &Keys,
    tasks: u64,
    deadline: Instant,
) -> Result<(Drain, Worker), BenchError> {
    let base = Finished::read(con, keys).await?;
    let start = Instant::now();
    let worker = launcher.worker(keys.prefix(), "bench-drain").await?;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (now, timed_out) = loop {
        tick.tick().await;
        let now = Finished::read(con, keys).await?;
        if now.total().saturating_sub(base.total()) >= tasks {
            break (now, false);
        }
        if Instant::now() >= deadline {
            break (now, true);
        }
        if !worker.proc.is_running() {
            return Err(crate::procs::exited(&worker.proc));
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let succeeded = now.succeeded.saturating_sub(base.succeeded);
    Ok((
        Drain {
            tasks,
            succeeded,
            secs,
            tasks_per_s: rate(succeeded, secs),
            worker_startup_ms: worker.startup.as_secs_f64() * 1000.0,
            timed_out,
        },
        worker,
    ))
}
