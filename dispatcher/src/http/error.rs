//! The API's error type: every failure a handler can answer, mapped to its status code in one
//! `match`, rendered as `{"error": {"code", "message"}}`. Internal details are logged, never sent.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_shared::store::StoreError;

use crate::submit::SubmitError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: invalid JSON, a wrong or missing field, a bad parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller's key lacks the scope the route needs; the message names it.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant's `rpm` quota is used up until the window ends.
    #[error("{message}")]
    RateLimited {
        /// What is over.
        message: String,
        /// Seconds until the quota window has room again.
        retry_after_s: u64,
    },
    /// No such task (or route).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the task's state.
    #[error("{0}")]
    Conflict(String),
    /// Body larger than `MAX_BODY_BYTES`.
    #[error("request body exceeds MAX_BODY_BYTES ({0} bytes)")]
    TooLarge(usize),
    /// Well-formed but names a kind, queue or tool that does not exist.
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code (`unknown_kind`, `unknown_queue`, `unknown_tool`).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The queue is at `MAX_QUEUE_DEPTH`.
    #[error("queue {queue} is full (MAX_QUEUE_DEPTH = {limit}); retry later")]
    QueueFull {
        /// Queue.
        queue: String,
        /// The limit.
        limit: u64,
    },
    /// The task did not finish in time.
    #[error("{message}")]
    Timeout {
        /// What timed out.
        message: String,
        /// The task, so the client can poll it.
        task_id: String,
    },
    /// The task ended without a result.
    #[error("{0}")]
    TaskFailed(String),
    /// Redis is unreachable or slow.
    #[error("redis is unavailable; try again shortly")]
    Unavailable,
    /// The write reached the primary but fewer than `REDIS_WAIT_REPLICAS` replicas acknowledged
    /// it in time.
    #[error(
        "{0}; the write may be lost if the primary fails now: retry (with the same \
         idempotency_key, which finds the task if it was kept)"
    )]
    NotReplicated(String),
    /// A bug or an unexpected Redis answer; details are in the log.
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::NotReplicated { .. } = e {
            tracing::warn!(error = %e, "write not replicated in time");
            Self::NotReplicated(e.to_string())
        } else if e.is_unavailable() {
            tracing::warn!(error = %e, "redis unavailable");
            Self::Unavailable
        } else {
            tracing::error!(error = %e, "redis operation failed");
            Self::Internal
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(m) => Self::BadRequest(m),
            SubmitError::UnknownKind(message) => Self::Unprocessable {
                code: "unknown_kind",
                message,
            },
            SubmitError::UnknownQueue(message) => Self::Unprocessable {
                code: "unknown_queue",
                message,
            },
            SubmitError::UnknownTool(message) => Self::Unprocessable {
                code: "unknown_tool",
                message,
            },
            SubmitError::QueueFull { queue, limit } => Self::QueueFull { queue, limit },
            SubmitError::RateLimited {
                tenant,
                limit,
                retry_after,
            } => Self::RateLimited {
                message: format!(
                    "tenant {tenant} is over its rpm quota ({limit} tasks per minute); retry after the window ends"
                ),
                // Rounded up: a client retrying at the announced second finds room.
                retry_after_s: retry_after.as_millis().div_ceil(1000).max(1) as u64,
            },
            SubmitError::Store(e) => e.into(),
        }
    }
}

/// Seconds a client should wait before retrying a full queue.
const QUEUE_FULL_RETRY_AFTER_S: u64 = 1;

impl ApiError {
    /// The status code and machine-readable code this failure answers with.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            Self::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            Self::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Self::TaskFailed(_) => (StatusCode::BAD_GATEWAY, "task_failed"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            Self::NotReplicated(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_replicated"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The same failure about a part of the request: `prefix` (e.g. `tasks[3].`) goes before
    /// the field its message names.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Self::BadRequest(m) => Self::BadRequest(format!("{prefix}{m}")),
            Self::Unprocessable { code, message } => Self::Unprocessable {
                code,
                message: format!("{prefix}{message}"),
            },
            other => other,
        }
    }

    /// The `{"error": {code, message}}` object of this failure.
    pub fn body(&self) -> serde_json::Value {
        let (_, code) = self.status_and_code();
        json!({ "error": { "code": code, "message": self.to_string() } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let mut body = self.body();
        if let Self::Timeout { task_id, .. } = &self {
            body["task_id"] = json!(task_id);
        }
        let mut response = (status, Json(body)).into_response();
        match &self {
            Self::QueueFull { .. } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(QUEUE_FULL_RETRY_AFTER_S),
                );
            }
            Self::RateLimited { retry_after_s, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            Self::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// Longest plain-text error body kept as the message when [`json_errors`] rewrites it.
const MAX_FOREIGN_MESSAGE: usize = 1024;

/// Rewrites an error answer that is not JSON (a rejection of axum's or hyper's that no extractor
/// of ours caught) into `{"error": {code, message}}`, so every error of every route has the
/// README's shape. Answers that are already JSON pass untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_FOREIGN_MESSAGE)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let body = json!({ "error": { "code": code_of(status), "message": message } });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// The machine-readable code of a status no [`ApiError`] variant produced.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}
