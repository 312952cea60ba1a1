//! `GET /api/workers`: every worker seen recently, as the registry lists it (`idle` / `busy` /
//! `draining` while its record lives, `offline` after it expired), and a summary by status.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_shared::clock;
use switchyard_shared::registry::{self, Listed, WorkerStatus};
use switchyard_shared::store::StoreError;

use super::error::ApiError;
use crate::state::AppState;

/// Reads the worker list.
pub async fn list_workers(state: &AppState) -> Result<Vec<Listed>, StoreError> {
    let mut con = state.pool.get().await?;
    registry::list(&mut *con, &state.keys, clock::now_ms()).await
}

/// `GET /api/workers`.
pub async fn workers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = list_workers(&state).await?;
    let mut summary = json!({
        "total": list.len(),
        "running_tasks": list.iter().map(|w| w.current_tasks.len()).sum::<usize>(),
    });
    for status in WorkerStatus::ALL {
        summary[status.as_str()] = json!(list.iter().filter(|w| w.status == status).count());
    }
    Ok(Json(json!({ "workers": list, "summary": summary })))
}
