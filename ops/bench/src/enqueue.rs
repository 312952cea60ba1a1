//! Closed-loop producers: a fixed number of clients each sending its next request as soon as the
//! previous one is answered, single `POST /api/tasks` or batches, counting every refusal. The
//! enqueue phase and the end-to-end phase both load the dispatcher this way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use tokio::time::Instant;

use crate::api::Api;
use crate::ceiling::rate;
use crate::error::BenchError;
use crate::percentile::Percentiles;

/// How tasks are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `POST /api/tasks` per task.
    Single,
    /// `POST /api/tasks/batch` of this many tasks.
    Batch(usize),
}

impl Mode {
    fn chunk(self) -> u64 {
        match self {
            Self::Single => 1,
            Self::Batch(b) => b as u64,
        }
    }
}

/// What a closed-loop load got.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Load {
    /// Tasks to send.
    pub tasks: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Tasks per request.
    pub batch: u64,
    /// Tasks the dispatcher accepted.
    pub accepted: u64,
    /// Requests answered otherwise than as expected (non-202, transport error, bad shape).
    pub failed_requests: u64,
    /// Items of batch answers carrying an error.
    pub item_errors: u64,
    /// Tasks sent and not accepted: those of failed requests plus refused items.
    pub refused_tasks: u64,
    /// The first refusal, for the report.
    pub first_error: Option<String>,
    /// Whether the batch route answered 404 (the dispatcher has no batch endpoint).
    pub missing_route: bool,
    /// First request sent → last answer, seconds.
    pub secs: f64,
    /// `accepted / secs`.
    pub tasks_per_s: f64,
    /// Duration of each request.
    pub request_latency: Percentiles,
    /// Whether the deadline cut it short.
    pub timed_out: bool,
}

#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    failed_requests: u64,
    item_errors: u64,
    refused_tasks: u64,
    first_error: Option<String>,
    missing_route: bool,
    timed_out: bool,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn refused(&mut self, e: String) {
        self.first_error.get_or_insert(e);
    }
}

/// Sends echo tasks `first..first + tasks` with `clients` concurrent clients over `api`'s pool,
/// until all are answered or `deadline`; a missing batch route stops every client.
pub async fn closed_loop(
    api: &Api,
    mode: Mode,
    first: u64,
    tasks: u64,
    clients: usize,
    deadline: Instant,
) -> Result<Load, BenchError> {
    let next = Arc::new(AtomicU64::new(first));
    let stop = Arc::new(AtomicBool::new(false));
    let end = first + tasks;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        let (api, next, stop) = (api.clone(), next.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            client(api, mode, next, stop, end, deadline).await
        }));
    }
    let mut total = Tally::default();
    for h in handles {
        let t = h.await?;
        total.accepted += t.accepted;
        total.failed_requests += t.failed_requests;
        total.item_errors += t.item_errors;
        total.refused_tasks += t.refused_tasks;
        total.missing_route |= t.missing_route;
        total.timed_out |= t.timed_out;
        if total.first_error.is_none() {
            total.first_error = t.first_error;
        }
        total.latencies_us.extend(t.latencies_us);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Load {
        tasks,
        clients: clients.max(1),
        batch: mode.chunk(),
        accepted: total.accepted,
        failed_requests: total.failed_requests,
        item_errors: total.item_errors,
        refused_tasks: total.refused_tasks,
        first_error: total.first_error,
        missing_route: total.missing_route,
        secs,
        tasks_per_s: rate(total.accepted, secs),
        request_latency: Percentiles::from_micros(total.latencies_us),
        timed_out: total.timed_out,
    })
}

async fn client(
    api: Api,
    mode: Mode,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    end: u64,
    deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    let chunk = mode.chunk();
    while !stop.load(Ordering::Relaxed) {
        let from = next.fetch_add(chunk, Ordering::Relaxed);
        if from >= end {
            break;
        }
        let range = from..(from + chunk).min(end);
        let sent = Instant::now();
        let answer = tokio::time::timeout_at(deadline, async {
            match mode {
                Mode::Single => api.enqueue(range.start).await.map(|_| (1, Vec::new())),
                Mode::Batch(_) => api
                    .enqueue_batch(range.clone())
                    .await
                    .map(|o| (o.ids.len() as u64, o.refused)),
            }
        })
        .await;
        t.latencies_us.push(sent.elapsed().as_micros() as u64);
        match answer {
            Err(_) => {
                t.timed_out = true;
                stop.store(true, Ordering::Relaxed);
            }
            Ok(Ok((accepted, refused))) => {
                t.accepted += accepted;
                t.item_errors += refused.len() as u64;
                t.refused_tasks += refused.len() as u64;
                if let Some(e) = refused.into_iter().next() {
                    t.refused(e);
                }
            }
            Ok(Err(e)) => {
                if mode != Mode::Single && e.is_missing_route() {
                    t.missing_route = true;
                    stop.store(true, Ordering::Relaxed);
                } else {
                    t.failed_requests += 1;
                    t.refused_tasks += range.end - range.start;
                }
                t.refused(e.to_string());
            }
        }
    }
    t
}
