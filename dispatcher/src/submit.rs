//! Turning a client's request into a queued task: validation (so bad tasks fail at the door,
//! not on a worker), the record's fields, and the one `enqueue.lua` call that writes it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use switchyard_shared::clock;
use switchyard_shared::lane::{self, Priority};
use switchyard_shared::record::QueuedTask;
use switchyard_shared::scripts::{self, EnqueueStatus, NewRecord};
use switchyard_shared::store::{self, StoreError};
use switchyard_shared::task::{
    self, DEFAULT_MAX_ATTEMPTS, MAX_DELAY_MS, MAX_MAX_ATTEMPTS, MAX_TIMEOUT_MS, PayloadError,
    TaskKind, TaskState,
};
use switchyard_shared::tenant::{Tenant, rpm};

use crate::state::AppState;

/// The body of `POST /api/tasks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// `chat` or `tool`.
    pub kind: String,
    /// Queue; default: the kind's name.
    #[serde(default)]
    pub queue: Option<String>,
    /// What to run.
    pub payload: Value,
    /// Attempts before dead-lettering (1–100, default 3).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout in ms; default `WORKER_TIMEOUT_MS`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run no earlier than this many ms from now.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Deduplication key: a second submission with it returns the first task.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// `POST /api/tasks?wait_ms=`: cancel the task if the client goes away before the answer.
    #[serde(default)]
    pub cancel_on_disconnect: bool,
    /// `high`, `normal` or `low`; default `TASK_PRIORITY`.
    #[serde(default)]
    pub priority: Option<String>,
}

/// What enqueueing produced.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// Task id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// `queued` for a new task; for a duplicate, whatever the first task's state was then.
    pub state: TaskState,
    /// Whether the idempotency key matched an existing task.
    pub duplicate: bool,
}

/// Why a task was not enqueued. The HTTP side maps each to its status and code in one place
/// (`From<SubmitError> for ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is malformed or out of range; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The kind is neither `chat` nor `tool`.
    #[error("{0}")]
    UnknownKind(String),
    /// The queue is not one this dispatcher accepts.
    #[error("{0}")]
    UnknownQueue(String),
    /// The payload names a tool no worker knows.
    #[error("{0}")]
    UnknownTool(String),
    /// The queue is at `MAX_QUEUE_DEPTH`.
    #[error("queue {queue} is full (MAX_QUEUE_DEPTH = {limit}); retry later")]
    QueueFull {
        /// Queue.
        queue: String,
        /// The limit.
        limit: u64,
    },
    /// The caller's tenant is over its `rpm` quota.
    #[error("tenant {tenant} is over its rpm quota ({limit} tasks per minute)")]
    RateLimited {
        /// Tenant id.
        tenant: String,
        /// Its quota.
        limit: u64,
        /// Until its window has room again.
        retry_after: Duration,
    },
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// The same failure about a part of the request: `prefix` (e.g. `tasks[3].`) goes before
    /// the field its message names.
    pub fn within(self, prefix: &str) -> Self {
        let at = |m: String| format!("{prefix}{m}");
        match self {
            Self::Invalid(m) => Self::Invalid(at(m)),
            Self::UnknownKind(m) => Self::UnknownKind(at(m)),
            Self::UnknownQueue(m) => Self::UnknownQueue(at(m)),
            Self::UnknownTool(m) => Self::UnknownTool(at(m)),
            other => other,
        }
    }
}

/// A validated task, ready to be written.
#[derive(Debug)]
pub struct Prepared {
    record: QueuedTask,
    priority: Priority,
    delay_ms: u64,
    due_ms: Option<u64>,
}

impl Prepared {
    fn record(&self, state: &AppState) -> NewRecord {
        NewRecord {
            task: self.record.clone(),
            due_ms: self.due_ms,
            idempotency_ttl: state.cfg.idempotency_ttl.max(Duration::from_secs(1)),
            priority: self.priority,
        }
    }
}

/// Most tasks in one `POST /api/tasks/batch`.
pub const MAX_BATCH_TASKS: usize = 1000;

