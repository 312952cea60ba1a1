//! A tenant's `max_running` quota, shared by every worker: a slot per running task in the
//! tenant's running set ([`Keys::tenant_running`]), taken before the task runs
//! (`running_acquire.lua`), refreshed with the worker's leases (`running_refresh.lua`) and
//! given back when the attempt ends (one `ZREM`). A slot lapses one lease after its last
//! refresh, so a killed worker's slots are free again when its tasks are reclaimed.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::keys::Keys;
use crate::store::StoreError;

static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("running_acquire.lua")));
static REFRESH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("running_refresh.lua")));

/// What [`acquire`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The slot is the task's; `held` slots are taken now, its own included.
    Granted {
        /// Slots held now.
        held: u64,
    },
    /// Every slot is held (`held` of them); nothing changed.
    Full {
        /// Slots held.
        held: u64,
    },
}

/// Takes a slot of tenant `tenant` (at most `limit` at once) for task `task_id`, lapsing after
/// `lease` unless refreshed.
pub async fn acquire<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    tenant: &str,
    limit: u64,
    task_id: &str,
    lease: Duration,
) -> Result<Acquired, StoreError> {
    let (granted, held): (i64, i64) = ACQUIRE
        .key(keys.tenant_running(tenant))
        .arg(limit)
        .arg(task_id)
        .arg(lease.as_millis() as u64)
        .invoke_async(con)
        .await?;
    let held = held.max(0) as u64;
    Ok(if granted == 1 {
        Acquired::Granted { held }
    } else {
        Acquired::Full { held }
    })
}

/// Pushes the lapse of the slots of `task_ids` (tenant `tenant`) one `lease` on. Returns how
/// many still held their slot.
pub async fn refresh<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    tenant: &str,
    task_ids: &[String],
    lease: Duration,
) -> Result<u64, StoreError> {
    if task_ids.is_empty() {
        return Ok(0);
    }
    let mut inv = REFRESH.key(keys.tenant_running(tenant));
    inv.arg(lease.as_millis() as u64);
    for id in task_ids {
        inv.arg(id);
    }
    let kept: i64 = inv.invoke_async(con).await?;
    Ok(kept.max(0) as u64)
}

/// Gives back the slot of task `task_id` of tenant `tenant` (nothing if it holds none).
pub async fn release<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    tenant: &str,
    task_id: &str,
) -> Result<(), StoreError> {
    redis::cmd("ZREM")
        .arg(keys.tenant_running(tenant))
        .arg(task_id)
        .query_async::<()>(con)
        .await?;
    Ok(())
}
