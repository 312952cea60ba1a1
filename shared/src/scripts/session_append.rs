//! Appending one chat turn to a session (`session_append.lua`), once per task, so a retried
//! chat task does not repeat its turn in the history.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("session_append.lua")));

/// Appends one chat turn to a session once per task: `session_append.lua`. Returns whether it
/// was appended (false: this task's turn was already there).
#[allow(clippy::too_many_arguments)]
pub async fn session_append<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    session_id: &str,
    task_id: &str,
    user_json: &str,
    assistant_json: &str,
    max_messages: usize,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let appended: i64 = SCRIPT
        .key(keys.session(session_id))
        .arg(task_id)
        .arg(user_json)
        .arg(assistant_json)
        .arg(max_messages.max(2))
        .arg(ttl.as_secs().max(1))
        .invoke_async(con)
        .await?;
    Ok(appended == 1)
}