/// Validates `t` and enqueues it for `tenant` (`None`: the admin key), within its quota.
pub async fn submit(
    state: &AppState,
    t: NewTask,
    tenant: Option<&Tenant>,
) -> Result<Submitted, SubmitError> {
    let p = prepare(state, t, tenant)?;
    let mut con = state.pool.pinned().await?;
    admit(&mut *con, state, tenant, 1).await?;
    let reply = scripts::enqueue(
        &mut *con,
        &state.keys,
        &p.record(state),
        state.cfg.max_queue_depth,
    )
    .await?;
    // REDIS_WAIT_REPLICAS: the task is accepted once replicas have it (503 not_replicated
    // otherwise; a retry with the same idempotency key finds the task if it survived).
    store::wait_replicas(&mut *con, &state.redis).await?;
    let submitted = settle(state, &mut *con, p, reply).await;
    count_for(tenant, std::slice::from_ref(&submitted));
    submitted
}

/// Counts the new tasks of `tenant` among `results` in its metric (the label is the id of a
/// tenant whose key was just checked, never client input).
fn count_for(tenant: Option<&Tenant>, results: &[Result<Submitted, SubmitError>]) {
    let Some(t) = tenant else { return };
    let new = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|s| !s.duplicate))
        .count();
    metrics::counter!(switchyard_shared::metrics::TENANT_TASKS_ENQUEUED, "tenant" => t.id.clone())
        .increment(new as u64);
}

/// Validates every task of a batch first (a bad one rejects the batch, naming it as
/// `tasks[i]`), then enqueues them all in one pipeline. Answers one result per task, in order:
/// a task can still be refused alone (its queue is full).
pub async fn submit_batch(
    state: &AppState,
    tasks: Vec<NewTask>,
    tenant: Option<&Tenant>,
) -> Result<Vec<Result<Submitted, SubmitError>>, SubmitError> {
    if tasks.is_empty() || tasks.len() > MAX_BATCH_TASKS {
        return Err(SubmitError::Invalid(format!(
            "tasks: must hold 1 to {MAX_BATCH_TASKS} tasks, got {}",
            tasks.len()
        )));
    }
    let prepared = tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| prepare(state, t, tenant).map_err(|e| e.within(&format!("tasks[{i}]."))))
        .collect::<Result<Vec<_>, _>>()?;
    let records: Vec<NewRecord> = prepared.iter().map(|p| p.record(state)).collect();
    let mut con = state.pool.pinned().await?;
    // Each task counts against the quota: a batch is not a way around it.
    admit(&mut *con, state, tenant, prepared.len() as u64).await?;
    let replies =
        scripts::enqueue_many(&mut *con, &state.keys, &records, state.cfg.max_queue_depth).await?;
    store::wait_replicas(&mut *con, &state.redis).await?;
    drop(records);
    let mut out = Vec::with_capacity(prepared.len());
    for (p, reply) in prepared.into_iter().zip(replies) {
        out.push(match reply {
            Ok(reply) => settle(state, &mut *con, p, reply).await,
            Err(e) => Err(e.into()),
        });
    }
    count_for(tenant, &out);
    Ok(out)
}

/// Counts `cost` tasks against `tenant`'s `rpm` quota (one round trip; none without a quota).
async fn admit<C: redis::aio::ConnectionLike>(
    con: &mut C,
    state: &AppState,
    tenant: Option<&Tenant>,
    cost: u64,
) -> Result<(), SubmitError> {
    let Some((t, limit)) = tenant.and_then(|t| t.quotas.rpm.map(|l| (t, l))) else {
        return Ok(());
    };
    match rpm::admit(con, &state.keys, &t.id, limit, cost).await? {
        rpm::Admission::Admitted => Ok(()),
        rpm::Admission::Refused { retry_after } => {
            metrics::counter!(switchyard_shared::metrics::TENANT_RATE_LIMITED, "tenant" => t.id.clone())
                .increment(1);
            Err(SubmitError::RateLimited {
                tenant: t.id.clone(),
                limit,
                retry_after,
            })
        }
    }
}

