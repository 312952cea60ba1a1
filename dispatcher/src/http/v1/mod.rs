//! The OpenAI-compatible front door, `/v1/*`: a client of OpenAI's chat-completions protocol
//! (the official SDKs, LangChain, editors) points its `base_url` at the dispatcher's `/v1` and
//! gets queueing, failover, retries and metrics without a change. Same bearer token as `/api`,
//! checked before anything else under `/v1` (an unknown path or method answers 401 to a client
//! without the token), and every error in OpenAI's shape ([`error`]).
//!
//! - [`chat_completions`]: `POST /v1/chat/completions`, waited or streamed.
//! - [`body`]: reading and checking its request body.
//! - [`answer`]: a finished task as `chat.completion`, or as an OpenAI error.
//! - [`chunks`]: output entries as `chat.completion.chunk`s.
//! - [`models`]: `GET /v1/models`.
//! - [`error`]: [`error::V1Error`], OpenAI's error shape and statuses.

pub mod answer;
pub mod body;
pub mod chat_completions;
pub mod chunks;
pub mod error;
pub mod models;

use axum::Router;
use axum::http::{Method, Uri};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, any, get, post};

use crate::http::auth;
use crate::http::error::ApiError;
use crate::state::AppState;
use error::V1Error;

/// The `/v1` routes, with their auth and their own 404 and 405 answers.
pub fn router() -> Router<AppState> {
    let refuse = |r: MethodRouter<AppState>| r.fallback(method_not_allowed);
    Router::new()
        .route(
            "/v1/chat/completions",
            refuse(post(chat_completions::create)),
        )
        .route("/v1/models", refuse(get(models::list)))
        .route("/v1/models/{*model}", refuse(get(models::get)))
        .route("/v1", any(not_found))
        .route("/v1/{*rest}", any(not_found))
}

/// `/v1`: the token is checked by path before routing (see [`auth::Guard`]), refusals in
/// OpenAI's 401 shape.
pub const GUARD: auth::Guard = auth::Guard {
    prefix: "/v1",
    refuse: |r| V1Error::from(ApiError::from(r)).into_response(),
};

async fn not_found(method: Method, uri: Uri) -> V1Error {
    V1Error::unknown_url(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> V1Error {
    V1Error::method_not_allowed(method.as_str(), uri.path())
}
