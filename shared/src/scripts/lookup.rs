//! Reading a task in any state (`lookup.lua`): its hash, else the stream entry its id names,
//! plus the pending info of its current entry, in one atomic read-only call, decoded into the
//! one [`Task`] every reader answers ([`Task::assemble`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use crate::clock;
use crate::keys::Keys;
use crate::record::{PendingInfo, Task};
use crate::store::StoreError;
use crate::task;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lookup.lua")));

/// What `lookup.lua` answers: hash, current entry, its fields, its pending info.
type Reply = (
    HashMap<String, String>,
    String,
    HashMap<String, String>,
    Vec<Value>,
);

/// Reads task `id` of `queue`; `None` when it does not exist (never did, or expired).
pub async fn lookup<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<Option<Task>, StoreError> {
    let (hash, entry, fields, pending): Reply = SCRIPT
        .key(keys.task(queue, id))
        .key(keys.stream(task::source_of(id).unwrap_or(queue)))
        .arg(task::entry_of(id).unwrap_or(""))
        .invoke_async(con)
        .await?;
    let pending = decode_pending(pending).map_err(|message| StoreError::Reply {
        script: "lookup",
        message,
    })?;
    let entry = (!entry.is_empty()).then_some((entry, fields));
    // A fresh entry's task is `{source}-{entry}`: the lane is part of its id.
    let source = task::source_of(id).unwrap_or(queue);
    Task::assemble(id, source, hash, entry, pending, clock::now_ms()).map_err(|source| {
        StoreError::Record {
            id: id.to_owned(),
            source,
        }
    })
}

/// `{consumer, idle ms, deliveries}`, or nothing when the entry is not pending.
fn decode_pending(v: Vec<Value>) -> Result<Option<PendingInfo>, String> {
    let [consumer, idle, deliveries] = match <[Value; 3]>::try_from(v) {
        Ok(parts) => parts,
        Err(v) if v.is_empty() => return Ok(None),
        Err(v) => return Err(format!("pending info of {} parts", v.len())),
    };
    let err = |e: redis::ParsingError| format!("pending info: {e}");
    Ok(Some(PendingInfo {
        consumer: redis::from_redis_value(consumer).map_err(err)?,
        idle_ms: redis::from_redis_value(idle).map_err(err)?,
        deliveries: redis::from_redis_value(deliveries).map_err(err)?,
    }))
}
