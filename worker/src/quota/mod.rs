//! Tenants' worker-side quotas (issue 21): `max_running` and `tpm`, read from the tenant record
//! (cached for `TENANT_CACHE_MS`) and enforced by every worker together through Redis.
//!
//! Before a task of a tenant with `max_running` runs, it takes one of the tenant's slots
//! ([`switchyard_shared::tenant::running`]); when every slot is held it waits on this worker,
//! lending its concurrency slot meanwhile (the provider limits' [`Slots`], with a waiting room
//! of its own: [`ROOM`] × `WORKER_CONCURRENCY`), and never fails for it; granted, it runs at
//! once and the lent slot comes back as the next one frees. Waiters of one tenant on one worker
//! queue in order behind one of them, which asks Redis again when a task of that tenant ends
//! here, or every [`POLL`] for slots freed elsewhere. A task's `tpm` budget travels with its
//! provider calls as [`TenantBudget`] (the [`crate::limiter`] reserves and settles it).
//!
//! A task without a tenant (the admin key's) costs nothing here; a tenant without these quotas
//! costs one read of its record per `TENANT_CACHE_MS` per worker. Redis trouble never stops a
//! task: it then runs without the quota and the worker logs why.
//!
//! # Layout
//! - [`held`]: the slots this worker holds, refreshed with its leases and given back.

pub mod held;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::histogram;
use switchyard_shared::Pool;
use switchyard_shared::keys::Keys;
use switchyard_shared::metrics as m;
use switchyard_shared::store::StoreError;
use switchyard_shared::tenant::{self, running::Acquired};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::context::{Ctx, lock};
use crate::limiter::{Slots, TenantBudget};
pub use held::Held;

/// How often the first waiter of a tenant whose slots are all held asks Redis again, besides
/// when a task of that tenant ends on this worker.
pub const POLL: Duration = Duration::from_millis(250);

/// How many tasks waiting for their tenant's quota a worker holds without a concurrency slot,
/// per slot (`WORKER_CONCURRENCY`). A waiter costs memory and its pending entry (refreshed with
/// the others, no Redis call of its own), so the room is generous; bounded, so a tenant's flood
/// cannot pull a whole queue into one worker. Past it, waiters keep their slot.
pub const ROOM: usize = 4;

/// The quotas of the tenants whose tasks this worker runs; cheap to clone. [`Quotas::off`]
/// enforces none (tests that build executors by hand).
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    keys: Keys,
    /// How long a slot outlives its last refresh (`LEASE_TIMEOUT_MS`).
    lease: Duration,
    /// How long a tenant's quotas are trusted (`TENANT_CACHE_MS`).
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<tenant::Quotas>)>>,
    /// Per tenant: the queue of this worker's waiters and the wake-up of its first one.
    lines: Mutex<HashMap<String, Arc<Line>>>,
    held: Held,
    slots: Option<Slots>,
}

#[derive(Debug, Default)]
struct Line {
    turn: tokio::sync::Mutex<()>,
    freed: Notify,
}

/// What a task may do under its tenant's quotas: its `tpm` budget, if any, and the slot to
/// give back when it ends ([`Quotas::leave`]).
#[derive(Debug, Default)]
pub struct Entry {
    /// The budget its provider calls reserve against.
    pub budget: Option<TenantBudget>,
    slot: Option<(String, String)>,
}

impl Quotas {
    /// No quotas.
    pub fn off() -> Self {
        Self::default()
    }

    /// Quotas read through `pool`, slots lasting `lease` past their last refresh, records cached
    /// for `ttl`; waiters lend their concurrency slot through `slots`.
    pub fn new(
        pool: Pool,
        keys: Keys,
        lease: Duration,
        ttl: Duration,
        slots: Option<Slots>,
    ) -> Self {
        let held = Held::new(pool.clone(), keys.clone(), lease);
        Self {
            inner: Some(Arc::new(Inner {
                pool,
                keys,
                lease,
                ttl,
                cache: Mutex::default(),
                lines: Mutex::default(),
                held,
                slots,
            })),
        }
    }

    /// A worker's quotas: its pool and keys, slots lasting `LEASE_TIMEOUT_MS` past their last
    /// refresh, records cached for `TENANT_CACHE_MS`; waiters lend slots of `permits` (the
    /// runner's), [`ROOM`] × `WORKER_CONCURRENCY` at most.
    pub fn of(ctx: &Ctx, permits: Arc<Semaphore>) -> Self {
        let (pool, keys, cfg) = (ctx.pool.clone(), ctx.keys.clone(), &ctx.cfg);
        let slots = Slots::new(permits, ROOM * cfg.worker_concurrency);
        Self::new(pool, keys, cfg.lease_timeout, cfg.tenant_cache, Some(slots))
    }

