//! Queue statistics read from Redis in one pipeline for all queues: stream length, the group's
//! pending count, lag and consumers, the oldest pending entry, the delayed and dead-letter
//! sizes, and the per-state counters the scripts keep. Waiting = length − pending, exact even
//! when Redis cannot tell the lag; the current `queued` and `running` counts are derived from
//! those ([`derive_current`]), not counted.
//!
//! A queue's lanes ([`switchyard_shared::lane`]) are read too (its lanes set first, then per
//! lane one `XLEN` and one `XPENDING` summary in the same pipeline as the rest): `depth`,
//! `pending` and `waiting` are totals over the queue's own stream and its lanes, and `lanes`
//! lists each one's backlog with its priority and tenant.

use std::collections::BTreeMap;

use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};
use serde::Serialize;
use switchyard_shared::clock;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::lane::{self, Priority};
use switchyard_shared::store::{self, StoreError};
use switchyard_shared::task::TaskState;

/// One queue's numbers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// `XLEN` of the stream: waiting plus in-flight entries.
    pub depth: u64,
    /// Entries delivered to a worker and not yet finished.
    pub pending: u64,
    /// Entries not yet delivered (depth − pending).
    pub waiting: u64,
    /// The group's lag as Redis reports it (`null` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Consumers in the group (live or not yet removed).
    pub consumers: u64,
    /// Age in ms of the oldest pending entry (since it was enqueued); 0 when none.
    pub oldest_pending_ms: u64,
    /// Tasks waiting for a retry backoff or a scheduled time.
    pub delayed: u64,
    /// Entries in the dead-letter stream.
    pub dead: u64,
    /// Counters per state: queued/running/retrying are current counts; the terminal states and
    /// the event counters (enqueued, retries, fenced, …) count since the queue was created.
    pub counts: BTreeMap<String, i64>,
    /// The backlog of each lane: the queue's own stream (the admin key's `normal` tasks) first.
    pub lanes: Vec<LaneStats>,
}

/// One lane's backlog.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LaneStats {
    /// `high`, `normal` or `low`.
    pub priority: Priority,
    /// The tenant whose tasks wait here; `null` for the admin key's.
    pub tenant: Option<String>,
    /// Entries not yet delivered.
    pub waiting: u64,
    /// Entries delivered and not finished (running).
    pub running: u64,
}

impl LaneStats {
    fn of(lane: Option<&str>, depth: u64, pending: u64) -> Self {
        let tenant = lane
            .and_then(|l| l.split_once('.'))
            .map(|(_, t)| t.to_owned());
        Self {
            priority: lane::priority_of(&lane::source("q", lane)),
            tenant,
            waiting: depth.saturating_sub(pending),
            running: pending,
        }
    }
}

type Row = (
    u64,
    StreamInfoGroupsReply,
    StreamPendingReply,
    u64,
    u64,
    BTreeMap<String, i64>,
);

/// Reads the numbers of every queue in one round trip. A missing stream or group (Redis
/// restarted empty) is re-created and the read repeated, instead of failing.
pub async fn sample<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queues: &[String],
) -> Result<Vec<QueueStats>, StoreError> {
    match read(con, keys, queues).await {
        Err(StoreError::Redis(e))
            if e.to_string().contains("no such key") || e.code() == Some("NOGROUP") =>
        {
            store::ensure_groups(con, keys, queues).await?;
            read(con, keys, queues).await
        }
        other => other,
    }
}

/// The lanes of each of `queues` (sorted), from their lanes sets; a malformed member is left
/// out.
async fn read_lanes<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queues: &[String],
) -> Result<Vec<Vec<String>>, StoreError> {
    let mut pipe = redis::pipe();
    for q in queues {
        pipe.cmd("SMEMBERS").arg(keys.lanes(q));
    }
    let sets: Vec<Vec<String>> = pipe.query_async(con).await?;
    Ok(sets
        .into_iter()
        .map(|mut l| {
            l.retain(|x| lane::is_valid_lane(x));
            l.sort();
            l
        })
        .collect())
}

