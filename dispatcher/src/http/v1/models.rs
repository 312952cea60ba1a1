//! `GET /v1/models` and `GET /v1/models/{model}`: the models the live workers serve, as OpenAI
//! lists them. A model counts when some live worker registers it (`WorkerRecord.models`: its
//! providers' models and `LLM_MODELS`) and consumes the queue `MODEL_ROUTES` sends it to, so
//! every listed model can be answered.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use switchyard_shared::registry::{Listed, WorkerStatus};

use super::error::V1Error;
use crate::http::workers::list_workers;
use crate::routing;
use crate::state::AppState;

/// `owned_by` of every listed model.
const OWNED_BY: &str = "switchyard";

/// Each servable model and when the earliest worker serving it started (seconds since the
/// epoch), by name.
fn served(state: &AppState, workers: &[Listed]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for w in workers {
        let Some(rec) = w
            .record
            .as_ref()
            .filter(|_| w.status != WorkerStatus::Offline)
        else {
            continue;
        };
        let started = chrono::DateTime::parse_from_rfc3339(&rec.started_at)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp()).ok())
            .unwrap_or(0);
        for m in &rec.models {
            let reachable = routing::chat_queue(state, Some(m))
                .is_ok_and(|q| state.knows_queue(&q) && rec.queues.contains(&q));
            if reachable {
                out.entry(m.clone())
                    .and_modify(|t| *t = (*t).min(started))
                    .or_insert(started);
            }
        }
    }
    out
}

fn model(id: &str, created: u64) -> Value {
    json!({ "id": id, "object": "model", "created": created, "owned_by": OWNED_BY })
}

/// `GET /v1/models`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, V1Error> {
    let workers = list_workers(&state).await?;
    let data: Vec<Value> = served(&state, &workers)
        .iter()
        .map(|(id, created)| model(id, *created))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `GET /v1/models/{model}`: one of the list; 404 `model_not_found` otherwise.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, V1Error> {
    let workers = list_workers(&state).await?;
    served(&state, &workers)
        .get(&id)
        .map(|created| Json(model(&id, *created)))
        .ok_or_else(|| {
            V1Error::model_not_found(format!(
                "The model `{id}` does not exist: no live worker serves it"
            ))
        })
}
