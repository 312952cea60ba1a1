//! The HTTP API (SPEC §6): routes, bearer auth on everything under `/api`, body limit, JSON
//! errors.
//!
//! One file per resource: [`tasks`], [`chat`], [`stream`] (SSE), [`workers`], [`queues`],
//! [`pause`], [`dead`], [`events`] (SSE of finished tasks), [`health`], [`metrics`],
//! [`tenants`] (API keys); [`v1`] is the OpenAI-compatible front door; [`error`] maps failures
//! to statuses, [`extract`] turns bad input into 400/413, [`auth`] checks the token, [`access`]
//! the scopes and whose tasks a caller sees.

pub mod access;
pub mod auth;
pub mod chat;
pub mod dead;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod pause;
pub mod queues;
pub mod stream;
pub mod tasks;
pub mod tenants;
pub mod v1;
pub mod workers;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::state::AppState;
use error::ApiError;

/// The dispatcher's routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/tasks", post(tasks::create))
        .route("/api/tasks/batch", post(tasks::create_batch))
        .route("/api/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/api/tasks/{id}/stream", get(stream::task_stream))
        .route("/api/chat", post(chat::chat))
        .route("/api/workers", get(workers::workers))
        .route("/api/queues", get(queues::queues))
        .route("/api/queues/{queue}", get(pause::one))
        .route("/api/queues/{queue}/pause", post(pause::pause))
        .route("/api/queues/{queue}/resume", post(pause::resume))
        .route("/api/events", get(events::events))
        .route("/api/dead", get(dead::list))
        .route("/api/dead/{id}/retry", post(dead::retry))
        .route("/api/health/all", get(health::all))
        .route("/api/metrics", get(metrics::summary))
        .route("/api/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/api/tenants/{id}",
            get(tenants::get)
                .patch(tenants::update)
                .delete(tenants::revoke),
        );
    // The token is checked by path before routing, so the fallbacks are guarded too.
    let guarded = auth::Guarded {
        state: state.clone(),
        guards: &[auth::API, v1::GUARD],
    };
    Router::new()
        .route("/health", get(health::live))
        .route("/metrics", get(metrics::prometheus))
        .merge(api)
        .merge(v1::router())
        .merge(crate::ui::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            guarded,
            auth::require_bearer,
        ))
        .route_layer(middleware::from_fn(metrics::track))
        .layer(middleware::map_response(error::json_errors))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

async fn method_not_allowed() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({"error": {"code": "method_not_allowed", "message": "method not allowed on this route"}})),
    )
        .into_response()
}
