//! Enqueue-to-done latency under an open-loop arrival: tasks sent at a fixed rate on a 1 ms
//! tick whatever the answers do, each timed from just before its request to the moment a tail of
//! the queue's events stream sees it succeed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use serde::Serialize;
use switchyard_shared::events;
use switchyard_shared::keys::Keys;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::{Api, RequestError};
use crate::ceiling::rate;
use crate::e2e::QUEUE;
use crate::error::BenchError;
use crate::percentile::Percentiles;

/// Period of the arrival schedule.
const TICK: Duration = Duration::from_millis(1);
/// How long the tail waits for the last events once every request is answered.
const SETTLE: Duration = Duration::from_secs(10);
/// Events read per XREAD, and how long one blocks (bounds how late the tail notices a stop).
const TAIL_COUNT: usize = 1000;
const TAIL_BLOCK_MS: u64 = 100;
/// First `args.i` of latency tasks, apart from the end-to-end ones.
const FIRST_INDEX: u64 = 1_000_000_000;

/// What the latency phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Requested arrival rate, tasks/s.
    pub rate_requested: f64,
    /// Tasks accepted, over the sending time: the rate achieved, tasks/s.
    pub rate_achieved: f64,
    /// Length of the arrival schedule, seconds.
    pub secs: f64,
    /// Tasks scheduled.
    pub tasks: u64,
    /// Tasks the dispatcher accepted.
    pub accepted: u64,
    /// Requests answered otherwise than 202, or with refused items.
    pub failed_requests: u64,
    /// Tasks sent and not accepted.
    pub refused_tasks: u64,
    /// The first refusal.
    pub first_error: Option<String>,
    /// Whether batches were sent (false: one request per task, batch endpoint missing).
    pub batched: bool,
    /// Send → `succeeded` event.
    pub latency: Percentiles,
    /// Accepted tasks whose `succeeded` event never came.
    pub never_seen: u64,
    /// Accepted tasks that ended in another terminal state.
    pub ended_otherwise: u64,
    /// Whether the phase deadline cut it short.
    pub timed_out: bool,
}

/// When a task's terminal event was seen and whether it was `succeeded`.
type Seen = Arc<Mutex<HashMap<String, (Instant, bool)>>>;
/// Accepted task ids with their send instants.
type Sent = Arc<Mutex<Vec<(String, Instant)>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked sender leaves the collected samples intact: keep using them.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends tasks at `rate` per second for `duration` (batches of at most `batch` when `batched`),
/// and times each to its `succeeded` event, tailed on the connection `tail_con`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    api: &Api,
    tail_con: MultiplexedConnection,
    keys: &Keys,
    rate_requested: f64,
    duration: Duration,
    batch: usize,
    batched: bool,
    deadline: Instant,
) -> Result<Latency, BenchError> {
    let seen: Seen = Arc::default();
    let sent: Sent = Arc::default();
    let stop = CancellationToken::new();
    let mut tail_con = tail_con;
    // The tail starts after the newest event existing now, before any task is sent: as `$`,
    // but with no race between its first XREAD and the first send.
    let newest: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(keys.events(QUEUE))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut tail_con)
        .await?;
    let from = newest
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
    let tail = tokio::spawn(tail(
        tail_con,
        keys.events(QUEUE),
        from,
        seen.clone(),
        stop.clone(),
    ));

    let tasks = (rate_requested * duration.as_secs_f64()).ceil().max(1.0) as u64;
    let mut requests: JoinSet<Result<(), (u64, RequestError)>> = JoinSet::new();
    let mut out = Latency {
        rate_requested,
        tasks,
        batched,
        ..Latency::default()
    };

    let start = Instant::now();
    let mut scheduled = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while scheduled < tasks {
        tick.tick().await;
        if Instant::now() >= deadline {
            out.timed_out = true;
            break;
        }
        let due = ((rate_requested * start.elapsed().as_secs_f64()) as u64).min(tasks);
        while scheduled < due {
            let n = (due - scheduled).min(if batched { batch as u64 } else { 1 });
            let range = FIRST_INDEX + scheduled..FIRST_INDEX + scheduled + n;
            let (api, sent) = (api.clone(), sent.clone());
            requests.spawn(async move { send(&api, range, sent).await });
            scheduled += n;
        }
        while let Some(r) = requests.try_join_next() {
            note(&mut out, r);
        }
    }
    let sending = start.elapsed();
    out.secs = sending.as_secs_f64();
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, requests.join_next()).await {
        note(&mut out, r);
    }
    if !requests.is_empty() {
        out.timed_out = true;
        requests.abort_all();
    }

    // Wait, bounded, until the tail has seen every accepted task end.
    let settle_by = (Instant::now() + SETTLE).min(deadline);
    loop {
        let all = {
            let sent = lock(&sent);
            let seen = lock(&seen);
            sent.iter().all(|(id, _)| seen.contains_key(id))
        };
        if all || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    tail.await??;

    let sent = std::mem::take(&mut *lock(&sent));
    let seen = lock(&seen);
    let mut samples = Vec::with_capacity(sent.len());
    for (id, t_send) in &sent {
        match seen.get(id) {
            Some((t_done, true)) => {
                samples.push(t_done.saturating_duration_since(*t_send).as_micros() as u64);
            }
            Some((_, false)) => out.ended_otherwise += 1,
            None => out.never_seen += 1,
        }
    }
    out.accepted = sent.len() as u64;
    out.rate_achieved = rate(out.accepted, out.secs);
    out.latency = Percentiles::from_micros(samples);
    Ok(out)
}

