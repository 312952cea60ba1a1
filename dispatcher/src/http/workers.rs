//! `GET /api/workers`: every worker seen recently, from the `{p}workers` sorted set and each live
//! worker's registry record: `idle` / `busy` while its record lives, `offline` after it expired.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use redis::AsyncCommands;
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_shared::clock;
use switchyard_shared::store::StoreError;

use super::error::ApiError;
use crate::state::AppState;

/// Workers offline for longer than this are no longer listed.
const OFFLINE_LISTED_MS: u64 = 3_600_000;

/// One worker as listed.
#[derive(Debug, Serialize)]
pub struct WorkerView {
    /// Worker id (its consumer name).
    pub id: String,
    /// `idle`, `busy`, `draining` or `offline`.
    pub status: String,
    /// Last heartbeat, ms since the epoch.
    pub last_heartbeat_ms: u64,
    /// Tasks it runs now.
    pub current_tasks: Vec<String>,
    /// Other registry fields (host, queues, concurrency, counters, started_at).
    #[serde(flatten)]
    pub info: serde_json::Map<String, Value>,
}

/// Reads the worker list.
pub async fn list_workers(state: &AppState) -> Result<Vec<WorkerView>, StoreError> {
    let mut con = state.pool.get().await?;
    let since = clock::now_ms().saturating_sub(OFFLINE_LISTED_MS);
    let seen: Vec<(String, u64)> = con
        .zrangebyscore_withscores(state.keys.workers(), since, "+inf")
        .await?;
    let mut pipe = redis::pipe();
    for (id, _) in &seen {
        pipe.hgetall(state.keys.worker(id));
    }
    let records: Vec<HashMap<String, String>> = if seen.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut *con).await?
    };
    let mut out = Vec::with_capacity(seen.len());
    for ((id, score), mut rec) in seen.into_iter().zip(records) {
        let current_tasks: Vec<String> = rec
            .remove("in_flight")
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let status = if rec.is_empty() {
            "offline".to_owned()
        } else {
            rec.remove("status").unwrap_or_else(|| {
                if current_tasks.is_empty() {
                    "idle"
                } else {
                    "busy"
                }
                .to_owned()
            })
        };
        let mut info = serde_json::Map::new();
        for (k, v) in rec {
            if k == "id" {
                continue;
            }
            // Registry fields are text; numbers and lists are shown as what they are.
            let value = serde_json::from_str::<Value>(&v)
                .ok()
                .filter(|j| j.is_number() || j.is_array())
                .unwrap_or(Value::String(v));
            info.insert(k, value);
        }
        out.push(WorkerView {
            id,
            status,
            last_heartbeat_ms: score,
            current_tasks,
            info,
        });
    }
    Ok(out)
}

/// `GET /api/workers`.
pub async fn workers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = list_workers(&state).await?;
    let count = |s: &str| list.iter().filter(|w| w.status == s).count();
    let summary = json!({
        "total": list.len(),
        "idle": count("idle"),
        "busy": count("busy"),
        "draining": count("draining"),
        "offline": count("offline"),
        "running_tasks": list.iter().map(|w| w.current_tasks.len()).sum::<usize>(),
    });
    Ok(Json(json!({ "workers": list, "summary": summary })))
}
