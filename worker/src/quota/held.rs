//! The tenant slots this worker holds: refreshed every lease refresh (one
//! `running_refresh.lua` call per tenant for all its slots here, nothing when none are held) so
//! they outlive the tasks that hold them, and given back one `ZREM` each. A worker that dies
//! stops refreshing: its slots lapse one lease later.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_shared::Pool;
use switchyard_shared::keys::Keys;
use switchyard_shared::store::StoreError;
use switchyard_shared::tenant::running;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::context::lock;

/// Slots held here, by tenant; cheap to clone.
#[derive(Debug, Clone)]
pub struct Held {
    pool: Pool,
    keys: Keys,
    lease: Duration,
    slots: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl Held {
    /// No slots yet; each lasts `lease` past its last refresh.
    pub fn new(pool: Pool, keys: Keys, lease: Duration) -> Self {
        Self {
            pool,
            keys,
            lease,
            slots: Arc::default(),
        }
    }

    /// Records a slot of `tenant` just taken for `task_id`.
    pub fn add(&self, tenant: &str, task_id: &str) {
        lock(&self.slots)
            .entry(tenant.to_owned())
            .or_default()
            .insert(task_id.to_owned());
    }

    /// How many slots this worker holds.
    pub fn count(&self) -> usize {
        lock(&self.slots).values().map(HashSet::len).sum()
    }

    /// Gives back the slot of `task_id` of `tenant`. On Redis trouble it lapses a lease later.
    pub async fn release(&self, tenant: &str, task_id: &str) {
        {
            let mut slots = lock(&self.slots);
            if let Some(ids) = slots.get_mut(tenant) {
                ids.remove(task_id);
                if ids.is_empty() {
                    slots.remove(tenant);
                }
            }
        }
        let released = async {
            let mut con = self.pool.get().await?;
            running::release(&mut *con, &self.keys, tenant, task_id).await
        };
        if let Err(e) = released.await {
            warn!(component = "quota", tenant, task_id, error = %e, "could not give back a tenant slot; it lapses with its lease");
        }
    }

    /// Refreshes every slot held here. Returns how many were refreshed.
    pub async fn refresh(&self) -> Result<usize, StoreError> {
        let snapshot: Vec<(String, Vec<String>)> = lock(&self.slots)
            .iter()
            .map(|(t, ids)| (t.clone(), ids.iter().cloned().collect()))
            .collect();
        if snapshot.is_empty() {
            return Ok(0);
        }
        let mut con = self.pool.get().await?;
        let mut refreshed = 0;
        for (tenant, ids) in snapshot {
            let kept = running::refresh(&mut *con, &self.keys, &tenant, &ids, self.lease).await?;
            if (kept as usize) < ids.len() {
                // Released since the snapshot, or lapsed while this worker stalled.
                debug!(
                    component = "quota",
                    tenant,
                    held = ids.len(),
                    kept,
                    "tenant slots lapsed or released during their refresh"
                );
            }
            refreshed += kept as usize;
        }
        Ok(refreshed)
    }

    /// Refreshes the slots every `every` until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh().await {
                warn!(component = "quota", error = %e, "could not refresh tenant slots; retrying next time");
            }
        }
    }
}