/// Checks a task and builds its record: bad tasks fail here, at the door, not on a worker.
fn prepare(state: &AppState, t: NewTask, tenant: Option<&Tenant>) -> Result<Prepared, SubmitError> {
    let kind = TaskKind::parse(&t.kind).ok_or_else(|| {
        SubmitError::UnknownKind(format!(
            "kind: unknown kind {:?}; expected \"chat\" or \"tool\"",
            t.kind
        ))
    })?;
    let queue = t.queue.clone().unwrap_or_else(|| kind.as_str().to_owned());
    if !state.knows_queue(&queue) {
        return Err(SubmitError::UnknownQueue(format!(
            "queue: unknown queue {queue:?}; this dispatcher accepts: {}",
            state.cfg.queues.join(", ")
        )));
    }
    task::validate_payload(kind, &t.payload).map_err(|e| match e {
        PayloadError::Malformed(_) => SubmitError::Invalid(e.to_string()),
        PayloadError::UnknownTool(_) => SubmitError::UnknownTool(e.to_string()),
    })?;
    let (max_attempts, timeout_ms, delay_ms) = limits(state, &t)?;
    if let Some(k) = &t.idempotency_key
        && !task::is_valid_key(k)
    {
        return Err(SubmitError::Invalid(format!(
            "idempotency_key: must be {}",
            task::KEY_RULE
        )));
    }
    let session_id = match kind {
        TaskKind::Chat => t
            .payload
            .get("session_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        TaskKind::Tool => None,
    };
    let priority = match t.priority.as_deref() {
        None => state.cfg.task_priority(),
        Some(p) => Priority::parse(p).ok_or_else(|| {
            SubmitError::Invalid(format!(
                "priority: must be \"high\", \"normal\" or \"low\", not {p:?}"
            ))
        })?,
    };
    let tenant_id = tenant.map(|t| t.id.clone());
    let due_ms = (delay_ms > 0).then(|| clock::now_ms() + delay_ms);
    let record = QueuedTask {
        // A task queued now is named by its stream entry (`{source}-{entry id}`), known only
        // from XADD's reply; a delayed one has its hash from the start, under a ULID id. Both
        // start with the source: the queue and the lane of its priority and tenant.
        id: if due_ms.is_some() {
            task::new_task_id(&lane::source(
                &queue,
                lane::lane_of(priority, tenant_id.as_deref()).as_deref(),
            ))
        } else {
            String::new()
        },
        kind,
        queue,
        payload: t.payload.to_string(),
        max_attempts,
        timeout_ms,
        created_at: clock::now_rfc3339(),
        idempotency_key: t.idempotency_key,
        session_id,
        tenant: tenant_id,
    };
    Ok(Prepared {
        record,
        priority,
        delay_ms,
        due_ms,
    })
}

/// `max_attempts`, `timeout_ms` and `delay_ms` of `t`, defaulted and checked against their
/// bounds.
fn limits(state: &AppState, t: &NewTask) -> Result<(u32, u64, u64), SubmitError> {
    let max_attempts = t.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(SubmitError::Invalid(format!(
            "max_attempts: must be between 1 and {MAX_MAX_ATTEMPTS}"
        )));
    }
    let timeout_ms = t
        .timeout_ms
        .unwrap_or(state.cfg.worker_timeout.as_millis() as u64);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(SubmitError::Invalid(format!(
            "timeout_ms: must be between 1 and {MAX_TIMEOUT_MS}"
        )));
    }
    let delay_ms = t.delay_ms.unwrap_or(0);
    if delay_ms > MAX_DELAY_MS {
        return Err(SubmitError::Invalid(format!(
            "delay_ms: must be at most {MAX_DELAY_MS}"
        )));
    }
    Ok((max_attempts, timeout_ms, delay_ms))
}

/// Turns enqueue's answer for `p` into the client's answer.
async fn settle<C: redis::aio::ConnectionLike>(
    state: &AppState,
    con: &mut C,
    p: Prepared,
    reply: scripts::EnqueueReply,
) -> Result<Submitted, SubmitError> {
    let Prepared {
        record: QueuedTask { queue, kind, .. },
        delay_ms,
        ..
    } = p;
    let id = reply.id.clone();
    match reply.status {
        EnqueueStatus::Queued | EnqueueStatus::Delayed => {
            metrics::counter!(switchyard_shared::metrics::TASKS_ENQUEUED, "queue" => queue.clone(), "kind" => kind.as_str())
                .increment(1);
            tracing::info!(task_id = %id, queue = %queue, kind = kind.as_str(), state = "queued", delay_ms, "task enqueued");
            Ok(Submitted {
                id,
                queue,
                state: TaskState::Queued,
                duplicate: false,
            })
        }
        EnqueueStatus::Duplicate => {
            let existing =
                switchyard_shared::store::load_task(con, &state.keys, &queue, &reply.id).await?;
            Ok(Submitted {
                state: existing.map_or(TaskState::Queued, |t| t.state),
                id: reply.id,
                queue,
                duplicate: true,
            })
        }
        EnqueueStatus::Full => Err(SubmitError::QueueFull {
            queue,
            limit: state.cfg.max_queue_depth,
        }),
    }
}
