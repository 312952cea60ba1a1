//! What the dispatcher's tests share: its state and router on the shared test Redis under a
//! fresh key prefix, requests answered through `Router::oneshot`, and output entries written by
//! the one writer as a worker would.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use switchyard_dispatcher::state::AppState;
use switchyard_dispatcher::streams::{Hub, OutputTail};
use switchyard_dispatcher::{Settings, app_state, http};
use switchyard_shared::output::{self, Entry};
use switchyard_tests::{connection, shared_redis, unique_prefix};
use tower::ServiceExt;

/// `ROOT_NODE_SECRET` of every test dispatcher.
pub const SECRET: &str = "test-secret";

/// A dispatcher's state and router, not serving on any port.
pub struct Api {
    /// The routes, called through `oneshot`.
    pub router: Router,
    /// What the routes and duties share.
    pub state: AppState,
    /// The settings it was built from.
    pub settings: Settings,
}

/// A dispatcher on the shared test Redis under a fresh prefix, with [`SECRET`]; `extra` adds or
/// overrides variables.
pub fn api_with(extra: &[(&str, &str)]) -> Api {
    let mut vars: Vec<(String, String)> = vec![
        ("REDIS_URL".into(), shared_redis().url().to_owned()),
        ("QUEUE_PREFIX".into(), unique_prefix()),
        ("ROOT_NODE_SECRET".into(), SECRET.into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let settings = Settings::from_vars(&vars).expect("valid test settings");
    let state = app_state(&settings).expect("pool");
    Api {
        router: http::router(state.clone()),
        state,
        settings,
    }
}

/// [`api_with`] no extra variables.
pub fn api() -> Api {
    api_with(&[])
}

/// A request to `path` with a JSON content type and, when given, a bearer `token`.
pub fn request(method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request")
}

/// What a route answered.
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The `Content-Type` header, or empty.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON, or `Value::Null`.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the README's error shape (JSON, a code, a message) and returns the message.
    pub fn error_message(&self) -> String {
        let v = self.json();
        assert!(
            self.content_type().starts_with("application/json"),
            "content type {:?} of {} {:?}",
            self.content_type(),
            self.status,
            self.text()
        );
        assert!(v["error"]["code"].is_string(), "{v}");
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {v}"))
            .to_owned()
    }
}

impl Api {
    /// The answer to `req`, body read to the end.
    pub async fn oneshot(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The answer to [`request`]`(method, path, token, body)`.
    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Answer {
        self.oneshot(request(method, path, token, body.to_vec()))
            .await
    }

    /// Its key prefix.
    pub fn prefix(&self) -> &str {
        self.state.keys.prefix()
    }

    /// The URL of its Redis.
    pub fn redis_url(&self) -> &str {
        &self.settings.redis.redis_url
    }

    /// The output fan-out duty of this dispatcher, feeding `hub`.
    pub fn output_tail(&self, hub: &Hub) -> OutputTail {
        OutputTail::new(
            hub.clone(),
            self.state.pool.clone(),
            self.settings.redis.clone(),
        )
    }

    /// Appends `entries` to output stream `key` as a worker's writer does (TTL one minute).
    pub async fn append(&self, key: &str, entries: &[Entry]) {
        let mut con = connection(self.redis_url()).await;
        output::append(&mut con, key, entries, 1_000, Some(Duration::from_secs(60)))
            .await
            .expect("append");
    }
}

/// The `error.message` of an error answer, or empty.
pub fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

/// The `error.code` of an error answer, or empty.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// A text delta of `attempt`.
pub fn delta(attempt: u32, text: &str) -> Entry {
    Entry::Delta {
        attempt,
        text: text.to_owned(),
    }
}
