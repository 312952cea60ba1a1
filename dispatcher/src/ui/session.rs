//! Login, logout and the session check in front of every console page and action.
//!
//! A login with an API key (the admin secret or a tenant's key, checked as a bearer token is)
//! opens a session in Redis ([`switchyard_shared::console`], expiring after `UI_SESSION_TTL_S`)
//! and sets its random token as an `HttpOnly`, `SameSite=Strict` cookie limited to `/ui`. Every
//! other console request needs a live session (else: 303 to the login page), the scope of the
//! page or action ([`need`], the same scopes as the API: else 403), and every `POST` the
//! session's CSRF token (form field `csrf` or header `x-csrf-token`, compared in constant time:
//! else 403). A tenant is read again on every request, so a revoked key ends its sessions.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use switchyard_shared::clock;
use switchyard_shared::console::{self, ConsoleSession, Principal};
use switchyard_shared::tenant;

use super::html::{self, esc};
use crate::http::access::{Caller, Need};
use crate::http::auth::identify_token;
use crate::http::error::ApiError;
use crate::state::AppState;

/// The session cookie.
pub const COOKIE: &str = "sy_session";

/// A signed-in console request: who, and the token its actions must carry.
#[derive(Debug, Clone)]
pub struct UiSession {
    /// Who signed in (read again from Redis on this request).
    pub caller: Caller,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session cookie's token.
    pub token: String,
}

impl<S: Send + Sync> FromRequestParts<S> for UiSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<UiSession>()
            .cloned()
            .ok_or(ApiError::Unauthorized("no console session"))
    }
}

/// The scope a console request needs: the one of the API route it mirrors.
pub fn need(method: &Method, path: &str) -> Need {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let reading = *method == Method::GET || *method == Method::HEAD;
    match (parts.as_slice(), reading) {
        (["ui", "tenants", ..], _) => Need::Admin,
        (["ui"] | ["ui", "queues", _] | ["ui", "tasks", ..], true) => Need::SubmitOrRead,
        (_, true) => Need::Read,
        (["ui", "logout"], false) => Need::SubmitOrRead,
        (["ui", "dead", id, "retry"], false) if *id != "retry-all" => Need::Submit,
        _ => Need::Admin,
    }
}

/// Whether `path` is open without a session (the login page and the static assets).
fn public(path: &str) -> bool {
    path == "/ui/login" || path.starts_with("/ui/assets/")
}

/// The middleware in front of `/ui`: see the module docs.
pub async fn require_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if public(&path) {
        return next.run(req).await;
    }
    let session = match cookie(req.headers()) {
        Some(token) => match resume(&state, token).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        return html::see_other("/ui/login?expired=1");
    };
    let need = need(req.method(), &path);
    if !session.caller.admits(need) {
        return ApiError::Forbidden(format!(
            "this login lacks the scope `{}` this console page or action needs",
            need.names()
        ))
        .into_response();
    }
    let mut req = if req.method() == Method::POST {
        match checked_csrf(&state, req, &session.csrf).await {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    } else {
        req
    };
    req.extensions_mut().insert(session.caller.clone());
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// The request again (its body read once) if it carries the session's CSRF token.
async fn checked_csrf(state: &AppState, req: Request, csrf: &str) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, state.cfg.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge(state.cfg.max_body_bytes))?;
    let presented = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| html::form(&bytes).remove("csrf"));
    match presented {
        Some(p) if bool::from(p.as_bytes().ct_eq(csrf.as_bytes())) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(ApiError::Forbidden(
            "missing or wrong CSRF token (form field `csrf`): reload the page and try again".into(),
        )),
    }
}

/// The live session of `token`, with its caller read again; `None` when there is none, or its
/// tenant was revoked (the session is then ended).
async fn resume(state: &AppState, token: &str) -> Result<Option<UiSession>, ApiError> {
    let mut con = state.pool.get().await?;
    let Some(s) = console::read(&mut *con, &state.keys, token).await? else {
        return Ok(None);
    };
    if s.expires_ms <= clock::now_ms() {
        return Ok(None);
    }
    let caller = match &s.principal {
        Principal::Admin => Caller::Admin,
        Principal::Tenant { id } => match tenant::load(&mut *con, &state.keys, id).await? {
            Some(t) => Caller::Tenant(Arc::new(t)),
            None => {
                console::close(&mut *con, &state.keys, token).await?;
                return Ok(None);
            }
        },
    };
    Ok(Some(UiSession {
        caller,
        csrf: s.csrf,
        token: token.to_owned(),
    }))
}

