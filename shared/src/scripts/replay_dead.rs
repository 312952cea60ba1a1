//! Replaying a dead letter (`replay_dead.lua`): the task leaves the dead stream and is queued
//! again with a fresh attempt budget.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;

use super::decode;
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("replay_dead.lua")));

/// What [`replay_dead`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Queued again.
    Queued,
    /// The task exists but is not dead.
    NotDead,
    /// No such task.
    Missing,
}

/// Reply of [`replay_dead`].
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayReply {
    /// What happened.
    pub status: ReplayStatus,
    /// The task's state afterwards.
    pub state: String,
}

/// Queues a dead-lettered task again: `replay_dead.lua`.
pub async fn replay_dead<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<ReplayReply, StoreError> {
    // The task goes back to the lane its id names.
    let source = crate::task::source_of(id).unwrap_or(queue);
    let (queue, lane) = crate::lane::split(source);
    let raw: String = SCRIPT
        .key(keys.stream(source))
        .key(keys.stats(queue))
        .key(keys.dead(queue))
        .key(keys.task(queue, id))
        .key(keys.lanes(queue))
        .arg(id)
        .arg(lane.unwrap_or(""))
        .arg(keys.paused_channel())
        .arg(queue)
        .invoke_async(con)
        .await?;
    decode("replay_dead", raw)
}
