//! Reading a queue's lanes set, pruned of lanes whose stream is empty (`lanes.lua`): workers do
//! it every heartbeat to know which sub-streams to read ([`crate::lane`]).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::keys::Keys;
use crate::lane;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lanes.lua")));

/// The lanes of `queue` that hold entries: one `SMEMBERS`, then (when there are any) one
/// `lanes.lua` call that removes the empty ones. A malformed member is left out.
pub async fn live_lanes<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
) -> Result<BTreeSet<String>, StoreError> {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.lanes(queue))
        .query_async(con)
        .await?;
    let members: Vec<String> = members
        .into_iter()
        .filter(|l| lane::is_valid_lane(l))
        .collect();
    if members.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(keys.lanes(queue));
    for l in &members {
        inv.key(keys.stream(&lane::source(queue, Some(l)))).arg(l);
    }
    let kept: Vec<String> = inv.invoke_async(con).await?;
    Ok(kept.into_iter().collect())
}