/// The session token of the request's cookie.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `GET /ui/login` (`?refused=1` after a refused key, `?expired=1` when a page needed a session
/// that is gone).
pub async fn login_page(uri: Uri) -> Response {
    let q = html::form(uri.query().unwrap_or_default().as_bytes());
    let note = if q.contains_key("refused") {
        r#"<p class="error" id="refused">That key was refused (unknown or revoked).</p>"#
    } else if q.contains_key("expired") {
        r#"<p class="note" id="expired">Your session ended or was never opened: log in.</p>"#
    } else {
        ""
    };
    html::html_response(
        StatusCode::OK,
        format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>log in · switchyard</title><link rel="stylesheet" href="/ui/assets/app.css"></head><body><main class="login"><h1>switchyard console</h1>{note}<form method="post" action="/ui/login"><label>API key <input type="password" name="key" id="key" autocomplete="off" autofocus></label><button type="submit" id="login">log in</button></form><p class="note">The admin key (<code>ROOT_NODE_SECRET</code>) or a tenant's key.</p></main></body></html>"#
        ),
    )
}

/// `POST /ui/login` with form field `key`: 303 to the console with the session cookie, or back
/// to the login page.
pub async fn login(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let key = html::form(&body).remove("key").unwrap_or_default();
    let key = key.trim();
    let caller = match identify_token(&state, (!key.is_empty()).then_some(key)).await {
        Ok(c) => c,
        Err(crate::http::auth::Refusal::Unavailable) => return Err(ApiError::Unavailable),
        Err(_) => return Ok(html::see_other("/ui/login?refused=1")),
    };
    let principal = match caller.tenant_id() {
        None => Principal::Admin,
        Some(id) => Principal::Tenant { id: id.to_owned() },
    };
    let ttl = state.cfg.ui_session_ttl;
    let token = console::new_token();
    let session = ConsoleSession {
        principal,
        csrf: console::new_token(),
        expires_ms: clock::now_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2),
    };
    let mut con = state.pool.get().await?;
    console::open(&mut *con, &state.keys, &token, &session, ttl).await?;
    tracing::info!(
        tenant = caller.tenant_id().unwrap_or("admin"),
        "console login"
    );
    let mut r = html::see_other("/ui");
    set_cookie(&mut r, &token, ttl.as_secs());
    Ok(r)
}

/// `POST /ui/logout`: ends the session, clears the cookie.
pub async fn logout(State(state): State<AppState>, s: UiSession) -> Result<Response, ApiError> {
    let mut con = state.pool.get().await?;
    console::close(&mut *con, &state.keys, &s.token).await?;
    let mut r = html::see_other("/ui/login");
    set_cookie(&mut r, "", 0);
    Ok(r)
}

fn set_cookie(r: &mut Response, token: &str, max_age_s: u64) {
    let v = format!(
        "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_s}",
        esc(token)
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_need_read_actions_need_their_api_scope() {
        let (get, post) = (Method::GET, Method::POST);
        let cases = [
            (&get, "/ui/overview", Need::Read),
            (&get, "/ui/live", Need::Read),
            (&get, "/ui/workers", Need::Read),
            (&get, "/ui/dead", Need::Read),
            (&get, "/ui/queues/tool", Need::SubmitOrRead),
            (&get, "/ui/tasks/tool-1-0", Need::SubmitOrRead),
            (&get, "/ui/tenants", Need::Admin),
            (&post, "/ui/tenants", Need::Admin),
            (&post, "/ui/queues/tool/pause", Need::Admin),
            (&post, "/ui/dead/tool-1-0/retry", Need::Submit),
            (&post, "/ui/dead/retry-all", Need::Admin),
            (&post, "/ui/dead/tool-1-0/delete", Need::Admin),
            (&post, "/ui/logout", Need::SubmitOrRead),
            (&post, "/ui/anything", Need::Admin),
        ];
        for (m, p, n) in cases {
            assert_eq!(need(m, p), n, "{m} {p}");
        }
    }

    #[test]
    fn only_a_well_formed_session_cookie_is_read() {
        let token = "ab".repeat(32);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={token}").parse().expect("header"),
        );
        assert_eq!(cookie(&h), Some(token.as_str()));
        h.insert(
            header::COOKIE,
            format!("{COOKIE}=zz").parse().expect("header"),
        );
        assert_eq!(cookie(&h), None);
    }
}
