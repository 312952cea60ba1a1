//! Provider limits the whole fleet shares: before each call to a remote provider the worker
//! reserves it against the provider's budget in Redis (`*_RPM`, `*_TPM`, or the model's own
//! `LLM_MODEL_LIMITS` entry), sleeps as long as the reservation says, calls, then settles the
//! reservation with the tokens the provider reported. A 429 with `Retry-After` pauses that
//! provider and model for every worker (a key with a PX TTL); a task that meets a pause sleeps
//! until it expires, lending its slot meanwhile ([`slots`]), and other models go on.
//!
//! A call of a task whose tenant has a `tpm` quota reserves on the tenant's budget first, the
//! same way ([`tenant`]).
//!
//! Redis trouble never stops a call: the limiter then lets it through (the provider's own 429s
//! still apply) and logs why.
//!
//! # Layout
//! - [`estimate`]: the cost of a call, read from its request body.
//! - [`slots`]: a sleeping task's slot lent to other work.
//! - [`tenant`]: a tenant's `tpm` budget on its tasks' calls.

pub mod estimate;
pub mod slots;
pub mod tenant;

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use switchyard_shared::Pool;
use switchyard_shared::config::{LimitsConfig, Rate, WorkerConfig};
use switchyard_shared::keys::Keys;
use switchyard_shared::metrics as m;
use switchyard_shared::scripts::{self, Reservation, Reserved, Settlement};
use switchyard_shared::store::StoreError;
use tracing::{debug, warn};

pub use estimate::Estimate;
pub use slots::Slots;
pub use tenant::{TENANT, TenantBudget};

/// The fleet's provider limits, as this worker applies them; cheap to clone. [`Limiter::off`]
/// applies none (tests that build providers by hand).
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    keys: Keys,
    limits: LimitsConfig,
    /// Model names metrics may carry as labels; any other is `other`.
    labels: Vec<String>,
    /// Longest pause a `Retry-After` may ask for (`LLM_RETRY_MAX_MS`).
    max_pause: Duration,
    slots: Option<Slots>,
}

/// The reservations of one call, to settle after it.
#[derive(Debug)]
pub struct Ticket {
    provider: Option<ProviderTicket>,
    tenant: Option<tenant::TenantTicket>,
}

/// A reservation on a provider's budget.
#[derive(Debug)]
struct ProviderTicket {
    budget: String,
    tokens: u64,
    reserved: u64,
    prompt_estimate: u64,
}

/// Why a call waited.
#[derive(Debug, Clone, Copy)]
enum Cause {
    Budget,
    Pause,
}

impl Limiter {
    /// No limits, no pauses.
    pub fn off() -> Self {
        Self::default()
    }

    /// The limits of `cfg` on `pool`, lending `slots` during pauses.
    pub fn new(pool: Pool, keys: Keys, cfg: &WorkerConfig, slots: Option<Slots>) -> Self {
        let mut labels = cfg.llm.served_models();
        for m in &cfg.limits.model_limits {
            if !labels.contains(&m.model) {
                labels.push(m.model.clone());
            }
        }
        Self {
            inner: Some(Arc::new(Inner {
                pool,
                keys,
                limits: cfg.limits.clone(),
                labels,
                max_pause: cfg.llm.llm_retry_max,
                slots,
            })),
        }
    }

    /// Waits until a call of `model` to `provider` may be made: until its reservation on the
    /// task's tenant budget starts (if it has one), through any pause of that model, and until
    /// its reservation on the provider's budget starts. `None` when nothing is to settle.
    pub async fn admit(
        &self,
        provider: &'static str,
        model: &str,
        estimate: Estimate,
    ) -> Option<Ticket> {
        let inner = self.inner.as_ref()?;
        let tenant = match tenant::current() {
            Some(b) => inner.admit_tenant(b, estimate).await.map_or_else(
                |e| {
                    warn!(component = "limiter", provider, error = %e, "tenant token budget unavailable; calling without it");
                    None
                },
                Some,
            ),
            None => None,
        };
        let admitted = inner.admit(provider, model, estimate).await;
        let provider = admitted.unwrap_or_else(|e| {
            warn!(component = "limiter", provider, error = %e, "provider limit unavailable; calling without it");
            None
        });
        (provider.is_some() || tenant.is_some()).then_some(Ticket { provider, tenant })
    }

    /// Corrects the budgets by the tokens the call used (`prompt`, `completion`, as reported).
    pub async fn settle(&self, ticket: Option<Ticket>, prompt: u64, completion: u64) {
        let (Some(inner), Some(ticket)) = (&self.inner, ticket) else {
            return;
        };
        if let Some(t) = ticket.tenant
            && let Err(e) = inner.settle_tenant(t, prompt, completion).await
        {
            warn!(component = "limiter", error = %e, "could not settle a tenant's call; its estimate stands");
        }
        let Some(t) = ticket.provider else {
            return;
        };
        // Only a token limit has anything to correct; a server that reports no usage leaves the
        // reservation as it was estimated.
        if t.tokens == 0 || prompt + completion == 0 {
            return;
        }
        let s = Settlement {
            budget: &t.budget,
            tokens: t.tokens,
            window: inner.limits.llm_limit_window,
            reserved: t.reserved,
            prompt_estimate: t.prompt_estimate,
            prompt_tokens: prompt,
            completion_tokens: completion,
        };
        let settled = async {
            let mut con = inner.pool.get().await?;
            scripts::limit_settle(&mut *con, &s).await
        };
        if let Err(e) = settled.await {
            warn!(component = "limiter", budget = %t.budget, error = %e, "could not settle a provider call; its estimate stands");
        }
    }

