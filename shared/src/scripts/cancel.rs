//! Cancelling a task (`cancel.lua`): a waiting task ends `cancelled` at once, a running one is
//! flagged and its worker notified, a finished or unknown one is left alone.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;

use super::{Retention, decode};
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("cancel.lua")));

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelStatus {
    /// It was waiting and is now cancelled.
    Cancelled,
    /// It is running; its worker was asked to abort it.
    Cancelling,
    /// It had already finished.
    Terminal,
    /// No such task.
    Missing,
}

/// Reply of [`cancel`].
#[derive(Debug, Clone, Deserialize)]
pub struct CancelReply {
    /// What happened.
    pub status: CancelStatus,
    /// The task's state afterwards (empty when missing).
    pub state: String,
}

/// Cancels a task: `cancel.lua`.
pub async fn cancel<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
    now: &str,
    retention: &Retention,
) -> Result<CancelReply, StoreError> {
    let raw: String = SCRIPT
        .key(keys.stream(crate::task::source_of(id).unwrap_or(queue)))
        .key(keys.stats(queue))
        .key(keys.events(queue))
        .key(keys.delayed(queue))
        .key(keys.task(queue, id))
        .arg(id)
        .arg(now)
        .arg(retention.result_ttl.as_secs())
        .arg(retention.events_maxlen)
        .arg(keys.cancel_channel())
        .arg(crate::task::entry_of(id).unwrap_or(""))
        .arg(queue)
        .invoke_async(con)
        .await?;
    decode("cancel", raw)
}
