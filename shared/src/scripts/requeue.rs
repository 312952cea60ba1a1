//! Handing a running task back to its queue at once (`requeue.lua`), as a worker does at
//! shutdown: a fresh entry, and the attempt is not counted.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;

use super::{Delivered, StatusReply, decode};
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("requeue.lua")));

/// What [`requeue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequeueStatus {
    /// Back in the stream under a fresh entry.
    Queued,
    /// The entry was no longer this consumer's.
    Fenced,
    /// The entry was stale; acked and dropped.
    Skipped,
}

/// Hands a running task back to its queue at once: `requeue.lua`.
pub async fn requeue<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    d: &Delivered,
) -> Result<RequeueStatus, StoreError> {
    let raw: String = SCRIPT
        .key(keys.stream(crate::task::source_of(&d.id).unwrap_or(queue)))
        .key(keys.stats(queue))
        .key(keys.task(queue, &d.id))
        .arg(consumer)
        .arg(&d.entry)
        .arg(&d.id)
        .invoke_async(con)
        .await?;
    decode::<StatusReply<RequeueStatus>>("requeue", raw).map(|r| r.status)
}
