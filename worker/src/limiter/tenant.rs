//! A tenant's `tpm` budget on its provider calls: the same schedule as a provider's token limit
//! (`limit_reserve.lua` / `limit_settle.lua`: no initial burst of a full bucket, waiters learn
//! at once how long to sleep, no polling), on the tenant's own key
//! ([`Keys::tenant_tokens`](switchyard_shared::keys::Keys::tenant_tokens)) and without a pause.
//! The budget travels with the task's future as a task-local ([`TENANT`]), set by the executor
//! around the task, so the provider code needs no tenant argument.

use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use switchyard_shared::metrics as m;
use switchyard_shared::scripts::{self, Reservation, Reserved, Settlement};
use switchyard_shared::store::StoreError;

use super::{Estimate, Inner};

tokio::task_local! {
    /// The `tpm` budget of the task whose future runs now, if its tenant has one.
    pub static TENANT: TenantBudget;
}

/// Waits shorter than this keep the task's concurrency slot (lending it would cost more than
/// the wait); longer ones lend it.
const LEND_AFTER: Duration = Duration::from_millis(50);

/// A tenant's token budget, as a task carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantBudget {
    /// The tenant's id (a tenant whose record the worker read: safe as a metric label).
    pub tenant: String,
    /// Its `tpm` quota: tokens per `LLM_LIMIT_WINDOW_MS` (a minute by default).
    pub tpm: u64,
}

/// A reservation on a tenant's budget, to settle after the call.
#[derive(Debug)]
pub struct TenantTicket {
    budget: TenantBudget,
    key: String,
    reserved: u64,
    prompt_estimate: u64,
}

/// The budget of the task running now, if any.
pub fn current() -> Option<TenantBudget> {
    TENANT.try_with(Clone::clone).ok()
}

impl Inner {
    /// Reserves a call estimated at `estimate` on `b` and sleeps until its start, lending the
    /// slot through a long wait.
    pub(super) async fn admit_tenant(
        &self,
        b: TenantBudget,
        estimate: Estimate,
    ) -> Result<TenantTicket, StoreError> {
        let key = self.keys.tenant_tokens(&b.tenant);
        let r = Reservation {
            budget: &key,
            pause: None,
            requests: 0,
            tokens: b.tpm,
            window: self.limits.llm_limit_window,
            prompt_estimate: estimate.prompt,
            completion_cap: estimate.completion_cap,
        };
        let reserved = {
            let mut con = self.pool.get().await?;
            scripts::limit_reserve(&mut *con, &r).await?
        };
        let (wait, cost) = match reserved {
            Reserved::Granted { wait, cost } => (wait, cost),
            // No pause key was given: the script cannot answer this.
            Reserved::Paused(_) => (Duration::ZERO, 0),
        };
        if !wait.is_zero() {
            let began = Instant::now();
            let lent = (wait >= LEND_AFTER)
                .then(|| self.slots.as_ref().and_then(super::Slots::lend))
                .flatten();
            tokio::time::sleep(wait).await;
            // The call goes out at its reserved time, not when a slot frees (waiting for one
            // would bunch calls up behind other waiters): the lent slot comes back as the next
            // one frees (dropping a `Lent`).
            drop(lent);
            histogram!(m::TENANT_WAIT, "tenant" => b.tenant.clone(), "cause" => "tokens")
                .record(began.elapsed().as_secs_f64());
        }
        Ok(TenantTicket {
            budget: b,
            key,
            reserved: cost,
            prompt_estimate: estimate.prompt,
        })
    }

    /// Corrects the tenant's budget by the tokens the call used, and counts them.
    pub(super) async fn settle_tenant(
        &self,
        t: TenantTicket,
        prompt: u64,
        completion: u64,
    ) -> Result<(), StoreError> {
        if prompt + completion == 0 {
            return Ok(());
        }
        counter!(m::TENANT_TOKENS, "tenant" => t.budget.tenant.clone())
            .increment(prompt + completion);
        let s = Settlement {
            budget: &t.key,
            tokens: t.budget.tpm,
            window: self.limits.llm_limit_window,
            reserved: t.reserved,
            prompt_estimate: t.prompt_estimate,
            prompt_tokens: prompt,
            completion_tokens: completion,
        };
        let mut con = self.pool.get().await?;
        scripts::limit_settle(&mut *con, &s).await
    }
}
