//! The worker's small HTTP server: `GET /health` (`{status, worker_id, current_tasks}`) for
//! probes and operators, and `GET /metrics` for Prometheus. Workers need no inbound port for work; this one is for watching.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::context::Ctx;

/// The health routes.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .with_state(ctx)
}

async fn health(State(ctx): State<Ctx>) -> Json<Value> {
    let ids = ctx.in_flight_ids();
    Json(json!({
        "status": if ctx.draining.is_cancelled() { "draining" } else { "healthy" },
        "worker_id": ctx.id,
        "current_tasks": ids.len(),
        "task_ids": ids,
        "queues": ctx.cfg.worker_queues,
        // Of its queues, those it takes no new entries from, as this worker knows it now.
        "paused_queues": ctx.paused.snapshot(),
        "concurrency": ctx.cfg.worker_concurrency,
        "processed": ctx.processed.load(std::sync::atomic::Ordering::Relaxed),
        "failed": ctx.failed.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

async fn prometheus() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        switchyard_shared::metrics::install().render(),
    )
}
