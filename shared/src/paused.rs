//! Which queues are paused: the hash [`Keys::paused`] (queue name → when it was paused, ms),
//! with its one writer ([`pause`], [`resume`]) and one reader ([`read`]). A paused queue keeps
//! accepting tasks; workers take no new entries from it (running ones finish). Each change is
//! announced on [`Keys::paused_channel`] so workers re-read at once; the heartbeat-paced re-read
//! covers a notice that was missed.

use std::collections::BTreeMap;

use crate::clock;
use crate::keys::Keys;
use crate::store::StoreError;

/// What a pause or resume found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Whether the queue's state changed (false: it was already paused / running).
    pub changed: bool,
    /// When the queue was paused (ms), while it is paused.
    pub paused_since_ms: Option<u64>,
}

/// Pauses `queue` (idempotent: an already paused queue keeps its first pause time), then
/// announces it.
pub async fn pause<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
) -> Result<Change, StoreError> {
    let (added, since, _): (bool, Option<u64>, i64) = redis::pipe()
        .atomic()
        .cmd("HSETNX")
        .arg(keys.paused())
        .arg(queue)
        .arg(clock::now_ms())
        .cmd("HGET")
        .arg(keys.paused())
        .arg(queue)
        .cmd("PUBLISH")
        .arg(keys.paused_channel())
        .arg(queue)
        .query_async(con)
        .await?;
    Ok(Change {
        changed: added,
        paused_since_ms: since,
    })
}

/// Resumes `queue` (idempotent), then announces it.
pub async fn resume<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
) -> Result<Change, StoreError> {
    let (removed, _): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("HDEL")
        .arg(keys.paused())
        .arg(queue)
        .cmd("PUBLISH")
        .arg(keys.paused_channel())
        .arg(queue)
        .query_async(con)
        .await?;
    Ok(Change {
        changed: removed > 0,
        paused_since_ms: None,
    })
}

/// Every paused queue with the time it was paused (ms). A field whose value is not a number
/// (written by hand) still counts as paused, since 0.
pub async fn read<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.paused())
        .query_async(con)
        .await?;
    Ok(raw
        .into_iter()
        .map(|(q, since)| (q, since.parse().unwrap_or(0)))
        .collect())
}
