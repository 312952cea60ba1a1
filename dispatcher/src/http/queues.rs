//! `GET /api/queues`: the numbers of every queue the dispatcher serves.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_shared::store::{self, StoreError};

use super::error::ApiError;
use crate::state::AppState;
use crate::stats::{QueueStats, queue_stats};

/// Reads every queue's numbers; re-creates a missing stream and group (Redis restarted empty)
/// instead of failing.
pub async fn all_queue_stats(state: &AppState) -> Result<Vec<QueueStats>, StoreError> {
    let mut con = state.pool.get().await?;
    let mut out = Vec::with_capacity(state.cfg.queues.len());
    for q in &state.cfg.queues {
        let s = match queue_stats(&mut *con, &state.keys, q).await {
            Ok(s) => s,
            Err(StoreError::Redis(e)) if e.to_string().contains("no such key") => {
                store::ensure_groups(&mut *con, &state.keys, std::slice::from_ref(q)).await?;
                queue_stats(&mut *con, &state.keys, q).await?
            }
            Err(e) => return Err(e),
        };
        out.push(s);
    }
    Ok(out)
}

/// `GET /api/queues`.
pub async fn queues(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stats = all_queue_stats(&state).await?;
    Ok(Json(json!({ "queues": stats })))
}
