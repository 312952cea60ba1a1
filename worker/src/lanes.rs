//! The lanes of this worker's queues ([`switchyard_shared::lane`]): read (and pruned of empty
//! ones) by the paused-queue watcher every heartbeat and on a notice, with the consumer group
//! created on a lane the worker has not seen before, so the consumer can read it at once.

use std::collections::{BTreeMap, BTreeSet};

use switchyard_shared::keys::Keys;
use switchyard_shared::store::{self, StoreError};
use switchyard_shared::{lane, scripts};

/// Queue → its lanes that hold entries, for each of `queues`; `known` is what the worker knew
/// before: a lane new to it gets its group created (idempotent) before it is answered.
pub async fn read<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queues: &[String],
    known: &BTreeMap<String, BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
    let mut out = BTreeMap::new();
    for q in queues {
        let lanes = scripts::lanes::live_lanes(con, keys, q).await?;
        let new: Vec<String> = lanes
            .iter()
            .filter(|l| !known.get(q).is_some_and(|k| k.contains(*l)))
            .map(|l| lane::source(q, Some(l)))
            .collect();
        if !new.is_empty() {
            store::ensure_groups(con, keys, &new).await?;
        }
        if !lanes.is_empty() {
            out.insert(q.clone(), lanes);
        }
    }
    Ok(out)
}
