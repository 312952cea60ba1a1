//! Bearer-token authentication against `ROOT_NODE_SECRET`, by path prefix: a request under a
//! guarded prefix (`/api`) is checked before routing, so without the token an unknown route or
//! method there answers 401, not 404/405, and reveals nothing of the routes. The token is
//! compared in constant time so response timing reveals nothing about the secret.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::state::AppState;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is not the secret.
    Wrong,
}

impl Refusal {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "missing bearer token: send `Authorization: Bearer <ROOT_NODE_SECRET>`"
            }
            Self::Wrong => "wrong bearer token",
        }
    }
}

/// A guarded part of the URL space: its path prefix and how a refusal there is answered (each
/// part answers in its own error shape).
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// `/api` covers `/api` and every path under `/api/`, not `/apix`.
    pub prefix: &'static str,
    /// The 401 answer.
    pub refuse: fn(Refusal) -> Response,
}

impl Guard {
    /// Whether `path` is under this guard.
    pub fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// `/api`: refusals in the README's error shape.
pub const API: Guard = Guard {
    prefix: "/api",
    refuse: |r| ApiError::Unauthorized(r.message()).into_response(),
};

/// The state of [`require_bearer`]: the secret (in the app state) and the guarded prefixes.
#[derive(Clone)]
pub struct Guarded {
    /// The app state, for `ROOT_NODE_SECRET`.
    pub state: AppState,
    /// The guarded parts of the URL space.
    pub guards: &'static [Guard],
}

/// Checks the bearer token of a request under one of the guards, before any routing; other
/// paths (`/health`, `/metrics`) pass. Without a configured secret (loopback-only deployments)
/// every request passes.
pub async fn require_bearer(State(g): State<Guarded>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some(guard) = g.guards.iter().find(|guard| guard.covers(path)) else {
        return next.run(req).await;
    };
    match check(g.state.cfg.root_node_secret.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => (guard.refuse)(refusal),
    }
}

/// Whether `headers` carry `secret` as their bearer token (always, when there is no secret).
pub fn check(secret: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or(Refusal::Missing)?;
    if bool::from(presented.trim().as_bytes().ct_eq(secret.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_covers_its_prefix_and_what_is_under_it_only() {
        assert!(API.covers("/api"));
        assert!(API.covers("/api/"));
        assert!(API.covers("/api/nope/deeper"));
        assert!(!API.covers("/apix"));
        assert!(!API.covers("/health"));
        assert!(!API.covers("/metrics"));
        assert!(!API.covers("/"));
    }

    #[test]
    fn the_token_is_checked_only_when_a_secret_is_set() {
        let mut h = HeaderMap::new();
        assert_eq!(check(None, &h), Ok(()));
        assert_eq!(check(Some("s3"), &h), Err(Refusal::Missing));
        h.insert(
            header::AUTHORIZATION,
            "Bearer nope".parse().expect("header"),
        );
        assert_eq!(check(Some("s3"), &h), Err(Refusal::Wrong));
        h.insert(header::AUTHORIZATION, "Bearer s3".parse().expect("header"));
        assert_eq!(check(Some("s3"), &h), Ok(()));
        h.insert(header::AUTHORIZATION, "Basic czM=".parse().expect("header"));
        assert_eq!(check(Some("s3"), &h), Err(Refusal::Missing));
    }
}
