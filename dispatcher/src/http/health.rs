//! `GET /health` (liveness, no auth, no Redis) and `GET /api/health/all` (Redis reachability,
//! workers alive, queue summary).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_shared::registry::WorkerStatus;

use super::queues::all_queue_stats;
use super::workers::list_workers;
use crate::state::AppState;

/// `GET /health`: the process is up.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "healthy" }))
}

/// `GET /api/health/all`: 200 when Redis answers, 503 when it does not.
pub async fn all(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let began = Instant::now();
    let ping: Result<String, String> = async {
        let mut con = state.pool.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut *con)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let redis_ms = began.elapsed().as_millis() as u64;
    if ping.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unhealthy",
                "redis": { "reachable": false, "latency_ms": redis_ms },
            })),
        );
    }
    let workers = list_workers(&state).await.ok();
    let queues = all_queue_stats(&state).await.ok();
    let paused = match state.pool.get().await {
        Ok(mut con) => switchyard_shared::paused::read(&mut *con, &state.keys)
            .await
            .unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let alive = workers.as_ref().map(|w| {
        w.iter()
            .filter(|w| w.status != WorkerStatus::Offline)
            .count()
    });
    let status = if alive == Some(0) {
        "degraded"
    } else {
        "healthy"
    };
    (
        StatusCode::OK,
        Json(json!({
            "status": status,
            "redis": { "reachable": true, "latency_ms": redis_ms },
            "workers": { "alive": alive, "offline": workers.as_ref().map(|w| w.len()).zip(alive).map(|(t, a)| t - a) },
            "queues": queues.map(|qs| qs.into_iter().map(|q| json!({
                "paused": paused.contains_key(&q.queue),
                "queue": q.queue, "depth": q.depth, "pending": q.pending, "delayed": q.delayed, "dead": q.dead,
            })).collect::<Vec<_>>()),
            "waiting_requests": state.waiter.waiting(),
        })),
    )
}