    /// Pauses `model` of `provider` for every worker for `after` (capped by
    /// `LLM_RETRY_MAX_MS`); a longer pause already set stays. Whether the pause is recorded (the
    /// next call then waits for it here rather than in the caller's backoff).
    pub async fn pause(&self, provider: &'static str, model: &str, after: Duration) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let ms = after.min(inner.max_pause).as_millis() as u64;
        if ms == 0 {
            return false;
        }
        let key = inner.keys.limit_pause(provider, model);
        let set = async {
            let mut con = inner.pool.get().await?;
            redis::pipe()
                .cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("PX")
                .arg(ms)
                .arg("NX")
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ms)
                .arg("GT")
                .ignore()
                .query_async::<()>(&mut *con)
                .await
                .map_err(StoreError::from)
        };
        match set.await {
            Ok(()) => {
                counter!(m::LLM_LIMIT_PAUSES, "provider" => provider, "model" => inner.label(model))
                    .increment(1);
                debug!(
                    component = "limiter",
                    provider,
                    pause_ms = ms,
                    "provider paused a model"
                );
                true
            }
            Err(e) => {
                warn!(component = "limiter", provider, error = %e, "could not record a provider's pause");
                false
            }
        }
    }
}

impl Inner {
    async fn admit(
        &self,
        provider: &'static str,
        model: &str,
        estimate: Estimate,
    ) -> Result<Option<ProviderTicket>, StoreError> {
        let pause = self.keys.limit_pause(provider, model);
        let budget = self.budget(provider, model);
        loop {
            let reserved = match &budget {
                Some((key, rate)) => self.reserve(key, &pause, *rate, estimate).await?,
                None => match self.paused(&pause).await? {
                    Some(d) => Reserved::Paused(d),
                    None => return Ok(None),
                },
            };
            match reserved {
                Reserved::Paused(d) => self.sleep(provider, model, Cause::Pause, d).await,
                Reserved::Granted { wait, cost } => {
                    if !wait.is_zero() {
                        self.sleep(provider, model, Cause::Budget, wait).await;
                        // A pause set while this call slept holds it too, reservation kept.
                        while let Some(d) = self.paused(&pause).await? {
                            self.sleep(provider, model, Cause::Pause, d).await;
                        }
                    }
                    return Ok(budget.map(|(key, rate)| ProviderTicket {
                        budget: key,
                        tokens: rate.tokens.unwrap_or(0),
                        reserved: cost,
                        prompt_estimate: estimate.prompt,
                    }));
                }
            }
        }
    }

    /// The budget a call of `model` to `provider` counts against: the model's own when
    /// `LLM_MODEL_LIMITS` lists it, else the provider's, if it has limits.
    fn budget(&self, provider: &str, model: &str) -> Option<(String, Rate)> {
        if let Some(rate) = self.limits.model(model) {
            return Some((self.keys.limit_budget(provider, Some(model)), rate));
        }
        let rate = self.limits.provider(provider);
        rate.is_limited()
            .then(|| (self.keys.limit_budget(provider, None), rate))
    }

    async fn reserve(
        &self,
        budget: &str,
        pause: &str,
        rate: Rate,
        estimate: Estimate,
    ) -> Result<Reserved, StoreError> {
        let r = Reservation {
            budget,
            pause: Some(pause),
            requests: rate.requests.unwrap_or(0),
            tokens: rate.tokens.unwrap_or(0),
            window: self.limits.llm_limit_window,
            prompt_estimate: estimate.prompt,
            completion_cap: estimate.completion_cap,
        };
        let mut con = self.pool.get().await?;
        scripts::limit_reserve(&mut *con, &r).await
    }

    /// How long the pause at `key` lasts yet, if it is set.
    async fn paused(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let mut con = self.pool.get().await?;
        let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut *con).await?;
        Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
    }

    /// Sleeps `d` (lending the slot through a pause) and records the wait.
    async fn sleep(&self, provider: &'static str, model: &str, cause: Cause, d: Duration) {
        let began = Instant::now();
        let lent = match cause {
            Cause::Pause => self.slots.as_ref().and_then(Slots::lend),
            // A budget wait is short and already scheduled: the slot stays, so the call goes
            // out at its reserved time rather than whenever a slot frees up.
            Cause::Budget => None,
        };
        tokio::time::sleep(d).await;
        if let Some(lent) = lent {
            lent.take_back().await;
        }
        let cause = match cause {
            Cause::Budget => "budget",
            Cause::Pause => "pause",
        };
        histogram!(m::LLM_LIMIT_WAIT, "provider" => provider, "model" => self.label(model), "cause" => cause)
            .record(began.elapsed().as_secs_f64());
    }

    /// `model` as a metric label: a served or configured model, else `other`.
    fn label(&self, model: &str) -> String {
        if self.labels.iter().any(|l| l == model) {
            model.to_owned()
        } else {
            "other".to_owned()
        }
    }
}
