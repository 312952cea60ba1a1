//! Errors of `/v1/*` in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with
//! OpenAI's statuses, so an OpenAI SDK raises the exception it would raise against OpenAI
//! (`AuthenticationError`, `BadRequestError`, `NotFoundError`, `RateLimitError`, …). `/api/*`
//! keeps its own shape ([`ApiError`]); [`From<ApiError>`] maps one to the other in one `match`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_shared::store::StoreError;

use crate::http::error::ApiError;
use crate::submit::SubmitError;

/// `type` of a refused request.
pub const INVALID_REQUEST: &str = "invalid_request_error";
/// `type` of a failure on our side or the provider's.
pub const SERVER_ERROR: &str = "server_error";
/// `type` of a refusal for load (OpenAI's own `type` of a request-rate limit).
pub const RATE_LIMIT: &str = "requests";

/// Seconds a client should wait before retrying a full queue.
const QUEUE_FULL_RETRY_AFTER_S: u64 = 1;

/// A `/v1` failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Error {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type`.
    pub kind: &'static str,
    /// OpenAI's `code`.
    pub code: Option<&'static str>,
    /// The request parameter at fault (`messages[2].role`).
    pub param: Option<String>,
    /// What went wrong.
    pub message: String,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
    /// Tell OpenAI's SDKs not to retry (`x-should-retry: false`): the same request fails again.
    pub final_answer: bool,
}

impl V1Error {
    fn new(status: StatusCode, kind: &'static str, code: Option<&'static str>, m: String) -> Self {
        Self {
            status,
            kind,
            code,
            param: None,
            message: m,
            retry_after: None,
            final_answer: false,
        }
    }

    /// 400 about `param` (none: the body as a whole).
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            param: param.map(str::to_owned),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                None,
                message.into(),
            )
        }
    }

    /// 401 `invalid_api_key`.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            INVALID_REQUEST,
            Some("invalid_api_key"),
            message.to_owned(),
        )
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(message: impl Into<String>) -> Self {
        Self {
            param: Some("model".into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                Some("model_not_found"),
                message.into(),
            )
        }
    }

    /// 404 for a path under `/v1` that is not a route.
    pub fn unknown_url(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            Some("unknown_url"),
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// 405 on a route that exists.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            INVALID_REQUEST,
            Some("method_not_allowed"),
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 504: no worker answered within `WORKER_TIMEOUT_MS`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            SERVER_ERROR,
            Some("timeout"),
            message.into(),
        )
    }

    /// 502: the provider (or every worker that tried) failed.
    pub fn provider(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            SERVER_ERROR,
            Some("provider_error"),
            message.into(),
        )
    }

    /// 400: the provider refused the request for good; the message is its own.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            final_answer: true,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                Some("provider_refused"),
                message.into(),
            )
        }
    }

    /// 409: the task was cancelled (`DELETE /api/tasks/{id}`) before it answered.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self {
            final_answer: true,
            ..Self::new(
                StatusCode::CONFLICT,
                INVALID_REQUEST,
                Some("request_cancelled"),
                message.into(),
            )
        }
    }

    /// 503: the dispatcher is shutting down; another one (or this one, restarted) can serve.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            SERVER_ERROR,
            Some("service_unavailable"),
            "the dispatcher is shutting down; retry".into(),
        )
    }

    /// The `{"error": {…}}` object.
    pub fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> Self {
        let message = e.to_string();
        let (status, kind, code) = match &e {
            ApiError::BadRequest(_) => return Self::invalid(None, message),
            ApiError::Unauthorized(m) => return Self::unauthorized(m),
            // OpenAI's SDKs raise PermissionDeniedError on 403.
            ApiError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                Some("insufficient_permissions"),
            ),
            ApiError::RateLimited { retry_after_s, .. } => {
                return Self {
                    retry_after: Some(*retry_after_s),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        RATE_LIMIT,
                        Some("rate_limit_exceeded"),
                        message,
                    )
                };
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, INVALID_REQUEST, Some("not_found")),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, INVALID_REQUEST, None),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                Some("request_too_large"),
            ),
            // Routing checked the queue; what is left is a model that reaches no served queue.
            ApiError::Unprocessable { code, .. } if *code == "unknown_queue" => {
                return Self::model_not_found(message);
            }
            ApiError::Unprocessable { .. } => return Self::invalid(None, message),
            ApiError::QueueFull { .. } => {
                return Self {
                    retry_after: Some(QUEUE_FULL_RETRY_AFTER_S),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        RATE_LIMIT,
                        Some("rate_limit_exceeded"),
                        message,
                    )
                };
            }
            ApiError::Timeout { .. } => return Self::timeout(message),
            ApiError::TaskFailed(_) => return Self::provider(message),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                Some("service_unavailable"),
            ),
            ApiError::NotReplicated(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                Some("not_replicated"),
            ),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR, None),
        };
        Self::new(status, kind, code, message)
    }
}

impl From<SubmitError> for V1Error {
    fn from(e: SubmitError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<StoreError> for V1Error {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        let h = r.headers_mut();
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.final_answer {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_failures_map_to_openai_statuses_and_types() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400, INVALID_REQUEST, None),
            (
                ApiError::Unauthorized("no"),
                401,
                INVALID_REQUEST,
                Some("invalid_api_key"),
            ),
            (
                ApiError::QueueFull {
                    queue: "chat".into(),
                    limit: 1,
                },
                429,
                RATE_LIMIT,
                Some("rate_limit_exceeded"),
            ),
            (
                ApiError::Unavailable,
                503,
                SERVER_ERROR,
                Some("service_unavailable"),
            ),
            (
                ApiError::Timeout {
                    message: "late".into(),
                    task_id: "chat-1".into(),
                },
                504,
                SERVER_ERROR,
                Some("timeout"),
            ),
            (
                ApiError::Unprocessable {
                    code: "unknown_queue",
                    message: "q".into(),
                },
                404,
                INVALID_REQUEST,
                Some("model_not_found"),
            ),
            (ApiError::Internal, 500, SERVER_ERROR, None),
            (
                ApiError::Forbidden("scope".into()),
                403,
                INVALID_REQUEST,
                Some("insufficient_permissions"),
            ),
            (
                ApiError::RateLimited {
                    message: "rpm".into(),
                    retry_after_s: 7,
                },
                429,
                RATE_LIMIT,
                Some("rate_limit_exceeded"),
            ),
        ];
        for (api, status, kind, code) in cases {
            let e = V1Error::from(api);
            assert_eq!(
                (e.status.as_u16(), e.kind, e.code),
                (status, kind, code),
                "{e:?}"
            );
            let b = e.body();
            for f in ["message", "type", "param", "code"] {
                assert!(b["error"].get(f).is_some(), "{b}");
            }
        }
    }

    #[test]
    fn a_full_queue_says_when_to_retry_and_a_refusal_not_to() {
        let r = V1Error::from(ApiError::QueueFull {
            queue: "chat".into(),
            limit: 1,
        })
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = V1Error::refused("openai: HTTP 400: bad").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()["x-should-retry"], "false");
    }
}
