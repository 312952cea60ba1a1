//! `GET /metrics` (Prometheus text, no auth) and `GET /api/metrics` (JSON summary: throughput
//! and latency over the last minute, tasks per worker), plus the middleware that counts and
//! times every HTTP request by route and status.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, histogram};
use serde_json::{Value, json};
use switchyard_shared::clock;
use switchyard_shared::metrics as m;

use super::error::ApiError;
use super::workers::list_workers;
use crate::state::AppState;

/// `GET /metrics`.
pub async fn prometheus(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /api/metrics`.
pub async fn summary(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let window = state.recent.summary(clock::now_ms());
    let workers = list_workers(&state).await?;
    let per_worker: Vec<Value> = workers
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "status": w.status,
                "processed": w.record.as_ref().map(|r| r.processed),
                "failed": w.record.as_ref().map(|r| r.failed),
                "running": w.current_tasks.len(),
            })
        })
        .collect();
    Ok(Json(json!({
        "last_minute": window,
        "workers": per_worker,
        "waiting_requests": state.waiter.waiting(),
    })))
}

/// Counts and times each request under its route pattern (not the raw path, so task ids do
/// not explode the label set) and its method from a fixed set: every label value comes from
/// the server, never from the client, so no request can mint a new series.
pub async fn track(req: Request, next: Next) -> Response {
    let began = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    counter!(m::HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    histogram!(m::HTTP_DURATION, "method" => method, "route" => route)
        .record(began.elapsed().as_secs_f64());
    response
}

/// The `method` label of a request: a standard method's name, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}
