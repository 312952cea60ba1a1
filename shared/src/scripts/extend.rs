//! Extending the lease of running entries (`extend.lua`): their idle time is reset while this
//! consumer still holds them, so the reclaimer's `LEASE_TIMEOUT_MS` backstop leaves them alone.
//! One call covers all of a worker's entries of one queue (one `XPENDING` range, one multi-id
//! `XCLAIM`), so its cost per entry is a lookup, not a round trip or a script call.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;

use super::decode;
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("extend.lua")));

/// Refreshes the idle time of `entries` still held by `consumer`: `extend.lua`. Returns the
/// entries it no longer holds (taken by another worker, or acked), in the order given.
pub async fn extend<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    entries: &[String],
) -> Result<Vec<String>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(keys.stream(queue)).arg(consumer);
    for e in entries {
        inv.arg(e);
    }
    let raw: String = inv.invoke_async(con).await?;
    decode("extend", raw)
}
