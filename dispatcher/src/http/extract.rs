//! Request extractors that answer bad input in the API's error format: a JSON body decoded with
//! the path of the offending field in the message (whatever the `Content-Type`), query strings,
//! and path parameters (axum's own rejections are plain text).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::AppState;

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(state.cfg.max_body_bytes)
                } else {
                    ApiError::BadRequest(format!(
                        "could not read the request body: {}",
                        e.body_text()
                    ))
                }
            })?;
        if bytes.is_empty() {
            return Err(ApiError::BadRequest(
                "request body is empty; expected a JSON object".into(),
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = if inner.is_syntax() || inner.is_eof() {
                format!("invalid JSON: {inner}")
            } else if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            };
            ApiError::BadRequest(msg)
        })?;
        // A body is one JSON value: anything after it (a second object, garbage) is refused
        // rather than silently dropped, so what was enqueued is exactly what was sent.
        de.end().map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid JSON: trailing data after the JSON value at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        Ok(ApiJson(value))
    }
}

/// Query parameters of type `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// Path parameters of type `T` (e.g. a task id that is not UTF-8 once percent-decoded).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e: PathRejection| ApiError::BadRequest(e.body_text()))
    }
}
