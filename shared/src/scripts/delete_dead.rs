//! Deleting a dead letter for good (`delete_dead.lua`), from the web console: the task leaves
//! the dead stream and its record and output are removed.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;

use super::decode;
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("delete_dead.lua")));

/// What [`delete_dead`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    /// Deleted.
    Deleted,
    /// The task exists but is not dead.
    NotDead,
    /// No such task.
    Missing,
}

/// Reply of [`delete_dead`].
#[derive(Debug, Clone, Deserialize)]
pub struct DeleteReply {
    /// What happened.
    pub status: DeleteStatus,
    /// The task's state (before).
    pub state: String,
}

/// Deletes a dead-lettered task: `delete_dead.lua`.
pub async fn delete_dead<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<DeleteReply, StoreError> {
    let raw: String = SCRIPT
        .key(keys.dead(queue))
        .key(keys.task(queue, id))
        .key(keys.output(queue, id))
        .invoke_async(con)
        .await?;
    decode("delete_dead", raw)
}
