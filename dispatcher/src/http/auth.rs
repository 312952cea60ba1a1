//! Bearer-token authentication, by path prefix: a request under a guarded prefix (`/api`,
//! `/v1`) is checked before routing, so without a valid token an unknown route or method there
//! answers 401, not 404/405, and reveals nothing of the routes. The token is `ROOT_NODE_SECRET`
//! (admin; compared in constant time so response timing reveals nothing about it) or a tenant's
//! key (looked up by its hash, [`crate::tenants`]); the caller then needs the route's scope
//! ([`super::access`], 403 naming it) and travels in the request's extensions as a [`Caller`].

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::access::{self, Caller, Need};
use super::error::ApiError;
use crate::state::AppState;
use switchyard_shared::tenant::KEY_PREFIX;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is neither the secret nor a live tenant key (unknown or revoked).
    Wrong,
    /// A tenant key without the scope the route needs.
    Forbidden(Need),
    /// Redis could not be asked about a tenant key.
    Unavailable,
}

impl Refusal {
    /// What the client is told (for the 401s).
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "missing bearer token: send `Authorization: Bearer <ROOT_NODE_SECRET or API key>`"
            }
            Self::Wrong => "wrong bearer token (unknown or revoked key)",
            Self::Forbidden(_) => "this key lacks the scope this route needs",
            Self::Unavailable => "redis is unavailable; try again shortly",
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Missing | Refusal::Wrong => Self::Unauthorized(r.message()),
            Refusal::Forbidden(need) => Self::Forbidden(format!(
                "this key lacks the scope `{}` this route needs",
                need.names()
            )),
            Refusal::Unavailable => Self::Unavailable,
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
    refuse: |r| ApiError::from(r).into_response(),
};

/// The state of [`require_bearer`]: the secret (in the app state) and the guarded prefixes.
#[derive(Clone)]
pub struct Guarded {
    /// The app state, for `ROOT_NODE_SECRET`.
    pub state: AppState,
    /// The guarded parts of the URL space.
    pub guards: &'static [Guard],
}

/// Checks the bearer token and the scope of a request under one of the guards, before any
/// routing, and hands the [`Caller`] on; other paths (`/health`, `/metrics`) pass. Without a
/// configured secret (loopback-only deployments) a request without a tenant key is admin.
pub async fn require_bearer(State(g): State<Guarded>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some(guard) = g.guards.iter().find(|guard| guard.covers(path)) else {
        return next.run(req).await;
    };
    let need = access::need(req.method(), path);
    let caller = match identify(&g.state, req.headers()).await {
        Ok(c) => c,
        Err(refusal) => return (guard.refuse)(refusal),
    };
    if !caller.admits(need) {
        return (guard.refuse)(Refusal::Forbidden(need));
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Who presents the bearer token of `headers`: the secret, a live tenant key, or (without a
/// secret) anybody. A token shaped like a key that no tenant has is refused even then.
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    identify_token(state, bearer(headers)).await
}

/// Who presents `presented` (a bearer token, or the key typed into the console's login form):
/// the secret, a live tenant key, or (without a secret) anybody.
pub(crate) async fn identify_token(
    state: &AppState,
    presented: Option<&str>,
) -> Result<Caller, Refusal> {
    let secret = state.cfg.root_node_secret.as_deref();
    if let (Some(s), Some(p)) = (secret, presented)
        && bool::from(p.as_bytes().ct_eq(s.as_bytes()))
    {
        return Ok(Caller::Admin);
    }
    // Only tokens shaped like a key cost a lookup: a wrong root secret is refused at once.
    if let Some(p) = presented.filter(|p| p.starts_with(KEY_PREFIX)) {
        return match state.tenants.resolve(&state.pool, &state.keys, p).await {
            Ok(Some(t)) => Ok(Caller::Tenant(t)),
            Ok(None) => Err(Refusal::Wrong),
            Err(e) => {
                tracing::warn!(error = %e, "tenant key lookup failed");
                Err(Refusal::Unavailable)
            }
        };
    }
    match (secret, presented) {
        (None, _) => Ok(Caller::Admin),
        (Some(_), None) => Err(Refusal::Missing),
        (Some(_), Some(_)) => Err(Refusal::Wrong),
    }
}

/// The bearer token of `headers`, trimmed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Whether `headers` carry `secret` as their bearer token (always, when there is no secret).
pub fn check(secret: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let presented = bearer(headers).ok_or(Refusal::Missing)?;
    if bool::from(presented.as_bytes().ct_eq(secret.as_bytes())) {
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
