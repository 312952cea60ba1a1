//! The load `--redis tls|cluster` puts on each Redis it compares: echo tasks in batches spread
//! round-robin over a few queues by concurrent producers while a worker runs them, clocked per
//! queue until that queue's stats hash counts every accepted task finished. Reads go through
//! switchyard's own connection type, so the same code clocks a plain, a TLS and a cluster Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use switchyard_shared::connect::Conn;
use switchyard_shared::keys::Keys;
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::Api;
use crate::ceiling::rate;
use crate::error::BenchError;

/// Interval of the stats polls that stop each queue's clock.
const POLL: Duration = Duration::from_millis(20);

/// One queue's figure.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueFigure {
    /// The queue's name.
    pub queue: String,
    /// Tasks the API accepted into it.
    pub accepted: u64,
    /// Of those, the ones that ended `succeeded`.
    pub succeeded: u64,
    /// First enqueue → the last of its tasks finished, seconds.
    pub secs: f64,
    /// `succeeded / secs`.
    pub tasks_per_s: f64,
}

/// What one load measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadFigures {
    /// Tasks sent.
    pub tasks: u64,
    /// Tasks refused (or in failed requests).
    pub refused: u64,
    /// First refusal, if any.
    pub first_error: Option<String>,
    /// Tasks that ended `succeeded`.
    pub succeeded: u64,
    /// First enqueue → every queue done, seconds.
    pub secs: f64,
    /// `succeeded / secs`: the end-to-end figure.
    pub tasks_per_s: f64,
    /// Per queue.
    pub queues: Vec<QueueFigure>,
    /// Whether the deadline cut it short.
    pub timed_out: bool,
}

/// Counters the producers share.
#[derive(Debug, Default)]
struct Sent {
    next_chunk: AtomicU64,
    refused: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The queues, chunk `c` going to `queues[c % n]`.
    pub queues: &'a [String],
    /// Echo tasks in all.
    pub tasks: u64,
    /// Tasks per batch request.
    pub batch: u64,
    /// Concurrent producers.
    pub clients: usize,
}

/// Sends `plan`'s tasks with its producers, and clocks each queue until its accepted tasks all
/// finished, or `deadline`.
pub async fn run(
    api: &Api,
    con: &Conn,
    keys: &Keys,
    plan: Plan<'_>,
    deadline: Instant,
) -> Result<LoadFigures, BenchError> {
    let Plan {
        queues,
        tasks,
        batch,
        clients,
    } = plan;
    let base = finished(con, keys, queues).await?;
    let accepted: Arc<Vec<AtomicU64>> =
        Arc::new(queues.iter().map(|_| AtomicU64::new(0)).collect());
    let (sent, done_sending) = (Arc::new(Sent::default()), Arc::new(AtomicBool::new(false)));
    let start = Instant::now();
    let mut producers = Vec::new();
    for _ in 0..clients.max(1) {
        let (api, sent, accepted) = (api.clone(), sent.clone(), accepted.clone());
        let queues = queues.to_vec();
        producers.push(tokio::spawn(async move {
            producer(&api, &queues, &sent, &accepted, tasks, batch, deadline).await;
        }));
    }
    let done = done_sending.clone();
    let producing = tokio::spawn(async move {
        for p in producers {
            let _ = p.await;
        }
        done.store(true, Ordering::SeqCst);
    });
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut figures: Vec<Option<QueueFigure>> = vec![None; queues.len()];
    let timed_out = loop {
        tick.tick().await;
        let sending_over = done_sending.load(Ordering::SeqCst);
        let now = finished(con, keys, queues).await?;
        for (i, q) in queues.iter().enumerate() {
            let (n, (s0, t0), (s1, t1)) = (accepted[i].load(Ordering::SeqCst), base[i], now[i]);
            if figures[i].is_none() && sending_over && t1 - t0 >= n {
                let secs = start.elapsed().as_secs_f64();
                let succeeded = s1 - s0;
                figures[i] = Some(QueueFigure {
                    queue: q.clone(),
                    accepted: n,
                    succeeded,
                    secs,
                    tasks_per_s: rate(succeeded, secs),
                });
            }
        }
        if figures.iter().all(Option::is_some) {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
    };
    producing.abort();
    let secs = start.elapsed().as_secs_f64();
    let queues: Vec<QueueFigure> = figures.into_iter().flatten().collect();
    let succeeded = queues.iter().map(|q| q.succeeded).sum();
    let first_error = sent.first_error.lock().map(|e| e.clone()).unwrap_or(None);
    Ok(LoadFigures {
        tasks,
        refused: sent.refused.load(Ordering::SeqCst),
        first_error,
        succeeded,
        secs,
        tasks_per_s: rate(succeeded, secs),
        queues,
        timed_out,
    })
}

/// One producer: takes the next chunk until every chunk is sent or the deadline passed.
async fn producer(
    api: &Api,
    queues: &[String],
    sent: &Sent,
    accepted: &[AtomicU64],
    tasks: u64,
    batch: u64,
    deadline: Instant,
) {
    loop {
        let chunk = sent.next_chunk.fetch_add(1, Ordering::SeqCst);
        let from = chunk * batch;
        if from >= tasks || Instant::now() >= deadline {
            return;
        }
        let q = (chunk % queues.len() as u64) as usize;
        let bodies: Vec<String> = (from..(from + batch).min(tasks))
            .map(|i| task_body(&queues[q], i))
            .collect();
        let refused = match tokio::time::timeout_at(deadline, api.enqueue_bodies(&bodies)).await {
            Ok(Ok(o)) => {
                accepted[q].fetch_add(o.ids.len() as u64, Ordering::SeqCst);
                o.refused.into_iter().map(|e| (1, e)).collect()
            }
            Ok(Err(e)) => vec![(bodies.len() as u64, e.to_string())],
            Err(_) => vec![(bodies.len() as u64, "deadline".to_owned())],
        };
        for (n, e) in refused {
            sent.refused.fetch_add(n, Ordering::SeqCst);
            if let Ok(mut first) = sent.first_error.lock() {
                first.get_or_insert(e);
            }
        }
    }
}

/// An echo task on `queue`.
fn task_body(queue: &str, i: u64) -> String {
    serde_json::json!({"kind": "tool", "queue": queue, "payload": {"tool": "echo", "args": {"i": i}}})
        .to_string()
}

/// `(succeeded, succeeded + failed + dead)` of each queue's stats hash, one call per queue (one
/// slot each in a cluster).
async fn finished(
    con: &Conn,
    keys: &Keys,
    queues: &[String],
) -> Result<Vec<(u64, u64)>, BenchError> {
    let mut out = Vec::with_capacity(queues.len());
    for q in queues {
        let (s, f, d): (Option<u64>, Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(keys.stats(q))
            .arg("succeeded")
            .arg("failed")
            .arg("dead")
            .query_async(&mut con.clone())
            .await?;
        let s = s.unwrap_or(0);
        out.push((s, s + f.unwrap_or(0) + d.unwrap_or(0)));
    }
    Ok(out)
}
