//! A tenant's requests-per-minute quota at enqueue (`rpm.lua`): one atomic check-and-count in
//! one round trip, shared by every dispatcher.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("rpm.lua")));

/// The length of a quota window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What [`admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The tasks fit in the tenant's window and were counted.
    Admitted,
    /// Over the quota; the window has room again after this long.
    Refused {
        /// Until the current window ends.
        retry_after: Duration,
    },
}

/// Counts `cost` tasks of tenant `tenant_id` against `limit` per [`WINDOW`], or refuses them
/// all (a refused request is not counted).
pub async fn admit<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    tenant_id: &str,
    limit: u64,
    cost: u64,
) -> Result<Admission, StoreError> {
    let (admitted, ttl_ms): (i64, i64) = SCRIPT
        .key(keys.tenant_rpm(tenant_id))
        .arg(limit)
        .arg(cost)
        .arg(WINDOW.as_millis() as u64)
        .invoke_async(con)
        .await?;
    Ok(if admitted == 1 {
        Admission::Admitted
    } else {
        Admission::Refused {
            retry_after: Duration::from_millis(ttl_ms.max(0) as u64),
        }
    })
}
