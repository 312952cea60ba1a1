//! Queue statistics read from Redis in one pipeline per queue: stream length, the group's pending
//! count, lag and consumers, the delayed and dead-letter sizes, and the per-state counters the
//! scripts keep. Waiting = length − pending, exact even when Redis cannot tell the lag.

use std::collections::BTreeMap;

use redis::streams::StreamInfoGroupsReply;
use serde::Serialize;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::store::StoreError;
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
    /// Tasks waiting for a retry backoff or a scheduled time.
    pub delayed: u64,
    /// Entries in the dead-letter stream.
    pub dead: u64,
    /// Counters per state: queued/running/retrying are current counts; the terminal states and
    /// the event counters (enqueued, retries, fenced, …) count since the queue was created.
    pub counts: BTreeMap<String, i64>,
}

/// Reads the numbers of `queue`.
pub async fn queue_stats<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
) -> Result<QueueStats, StoreError> {
    let (depth, groups, delayed, dead, raw_counts): (
        u64,
        StreamInfoGroupsReply,
        u64,
        u64,
        BTreeMap<String, i64>,
    ) = redis::pipe()
        .cmd("XLEN")
        .arg(keys.stream(queue))
        .cmd("XINFO")
        .arg("GROUPS")
        .arg(keys.stream(queue))
        .cmd("ZCARD")
        .arg(keys.delayed(queue))
        .cmd("XLEN")
        .arg(keys.dead(queue))
        .cmd("HGETALL")
        .arg(keys.stats(queue))
        .query_async(con)
        .await?;
    let group = groups.groups.into_iter().find(|g| g.name == GROUP);
    let pending = group.as_ref().map_or(0, |g| g.pending as u64);
    let mut counts: BTreeMap<String, i64> = TaskState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    counts.extend(raw_counts);
    Ok(QueueStats {
        queue: queue.to_owned(),
        depth,
        pending,
        waiting: depth.saturating_sub(pending),
        lag: group.as_ref().and_then(|g| g.lag.map(|l| l as u64)),
        consumers: group.map_or(0, |g| g.consumers as u64),
        delayed,
        dead,
        counts,
    })
}
