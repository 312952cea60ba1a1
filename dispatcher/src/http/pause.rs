//! `GET /api/queues/{q}`, `POST /api/queues/{q}/pause` and `POST /api/queues/{q}/resume`: one
//! queue's numbers and state, and pausing it. A paused queue keeps accepting tasks; workers take
//! no new entries from it (running ones finish). Both actions are idempotent: repeating one
//! answers 200 with `changed: false`.
//!
//! Admin only: today every `/api` route needs `ROOT_NODE_SECRET`, the admin key; a tenants
//! layer must keep these two actions to the `admin` scope.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_shared::paused::{self, Change};
use switchyard_shared::task::is_valid_queue_name;

use super::access::Caller;
use super::error::ApiError;
use super::extract::ApiPath;
use super::queues::{for_caller, with_paused};
use crate::state::AppState;
use crate::stats::sample;

/// `GET /api/queues/{q}`: the queue's numbers, as one element of `GET /api/queues`.
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let queue = served(&state, queue)?;
    let mut con = state.pool.get().await?;
    let stats = sample(&mut *con, &state.keys, std::slice::from_ref(&queue)).await?;
    let paused = paused::read(&mut *con, &state.keys).await?;
    let stats = stats.into_iter().map(|s| for_caller(&caller, s)).collect();
    let mut rows = with_paused(stats, &paused);
    Ok(Json(rows.pop().unwrap_or(Value::Null)))
}

/// `POST /api/queues/{q}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let queue = served(&state, queue)?;
    let mut con = state.pool.get().await?;
    let change = paused::pause(&mut *con, &state.keys, &queue).await?;
    tracing::info!(queue, changed = change.changed, "queue paused");
    Ok(Json(answer(&queue, change)))
}

/// `POST /api/queues/{q}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let queue = served(&state, queue)?;
    let mut con = state.pool.get().await?;
    let change = paused::resume(&mut *con, &state.keys, &queue).await?;
    tracing::info!(queue, changed = change.changed, "queue resumed");
    Ok(Json(answer(&queue, change)))
}

fn answer(queue: &str, change: Change) -> Value {
    json!({
        "queue": queue,
        "paused": change.paused_since_ms.is_some(),
        "paused_since_ms": change.paused_since_ms,
        "changed": change.changed,
    })
}

/// The queue named in the path, if this dispatcher serves it: a malformed name is a 400, a
/// well-formed one outside `QUEUES` a 404 (there is no such resource here).
fn served(state: &AppState, queue: String) -> Result<String, ApiError> {
    if !is_valid_queue_name(&queue) {
        return Err(ApiError::BadRequest(format!(
            "queue: {queue:?} is not a queue name (1-48 of a-z, 0-9, - and _, starting with a letter or digit)"
        )));
    }
    if !state.knows_queue(&queue) {
        return Err(ApiError::NotFound(format!(
            "no queue {queue:?}: this dispatcher serves {}",
            state.cfg.queues.join(", ")
        )));
    }
    Ok(queue)
}
