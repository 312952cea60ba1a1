//! `/api/tasks`: enqueue (optionally waiting for the result), read, and cancel tasks.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use switchyard_shared::clock;
use switchyard_shared::scripts::{self, CancelStatus};
use switchyard_shared::store;
use switchyard_shared::task::{self, Task};

use super::access::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::disconnect::{DisconnectGuard, OnDisconnect};
use crate::state::AppState;
use crate::submit::{NewTask, submit, submit_batch};

/// Query of `POST /api/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait up to this many ms for the task to finish.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /api/tasks`: 202 `{id, state, queue}`; with `?wait_ms=N`, 200 and the finished task if
/// it finished within N ms.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<NewTask>,
) -> Result<Response, ApiError> {
    let wait = q.wait_ms.map(Duration::from_millis);
    if let Some(w) = wait
        && w > state.cfg.max_wait
    {
        return Err(ApiError::BadRequest(format!(
            "wait_ms: must be at most MAX_WAIT_MS ({} ms)",
            state.cfg.max_wait.as_millis()
        )));
    }
    let policy = if body.cancel_on_disconnect {
        OnDisconnect::Cancel
    } else {
        OnDisconnect::RunOn
    };
    let submitted = submit(&state, body, caller.tenant()).await?;
    if let Some(w) = wait.filter(|w| !w.is_zero()) {
        let mut guard = DisconnectGuard::new(&state, &submitted.queue, &submitted.id, policy);
        let task = wait_for(&state, &submitted.queue, &submitted.id, w).await;
        guard.disarm();
        if let Some(task) = task?
            && task.state.is_terminal()
        {
            return Ok((StatusCode::OK, Json(task)).into_response());
        }
    }
    let status = if submitted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(json!({
            "id": submitted.id,
            "queue": submitted.queue,
            "state": submitted.state,
            "duplicate": submitted.duplicate,
        })),
    )
        .into_response())
}

/// The body of `POST /api/tasks/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    /// The tasks, each as the body of `POST /api/tasks`.
    pub tasks: Vec<NewTask>,
}

/// `POST /api/tasks/batch`: enqueues up to `MAX_BATCH_TASKS` tasks in one round trip to Redis.
/// A malformed task rejects the whole batch (400/422 naming `tasks[i]`); otherwise 202
/// `{accepted, tasks}` with, per task in order, `{id, queue, state, duplicate}` or
/// `{error: {code, message}}` (e.g. `queue_full`).
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewBatch>,
) -> Result<Response, ApiError> {
    if let Some(i) = body.tasks.iter().position(|t| t.cancel_on_disconnect) {
        return Err(ApiError::BadRequest(format!(
            "tasks[{i}].cancel_on_disconnect: only POST /api/tasks?wait_ms= waits for its task"
        )));
    }
    let results = submit_batch(&state, body.tasks, caller.tenant()).await?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let tasks: Vec<serde_json::Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(s) => json!({
                "id": s.id,
                "queue": s.queue,
                "state": s.state,
                "duplicate": s.duplicate,
            }),
            Err(e) => ApiError::from(e).body(),
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": accepted, "tasks": tasks })),
    )
        .into_response())
}

/// Waits up to `timeout` for task `id` to reach a terminal state; returns its record then (or
/// as it is at the deadline).
pub async fn wait_for(
    state: &AppState,
    queue: &str,
    id: &str,
    timeout: Duration,
) -> Result<Option<Task>, ApiError> {
    let mut registration = state.waiter.register(id);
    let mut con = state.pool.get().await?;
    let task = store::load_task(&mut *con, &state.keys, queue, id).await?;
    drop(con);
    match task {
        Some(t) if !t.state.is_terminal() => {
            registration.wait(timeout).await;
            let mut con = state.pool.get().await?;
            Ok(store::load_task(&mut *con, &state.keys, queue, id).await?)
        }
        other => Ok(other),
    }
}

/// The queue of task `id`; 404 when the id is malformed.
pub(crate) fn queue_of(id: &str) -> Result<&str, ApiError> {
    task::queue_of(id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no task {id:?}: task ids look like `tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5`"
        ))
    })
}

/// The answer about a task that does not exist, or that `caller` may not see: the same, so a
/// tenant learns nothing of another's task ids.
pub(crate) fn no_task(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no task {id:?} (unknown, or expired after RESULT_TTL_S)"
    ))
}

/// `GET /api/tasks/{id}`: the task record; 404 for another tenant's task unless the key has
/// the `read` scope.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, ApiError> {
    let queue = queue_of(&id)?;
    let mut con = state.pool.get().await?;
    store::load_task(&mut *con, &state.keys, queue, &id)
        .await?
        .filter(|t| caller.may_read(t.tenant.as_deref()))
        .map(Json)
        .ok_or_else(|| no_task(&id))
}

/// Checks that `caller` may cancel or replay task `id` of `queue`; 404 if not (or if it does
/// not exist). The admin key skips the read.
pub(crate) async fn owned(
    state: &AppState,
    caller: &Caller,
    queue: &str,
    id: &str,
) -> Result<(), ApiError> {
    if caller.may_change(None) {
        return Ok(());
    }
    let mut con = state.pool.get().await?;
    store::load_task(&mut *con, &state.keys, queue, id)
        .await?
        .filter(|t| caller.may_change(t.tenant.as_deref()))
        .map(|_| ())
        .ok_or_else(|| no_task(id))
}

/// `DELETE /api/tasks/{id}`: cancels a waiting task at once (200), asks the worker running it to
/// abort (202); 409 if it already finished.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let queue = queue_of(&id)?;
    owned(&state, &caller, queue, &id).await?;
    let mut con = state.pool.get().await?;
    let now = clock::now_rfc3339();
    let reply = scripts::cancel(&mut *con, &state.keys, queue, &id, &now, &state.retention).await?;
    match reply.status {
        CancelStatus::Cancelled => {
            tracing::info!(task_id = %id, queue, state = "cancelled", "task cancelled");
            Ok((
                StatusCode::OK,
                Json(json!({"id": id, "state": "cancelled"})),
            )
                .into_response())
        }
        CancelStatus::Cancelling => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "state": "running", "cancel_requested": true})),
        )
            .into_response()),
        CancelStatus::Terminal => Err(ApiError::Conflict(format!(
            "task {id} already finished ({}); nothing to cancel",
            reply.state
        ))),
        CancelStatus::Missing => Err(ApiError::NotFound(format!("no task {id:?}"))),
    }
}
