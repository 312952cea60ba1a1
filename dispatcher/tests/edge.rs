//! The defects found at the HTTP edge by feeding the dispatcher bad input (issue 16, part 2),
//! each pinned through `Router::oneshot` against a real Redis: trailing data after a JSON body,
//! non-JSON error answers, client-minted metric labels, unauthenticated 404/405 on `/api/*`,
//! and client strings that would reach key names unchecked.

mod common;

use axum::body::Body;
use axum::http::{StatusCode, header};
use common::{Api, SECRET, api};
use serde_json::Value;
use switchyard_dispatcher::http;
use switchyard_tests::{connection, shared_redis};

impl Api {
    /// Every key under this dispatcher's prefix.
    async fn keys(&self) -> Vec<String> {
        let mut con = connection(shared_redis().url()).await;
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix()))
            .query_async(&mut con)
            .await
            .expect("KEYS")
    }
}

#[tokio::test]
async fn trailing_data_after_a_json_body_is_a_400_and_enqueues_nothing() {
    let api = api();
    let cases: [(&str, &[u8]); 4] = [
        (
            "/api/tasks",
            br#"{"kind":"tool","payload":{"tool":"echo"}}garbage"#,
        ),
        (
            "/api/tasks",
            br#"{"kind":"tool","payload":{"tool":"echo"}} {"x":1}"#,
        ),
        (
            "/api/tasks/batch",
            br#"{"tasks":[{"kind":"tool","payload":{"tool":"echo"}}]}garbage"#,
        ),
        ("/api/chat", br#"{"session_id":"s1","message":"hi"}garbage"#),
    ];
    for (path, body) in cases {
        let a = api.send("POST", path, Some(SECRET), body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        let m = a.error_message();
        assert!(m.contains("trailing data"), "{path}: {m}");
    }
    assert_eq!(
        api.keys().await,
        Vec::<String>::new(),
        "nothing was written"
    );
    // Whitespace after the value is not trailing data.
    let a = api
        .send(
            "POST",
            "/api/tasks",
            Some(SECRET),
            b"{\"kind\":\"tool\",\"payload\":{\"tool\":\"echo\"}}\r\n ",
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.json());
}

#[tokio::test]
async fn every_rejection_of_path_query_method_and_route_is_the_json_error_shape() {
    let api = api();
    let cases: [(&str, &str, StatusCode); 9] = [
        ("GET", "/api/tasks/%FF", StatusCode::BAD_REQUEST),
        ("DELETE", "/api/tasks/%FF", StatusCode::BAD_REQUEST),
        ("POST", "/api/dead/%FF/retry", StatusCode::BAD_REQUEST),
        ("GET", "/api/dead?limit=abc", StatusCode::BAD_REQUEST),
        ("GET", "/api/dead?limit=%FF", StatusCode::BAD_REQUEST),
        ("POST", "/api/tasks?wait_ms=-1", StatusCode::BAD_REQUEST),
        ("PUT", "/api/tasks", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/api/nope", StatusCode::NOT_FOUND),
        ("GET", "/nope/%FF", StatusCode::NOT_FOUND),
    ];
    for (method, path, status) in cases {
        let a = api
            .send(
                method,
                path,
                Some(SECRET),
                br#"{"kind":"tool","payload":{"tool":"echo"}}"#,
            )
            .await;
        assert_eq!(a.status, status, "{method} {path}: {:?}", a.json());
        let m = a.error_message();
        assert!(!m.is_empty(), "{method} {path}");
    }
    let a = api.send("GET", "/api/tasks/%FF", Some(SECRET), b"").await;
    assert!(a.error_message().contains("UTF-8"), "{:?}", a.json());
}

#[tokio::test]
async fn a_plain_text_error_from_below_the_handlers_is_rewritten_as_json() {
    let plain = axum::response::Response::builder()
        .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(
            "Expected request with `Content-Type: application/json`",
        ))
        .expect("response");
    let resp = http::error::json_errors(plain).await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(v["error"]["code"], "unsupported_media_type");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Content-Type")),
        "{v}"
    );
}

#[tokio::test]
async fn metric_labels_come_from_a_fixed_set_whatever_the_client_sends() {
    let api = api();
    for method in ["FOOA", "FOOB", "X-MINTED"] {
        let a = api.send(method, "/health", None, b"").await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        a.error_message();
    }
    api.send("GET", "/api/tasks/tool-minted-route", Some(SECRET), b"")
        .await;
    let a = api.send("GET", "/metrics", None, b"").await;
    let text = a.text();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("switchyard_http_requests_total{"))
        .collect();
    assert!(
        series.iter().any(|l| l.contains(r#"method="other""#)),
        "{series:?}"
    );
    for line in &series {
        assert!(
            !line.contains("FOO") && !line.contains("MINTED") && !line.contains("minted"),
            "a client-minted label: {line}"
        );
        let method = line
            .split("method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
                "other"
            ]
            .contains(&method),
            "{line}"
        );
    }
}

#[tokio::test]
async fn the_token_is_checked_before_routing_under_api() {
    let api = api();
    let cases = [
        ("GET", "/api/nope"),
        ("PUT", "/api/tasks"),
        ("GET", "/api"),
        ("GET", "/api/"),
        ("DELETE", "/api/queues"),
        ("FOOA", "/api/tasks"),
        ("GET", "/api/tasks/%FF"),
        ("POST", "/api/dead/x/retry"),
        ("GET", "/api/tasks/x/stream"),
    ];
    for (method, path) in cases {
        for token in [None, Some("wrong")] {
            let a = api.send(method, path, token, b"").await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(
                a.error_message().contains("bearer token"),
                "{method} {path}"
            );
            assert_eq!(
                a.headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{method} {path}"
            );
        }
    }
    // With the token, the routing answers.
    let a = api.send("GET", "/api/nope", Some(SECRET), b"").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = api.send("PUT", "/api/tasks", Some(SECRET), b"").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    // Outside /api nothing needs a token.
    for (path, status) in [
        ("/health", StatusCode::OK),
        ("/metrics", StatusCode::OK),
        ("/apix", StatusCode::NOT_FOUND),
        ("/nope", StatusCode::NOT_FOUND),
    ] {
        let a = api.send("GET", path, None, b"").await;
        assert_eq!(a.status, status, "{path}");
    }
}

#[tokio::test]
async fn client_strings_that_would_enter_key_names_are_checked_and_the_400_names_the_field() {
    let api = api();
    let long = "k".repeat(10_000);
    let bad = ["a*b", "{tag}", "a b", "a?[x]", "é", long.as_str(), ""];
    for value in bad {
        let v = serde_json::Value::from(value);
        let cases = [
            (
                "/api/tasks",
                serde_json::json!({"kind": "tool", "payload": {"tool": "echo"}, "idempotency_key": v}),
                "idempotency_key",
            ),
            (
                "/api/tasks/batch",
                serde_json::json!({"tasks": [
                    {"kind": "tool", "payload": {"tool": "echo"}},
                    {"kind": "tool", "payload": {"tool": "echo"}, "idempotency_key": v},
                ]}),
                "tasks[1].idempotency_key",
            ),
            (
                "/api/tasks",
                serde_json::json!({"kind": "chat", "payload": {"message": "hi", "session_id": v}}),
                "payload: session_id",
            ),
            (
                "/api/tasks/batch",
                serde_json::json!({"tasks": [
                    {"kind": "chat", "payload": {"message": "hi", "session_id": v}},
                ]}),
                "tasks[0].payload: session_id",
            ),
            (
                "/api/chat",
                serde_json::json!({"message": "hi", "session_id": v}),
                "session_id",
            ),
        ];
        for (path, body, field) in cases {
            let a = api
                .send("POST", path, Some(SECRET), body.to_string().as_bytes())
                .await;
            let short: String = value.chars().take(12).collect();
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path} {short:?}");
            let m = a.error_message();
            assert!(m.starts_with(field), "{path} {short:?}: {m}");
            assert!(m.contains("A-Z, a-z, 0-9"), "{path}: {m}");
            assert!(m.len() < 200, "the message does not echo the value: {m}");
        }
    }
    assert_eq!(
        api.keys().await,
        Vec::<String>::new(),
        "nothing was written"
    );
    // The longest and the richest accepted values.
    let ok = serde_json::json!({"kind": "tool", "payload": {"tool": "echo"},
        "idempotency_key": "k".repeat(128)});
    let a = api
        .send(
            "POST",
            "/api/tasks",
            Some(SECRET),
            ok.to_string().as_bytes(),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.json());
    let ok = serde_json::json!({"kind": "chat",
        "payload": {"message": "hi", "session_id": "user:42.chat_7-0192b3c4"}});
    let a = api
        .send(
            "POST",
            "/api/tasks",
            Some(SECRET),
            ok.to_string().as_bytes(),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.json());
}
