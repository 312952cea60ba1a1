//! Bearer-token authentication of `/api/*` against `ROOT_NODE_SECRET`, compared in constant time
//! so response timing reveals nothing about the secret.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::state::AppState;

/// Rejects requests without the right `Authorization: Bearer …` header. Without a configured
/// secret (loopback-only deployments) every request passes.
pub async fn require_bearer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(secret) = state.cfg.root_node_secret.as_deref() else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match presented {
        None => ApiError::Unauthorized(
            "missing bearer token: send `Authorization: Bearer <ROOT_NODE_SECRET>`",
        )
        .into_response(),
        Some(token) if bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes())) => {
            next.run(req).await
        }
        Some(_) => ApiError::Unauthorized("wrong bearer token").into_response(),
    }
}
