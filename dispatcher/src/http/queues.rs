//! `GET /api/queues`: the numbers of every queue the dispatcher serves.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_shared::store::StoreError;

use super::error::ApiError;
use crate::state::AppState;
use crate::stats::{QueueStats, sample};

/// Reads every queue's numbers in one round trip.
pub async fn all_queue_stats(state: &AppState) -> Result<Vec<QueueStats>, StoreError> {
    let mut con = state.pool.get().await?;
    sample(&mut *con, &state.keys, &state.cfg.queues).await
}

/// `GET /api/queues`.
pub async fn queues(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stats = all_queue_stats(&state).await?;
    Ok(Json(json!({ "queues": stats })))
}
