//! Promoting delayed tasks (`promote.lua`): those due leave the delayed set for a fresh entry
//! in their stream.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("promote.lua")));

/// Moves the given due tasks of `queue` back into its stream: `promote.lua`. Returns how many.
pub async fn promote<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    now_ms: u64,
    ids: &[String],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(keys.delayed(queue))
        .key(keys.stats(queue))
        .key(keys.lanes(queue))
        .arg(now_ms)
        .arg(keys.paused_channel())
        .arg(queue);
    for id in ids {
        // Each task returns to the lane its id names.
        let source = crate::task::source_of(id).unwrap_or(queue);
        inv.key(keys.task(queue, id))
            .key(keys.stream(source))
            .arg(id)
            .arg(crate::lane::split(source).1.unwrap_or(""));
    }
    Ok(inv.invoke_async(con).await?)
}
