//! `GET /api/queues`: the numbers and state (`paused`) of every queue the dispatcher serves.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_shared::paused;
use switchyard_shared::store::StoreError;

use super::error::ApiError;
use crate::state::AppState;
use crate::stats::{QueueStats, sample};

/// Reads every queue's numbers in one round trip.
pub async fn all_queue_stats(state: &AppState) -> Result<Vec<QueueStats>, StoreError> {
    let mut con = state.pool.get().await?;
    sample(&mut *con, &state.keys, &state.cfg.queues).await
}

/// `stats` as JSON, each with `paused` and `paused_since_ms` from `paused` (queue → ms).
pub fn with_paused(stats: Vec<QueueStats>, paused: &BTreeMap<String, u64>) -> Vec<Value> {
    stats
        .into_iter()
        .map(|s| {
            let since = paused.get(&s.queue).copied();
            let mut row = serde_json::to_value(s).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut row {
                m.insert("paused".into(), Value::Bool(since.is_some()));
                m.insert("paused_since_ms".into(), json!(since));
            }
            row
        })
        .collect()
}

/// `GET /api/queues`.
pub async fn queues(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stats = all_queue_stats(&state).await?;
    let mut con = state.pool.get().await?;
    let paused = paused::read(&mut *con, &state.keys).await?;
    Ok(Json(json!({ "queues": with_paused(stats, &paused) })))
}
