//! What this dispatcher remembers about tenant API keys: key hash → tenant (or "no such key"),
//! each answer kept for `TENANT_CACHE_MS`, so a request with a tenant key does not cost a Redis
//! round trip every time. A key revoked or changed on another dispatcher takes effect here
//! within that time; on the dispatcher that made the change, at once ([`KeyCache::forget`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_shared::keys::Keys;
use switchyard_shared::store::{Pool, StoreError};
use switchyard_shared::tenant::{self, Tenant};

/// Most answers kept. Unknown keys are remembered too (a client retrying a bad key should not
/// cost a Redis call each time), so the map is bounded: when full it is emptied, which costs
/// one Redis read per key in use afterwards.
const MAX_ENTRIES: usize = 10_000;

/// Key hash → (when read, the tenant or `None` for an unknown key).
type Entries = HashMap<String, (Instant, Option<Arc<Tenant>>)>;

/// The remembered answers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyCache {
    ttl: Duration,
    entries: Arc<Mutex<Entries>>,
}

impl KeyCache {
    /// A cache keeping each answer for `ttl` (zero: none kept).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
    }

    /// The tenant whose key is `key`, from memory when read less than the TTL ago.
    pub async fn resolve(
        &self,
        pool: &Pool,
        keys: &Keys,
        key: &str,
    ) -> Result<Option<Arc<Tenant>>, StoreError> {
        let hash = tenant::hash_key(key);
        if let Some(hit) = self.cached(&hash) {
            return Ok(hit);
        }
        let mut con = pool.get().await?;
        let found = tenant::by_key_hash(&mut *con, keys, &hash)
            .await?
            .map(Arc::new);
        if !self.ttl.is_zero() {
            let mut map = self.lock();
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(hash, (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    fn cached(&self, hash: &str) -> Option<Option<Arc<Tenant>>> {
        let map = self.lock();
        let (at, t) = map.get(hash)?;
        (at.elapsed() < self.ttl).then(|| t.clone())
    }

    /// Drops what is known about the key with hash `key_hash` (after a change made here).
    pub fn forget(&self, key_hash: &str) {
        self.lock().remove(key_hash);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
