//! Turning a client's request into a queued task: validation (so bad tasks fail at the door,
//! not on a worker), the record's fields, and the one `enqueue.lua` call that writes it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use switchyard_shared::clock;
use switchyard_shared::scripts::{self, EnqueueStatus, NewRecord};
use switchyard_shared::task::{
    self, DEFAULT_MAX_ATTEMPTS, MAX_DELAY_MS, MAX_MAX_ATTEMPTS, MAX_TIMEOUT_MS, PayloadError,
    TaskKind, TaskState,
};

use crate::http::error::ApiError;
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

/// A validated task, ready to be written.
#[derive(Debug)]
pub struct Prepared {
    id: String,
    queue: String,
    kind: TaskKind,
    fields: Vec<(&'static str, String)>,
    delay_ms: u64,
    due_ms: Option<u64>,
    idempotency_key: Option<String>,
}

impl Prepared {
    fn record<'a>(&'a self, state: &AppState) -> NewRecord<'a> {
        NewRecord {
            id: &self.id,
            queue: &self.queue,
            fields: self.fields.clone(),
            due_ms: self.due_ms,
            idempotency: self
                .idempotency_key
                .as_deref()
                .map(|k| (k, state.cfg.idempotency_ttl.max(Duration::from_secs(1)))),
        }
    }
}

/// Most tasks in one `POST /api/tasks/batch`.
pub const MAX_BATCH_TASKS: usize = 1000;

/// Validates `t` and enqueues it.
pub async fn submit(state: &AppState, t: NewTask) -> Result<Submitted, ApiError> {
    let p = prepare(state, t)?;
    let mut con = state.pool.get().await?;
    let reply = scripts::enqueue(
        &mut *con,
        &state.keys,
        &p.record(state),
        state.cfg.max_queue_depth,
    )
    .await?;
    settle(state, &mut *con, p, reply).await
}

/// Validates every task of a batch first (a bad one rejects the batch, naming it as
/// `tasks[i]`), then enqueues them all in one pipeline. Answers one result per task, in order:
/// a task can still be refused alone (its queue is full).
pub async fn submit_batch(
    state: &AppState,
    tasks: Vec<NewTask>,
) -> Result<Vec<Result<Submitted, ApiError>>, ApiError> {
    if tasks.is_empty() || tasks.len() > MAX_BATCH_TASKS {
        return Err(ApiError::BadRequest(format!(
            "tasks: must hold 1 to {MAX_BATCH_TASKS} tasks, got {}",
            tasks.len()
        )));
    }
    let prepared = tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| prepare(state, t).map_err(|e| e.within(&format!("tasks[{i}]."))))
        .collect::<Result<Vec<_>, _>>()?;
    let records: Vec<NewRecord<'_>> = prepared.iter().map(|p| p.record(state)).collect();
    let mut con = state.pool.get().await?;
    let replies =
        scripts::enqueue_many(&mut *con, &state.keys, &records, state.cfg.max_queue_depth).await?;
    drop(records);
    let mut out = Vec::with_capacity(prepared.len());
    for (p, reply) in prepared.into_iter().zip(replies) {
        out.push(match reply {
            Ok(reply) => settle(state, &mut *con, p, reply).await,
            Err(e) => Err(e.into()),
        });
    }
    Ok(out)
}

/// Checks a task and builds its record: bad tasks fail here, at the door, not on a worker.
fn prepare(state: &AppState, t: NewTask) -> Result<Prepared, ApiError> {
    let kind = TaskKind::parse(&t.kind).ok_or_else(|| ApiError::Unprocessable {
        code: "unknown_kind",
        message: format!(
            "kind: unknown kind {:?}; expected \"chat\" or \"tool\"",
            t.kind
        ),
    })?;
    let queue = t.queue.clone().unwrap_or_else(|| kind.as_str().to_owned());
    if !state.knows_queue(&queue) {
        return Err(ApiError::Unprocessable {
            code: "unknown_queue",
            message: format!(
                "queue: unknown queue {queue:?}; this dispatcher accepts: {}",
                state.cfg.queues.join(", ")
            ),
        });
    }
    task::validate_payload(kind, &t.payload).map_err(|e| match e {
        PayloadError::Malformed(_) => ApiError::BadRequest(e.to_string()),
        PayloadError::UnknownTool(_) => ApiError::Unprocessable {
            code: "unknown_tool",
            message: e.to_string(),
        },
    })?;
    let max_attempts = t.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(ApiError::BadRequest(format!(
            "max_attempts: must be between 1 and {MAX_MAX_ATTEMPTS}"
        )));
    }
    let timeout_ms = t
        .timeout_ms
        .unwrap_or(state.cfg.worker_timeout.as_millis() as u64);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::BadRequest(format!(
            "timeout_ms: must be between 1 and {MAX_TIMEOUT_MS}"
        )));
    }
    let delay_ms = t.delay_ms.unwrap_or(0);
    if delay_ms > MAX_DELAY_MS {
        return Err(ApiError::BadRequest(format!(
            "delay_ms: must be at most {MAX_DELAY_MS}"
        )));
    }
    if let Some(k) = &t.idempotency_key
        && !task::is_valid_key(k)
    {
        return Err(ApiError::BadRequest(format!(
            "idempotency_key: must be 1–{} printable characters without spaces",
            task::MAX_KEY_LEN
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

    let id = task::new_task_id(&queue);
    let mut fields: Vec<(&'static str, String)> = vec![
        ("id", id.clone()),
        ("kind", kind.as_str().to_owned()),
        ("queue", queue.clone()),
        ("payload", t.payload.to_string()),
        ("state", TaskState::Queued.as_str().to_owned()),
        ("attempts", "0".to_owned()),
        ("max_attempts", max_attempts.to_string()),
        ("timeout_ms", timeout_ms.to_string()),
        ("created_at", clock::now_rfc3339()),
    ];
    if let Some(k) = &t.idempotency_key {
        fields.push(("idempotency_key", k.clone()));
    }
    if let Some(s) = &session_id {
        fields.push(("session_id", s.clone()));
    }
    Ok(Prepared {
        id,
        queue,
        kind,
        fields,
        delay_ms,
        due_ms: (delay_ms > 0).then(|| clock::now_ms() + delay_ms),
        idempotency_key: t.idempotency_key,
    })
}

/// Turns enqueue's answer for `p` into the client's answer.
async fn settle<C: redis::aio::ConnectionLike>(
    state: &AppState,
    con: &mut C,
    p: Prepared,
    reply: scripts::EnqueueReply,
) -> Result<Submitted, ApiError> {
    let Prepared {
        id,
        queue,
        kind,
        delay_ms,
        ..
    } = p;
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
        EnqueueStatus::Full => Err(ApiError::QueueFull {
            queue,
            limit: state.cfg.max_queue_depth,
        }),
    }
}