async fn read<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queues: &[String],
) -> Result<Vec<QueueStats>, StoreError> {
    let lanes = read_lanes(con, keys, queues).await?;
    let mut pipe = redis::pipe();
    for (q, ls) in queues.iter().zip(&lanes) {
        let stream = keys.stream(q);
        pipe.cmd("XLEN").arg(&stream);
        pipe.cmd("XINFO").arg("GROUPS").arg(&stream);
        pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
        pipe.cmd("ZCARD").arg(keys.delayed(q));
        pipe.cmd("XLEN").arg(keys.dead(q));
        pipe.cmd("HGETALL").arg(keys.stats(q));
        for l in ls {
            let stream = keys.stream(&lane::source(q, Some(l)));
            pipe.cmd("XLEN").arg(&stream);
            // A lane's group may not exist yet (no worker saw the lane): an error reads as 0.
            pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
        }
    }
    pipe.ignore_errors();
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(con).await?;
    let mut replies = replies.into_iter();
    let now = clock::now_ms();
    let mut out = Vec::with_capacity(queues.len());
    for (q, ls) in queues.iter().zip(&lanes) {
        let row: Vec<redis::Value> = replies
            .by_ref()
            .take(6)
            .collect::<redis::RedisResult<_>>()?;
        let row: Row =
            redis::from_redis_value(redis::Value::Array(row)).map_err(redis::RedisError::from)?;
        let mut stats = queue_stats(q, row, now);
        for l in ls {
            let depth: u64 = replies
                .next()
                .and_then(|r| r.ok())
                .and_then(|v| redis::from_redis_value(v).ok())
                .unwrap_or(0);
            let summary = replies
                .next()
                .and_then(|r| r.ok())
                .and_then(|v| redis::from_redis_value::<StreamPendingReply>(v).ok());
            let (pending, oldest) = match summary {
                Some(StreamPendingReply::Data(d)) => (d.count as u64, entry_ms(&d.start_id)),
                _ => (0, None),
            };
            stats.add_lane(LaneStats::of(Some(l), depth, pending), oldest, now);
        }
        out.push(stats);
    }
    Ok(out)
}

impl QueueStats {
    /// Adds a lane's numbers to the totals (its oldest pending entry enqueued at `oldest` ms).
    fn add_lane(&mut self, l: LaneStats, oldest: Option<u64>, now: u64) {
        self.depth += l.waiting + l.running;
        self.pending += l.running;
        self.waiting += l.waiting;
        if let Some(t) = oldest {
            self.oldest_pending_ms = self.oldest_pending_ms.max(now.saturating_sub(t));
        }
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, n) in [
            (TaskState::Running, l.running),
            (TaskState::Queued, l.waiting),
        ] {
            *self.counts.entry(state.as_str().to_owned()).or_insert(0) += as_i64(n);
        }
        self.lanes.push(l);
    }
}

/// The numbers of queue `q`'s own stream and its other keys.
fn queue_stats(q: &str, row: Row, now: u64) -> QueueStats {
    let (depth, groups, pending_summary, delayed, dead, raw) = row;
    let group = groups.groups.into_iter().find(|g| g.name == GROUP);
    let pending = group.as_ref().map_or(0, |g| g.pending as u64);
    let oldest_pending_ms = match pending_summary {
        StreamPendingReply::Data(d) => entry_ms(&d.start_id).map_or(0, |t| now.saturating_sub(t)),
        _ => 0,
    };
    let mut counts: BTreeMap<String, i64> = TaskState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    counts.extend(raw);
    let waiting = depth.saturating_sub(pending);
    derive_current(&mut counts, waiting, pending, delayed);
    QueueStats {
        queue: q.to_owned(),
        depth,
        pending,
        waiting,
        lag: group.as_ref().and_then(|g| g.lag.map(|l| l as u64)),
        consumers: group.map_or(0, |g| g.consumers as u64),
        oldest_pending_ms,
        delayed,
        dead,
        counts,
        lanes: vec![LaneStats::of(None, depth, pending)],
    }
}

/// Sets the current `queued` and `running` counts from the stream and the group instead of
/// counters (the lean layout writes nothing when a task is queued or starts): running = pending
/// entries; queued = waiting entries plus the tasks scheduled in the delayed set (its size less
/// the `retrying` tasks, which the scripts still count: a retry is written anyway).
pub fn derive_current(
    counts: &mut BTreeMap<String, i64>,
    waiting: u64,
    pending: u64,
    delayed: u64,
) {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let retrying = counts
        .get(TaskState::Retrying.as_str())
        .copied()
        .unwrap_or(0);
    let scheduled = (as_i64(delayed) - retrying).max(0);
    counts.insert(TaskState::Running.as_str().to_owned(), as_i64(pending));
    counts.insert(
        TaskState::Queued.as_str().to_owned(),
        as_i64(waiting) + scheduled,
    );
}

/// The millisecond time part of a stream entry id (`1700000000000-0`).
pub fn entry_ms(entry: &str) -> Option<u64> {
    entry.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}
