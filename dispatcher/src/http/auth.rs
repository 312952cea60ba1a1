//! Bearer-token authentication of `/api/*` (and `/v1/*`) against `ROOT_NODE_SECRET`, compared in
//! constant time so response timing reveals nothing about the secret.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::state::AppState;

/// Rejects requests without the right `Authorization: Bearer …` header. Without a configured
/// secret (loopback-only deployments) every request passes.
pub async fn require_bearer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check(state.cfg.root_node_secret.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => ApiError::Unauthorized(why).into_response(),
    }
}

/// Whether `headers` carry `secret` as a bearer token (always, without a secret); the reason
/// otherwise.
pub fn check(secret: Option<&str>, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match presented {
        None => Err("missing bearer token: send `Authorization: Bearer <ROOT_NODE_SECRET>`"),
        Some(token) if bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes())) => Ok(()),
        Some(_) => Err("wrong bearer token"),
    }
}