/// Counts the outcome of one request.
fn note(out: &mut Latency, r: Result<Result<(), (u64, RequestError)>, tokio::task::JoinError>) {
    match r {
        Ok(Ok(())) => {}
        Ok(Err((n, e))) => {
            out.failed_requests += 1;
            out.refused_tasks += n;
            out.first_error.get_or_insert(e.to_string());
        }
        Err(e) => {
            out.failed_requests += 1;
            out.first_error
                .get_or_insert(format!("request task died: {e}"));
        }
    }
}

/// Sends tasks `range` in one request (batch when more than one) and records the accepted ids
/// with the instant just before the request left.
async fn send(
    api: &Api,
    range: std::ops::Range<u64>,
    sent: Sent,
) -> Result<(), (u64, RequestError)> {
    let n = range.end - range.start;
    let t_send = Instant::now();
    if n == 1 {
        let id = api.enqueue(range.start).await.map_err(|e| (1, e))?;
        lock(&sent).push((id, t_send));
        return Ok(());
    }
    let outcome = api.enqueue_batch(range).await.map_err(|e| (n, e))?;
    lock(&sent).extend(outcome.ids.into_iter().map(|id| (id, t_send)));
    let refused = outcome.refused.len() as u64;
    match outcome.refused.into_iter().next() {
        None => Ok(()),
        Some(e) => Err((refused, RequestError::Shape(format!("item refused: {e}")))),
    }
}

/// Reads the events stream `key` after `from` until `stop`, noting when each task's terminal
/// event arrived.
async fn tail(
    mut con: MultiplexedConnection,
    key: String,
    mut from: String,
    seen: Seen,
    stop: CancellationToken,
) -> Result<(), BenchError> {
    while !stop.is_cancelled() {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(TAIL_COUNT)
            .arg("BLOCK")
            .arg(TAIL_BLOCK_MS)
            .arg("STREAMS")
            .arg(&key)
            .arg(&from)
            .query_async(&mut con)
            .await?;
        // Every event of one reply arrived at this instant.
        let now = Instant::now();
        let Some(reply) = reply else { continue };
        let mut seen = lock(&seen);
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let event = events::decode(&entry).map_err(|e| BenchError::Reply(e.to_string()))?;
            for id in event.ids {
                seen.entry(id).or_insert((now, event.state == "succeeded"));
            }
            from = entry.id;
        }
    }
    Ok(())
}