    /// Refreshes the slots this worker holds every `every` (its lease refresh) until
    /// `shutdown`: a future for the worker's background duties.
    pub fn refresh(
        &self,
        every: Duration,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let held = self.inner.as_ref().map(|i| i.held.clone());
        async move {
            if let Some(held) = held {
                held.run(every, shutdown).await;
            }
        }
    }

    /// Waits until task `task_id` of `tenant` may run: a slot when its tenant has
    /// `max_running`, and its `tpm` budget. Without a tenant: at once, no Redis call.
    pub async fn enter(&self, tenant: Option<&str>, task_id: &str) -> Entry {
        let (Some(inner), Some(tenant)) = (&self.inner, tenant) else {
            return Entry::default();
        };
        let Some(q) = inner.quotas(tenant).await else {
            return Entry::default();
        };
        let budget = q.tpm.map(|tpm| TenantBudget {
            tenant: tenant.to_owned(),
            tpm,
        });
        let slot = match q.max_running {
            Some(limit) => inner.acquire(tenant, limit, task_id).await,
            None => None,
        };
        Entry { budget, slot }
    }

    /// Gives back `entry`'s slot, if it holds one, and wakes this worker's next waiter of its
    /// tenant.
    pub async fn leave(&self, entry: Entry) {
        let (Some(inner), Some((tenant, task_id))) = (&self.inner, entry.slot) else {
            return;
        };
        inner.held.release(&tenant, &task_id).await;
        inner.line(&tenant).freed.notify_one();
    }
}

impl Inner {
    /// The quotas of `tenant`, from the cache while fresh; `None` when it has none, no longer
    /// exists, or cannot be read.
    async fn quotas(&self, tenant: &str) -> Option<tenant::Quotas> {
        if let Some((at, q)) = lock(&self.cache).get(tenant)
            && at.elapsed() < self.ttl
        {
            return *q;
        }
        let loaded = async {
            let mut con = self.pool.get().await?;
            tenant::load(&mut *con, &self.keys, tenant).await
        };
        let q = match loaded.await {
            Ok(t) => t
                .map(|t| t.quotas)
                .filter(|q| q.tpm.is_some() || q.max_running.is_some()),
            Err(e) => {
                warn!(component = "quota", tenant, error = %e, "tenant quotas unavailable; running without them");
                return None;
            }
        };
        lock(&self.cache).insert(tenant.to_owned(), (Instant::now(), q));
        q
    }

    fn line(&self, tenant: &str) -> Arc<Line> {
        lock(&self.lines)
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }

    /// Takes a slot of `tenant` for `task_id`, waiting in this worker's line of the tenant while
    /// all `limit` are held. `None` when Redis could not be asked (the task then runs without).
    async fn acquire(&self, tenant: &str, limit: u64, task_id: &str) -> Option<(String, String)> {
        let line = self.line(tenant);
        let _turn = line.turn.lock().await;
        let began = Instant::now();
        let mut lent = None;
        loop {
            match self.try_acquire(tenant, limit, task_id).await {
                Ok(Acquired::Granted { held }) => {
                    debug!(
                        component = "quota",
                        tenant, task_id, held, "tenant slot taken"
                    );
                    self.held.add(tenant, task_id);
                    break;
                }
                Ok(Acquired::Full { held }) => {
                    if lent.is_none() {
                        debug!(
                            component = "quota",
                            tenant, task_id, held, limit, "tenant at max_running; waiting"
                        );
                        lent = Some(self.slots.as_ref().and_then(Slots::lend));
                    }
                    tokio::select! {
                        () = line.freed.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
                Err(e) => {
                    warn!(component = "quota", tenant, task_id, error = %e, "tenant slots unavailable; running without max_running");
                    return None;
                }
            }
        }
        if let Some(lent) = lent {
            // Runs at once; the lent slot comes back as the next one frees (see `Slots`).
            drop(lent);
            histogram!(m::TENANT_WAIT, "tenant" => tenant.to_owned(), "cause" => "running")
                .record(began.elapsed().as_secs_f64());
        }
        Some((tenant.to_owned(), task_id.to_owned()))
    }

    async fn try_acquire(
        &self,
        tenant: &str,
        limit: u64,
        task_id: &str,
    ) -> Result<Acquired, StoreError> {
        let mut con = self.pool.get().await?;
        tenant::running::acquire(&mut *con, &self.keys, tenant, limit, task_id, self.lease).await
    }
}
