//! The HTTP API through `Router::oneshot` against a real Redis: status codes and messages for bad
//! input, auth, and the task operations that need no worker (enqueue, read, cancel, dedupe,
//! backpressure, dead-letter replay).

mod common;

use axum::http::{HeaderMap, StatusCode, header};
use common::{Api, SECRET, message};
use serde_json::{Value, json};
use switchyard_tests::connection;

/// [`common::api_with`] with a 4 KiB body limit.
fn api_with(extra: &[(&str, &str)]) -> Api {
    common::api_with(&[&[("MAX_BODY_BYTES", "4096")], extra].concat())
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value, HeaderMap) {
        let a = self.send(method, path, token, &body).await;
        (a.status, a.json(), a.headers)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call("POST", path, Some(SECRET), body.to_string().into_bytes())
            .await;
        (s, v)
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value, HeaderMap) {
        self.call("DELETE", path, Some(SECRET), Vec::new()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call("GET", path, Some(SECRET), Vec::new()).await;
        (s, v)
    }
}

fn echo_task() -> Value {
    json!({"kind": "tool", "payload": {"tool": "echo", "args": {"x": 1}}})
}

#[tokio::test]
async fn invalid_json_is_a_400_that_says_so() {
    let api = api_with(&[]);
    let (s, v, _) = api
        .call("POST", "/api/tasks", Some(SECRET), b"{\"kind\":".to_vec())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_request");
    assert!(message(&v).contains("invalid JSON"), "{v}");
}

#[tokio::test]
async fn missing_or_mistyped_fields_are_400s_naming_the_field() {
    let api = api_with(&[]);
    let cases = [
        ("/api/tasks", json!({"kind": "tool"}), "payload"),
        (
            "/api/tasks",
            json!({"kind": "tool", "payload": {"tool": "echo"}, "max_attempts": "x"}),
            "max_attempts",
        ),
        (
            "/api/tasks",
            json!({"kind": "tool", "payload": {"args": {}}}),
            "tool",
        ),
        (
            "/api/tasks",
            json!({"kind": "tool", "payload": {"tool": "echo"}, "colour": "red"}),
            "colour",
        ),
        (
            "/api/tasks",
            json!({"kind": "chat", "payload": {}}),
            "message",
        ),
        (
            "/api/tasks",
            json!({"kind": "tool", "payload": {"tool": "echo"}, "max_attempts": 0}),
            "max_attempts",
        ),
        ("/api/tasks?wait_ms=soon", echo_task(), "wait_ms"),
    ];
    for (path, body, field) in cases {
        let (s, v) = api.post(path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}");
        assert!(message(&v).contains(field), "{path} {body}: {v}");
    }
}

#[tokio::test]
async fn unknown_kind_queue_or_tool_is_a_422_naming_it() {
    let api = api_with(&[]);
    let cases = [
        (
            json!({"kind": "video", "payload": {}}),
            "unknown_kind",
            "video",
        ),
        (
            json!({"kind": "tool", "queue": "gpu", "payload": {"tool": "echo"}}),
            "unknown_queue",
            "gpu",
        ),
        (
            json!({"kind": "tool", "payload": {"tool": "teleport"}}),
            "unknown_tool",
            "teleport",
        ),
    ];
    for (body, code, name) in cases {
        let (s, v) = api.post("/api/tasks", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(message(&v).contains(name), "{body}: {v}");
    }
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let api = api_with(&[]);
    let big = json!({"kind": "tool", "payload": {"tool": "echo", "args": {"x": "a".repeat(5000)}}});
    let (s, v) = api.post("/api/tasks", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&v).contains("MAX_BODY_BYTES"), "{v}");
}

#[tokio::test]
async fn missing_or_wrong_token_is_a_401_and_health_needs_none() {
    let api = api_with(&[]);
    let body = echo_task().to_string().into_bytes();
    let (s, v, h) = api.call("POST", "/api/tasks", None, body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&v).contains("missing bearer token"), "{v}");
    assert_eq!(
        h.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let (s, v, _) = api.call("POST", "/api/tasks", Some("nope"), body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&v).contains("wrong bearer token"), "{v}");
    assert!(!v.to_string().contains(SECRET));
    let (s, _, _) = api
        .call("GET", "/api/workers", Some("test-secreT"), Vec::new())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api.call("GET", "/health", None, Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"status": "healthy"}));
}

#[tokio::test]
async fn enqueued_task_is_readable_and_sits_in_its_stream() {
    let api = api_with(&[]);
    let (s, v) = api.post("/api/tasks", echo_task()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["state"], "queued");
    let id = v["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("tool-"), "{id}");
    let (s, t) = api.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], 0);
    assert_eq!(t["max_attempts"], 3);
    assert_eq!(t["payload"]["args"], json!({"x": 1}));

    let len = stream_len(&api).await;
    assert_eq!(len, 1);
    let (s, q) = api.get("/api/queues").await;
    assert_eq!(s, StatusCode::OK);
    let tool = q["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == "tool"))
        .cloned();
    let tool = tool.expect("tool queue listed");
    assert_eq!(tool["depth"], 1);
    assert_eq!(tool["waiting"], 1);
    assert_eq!(tool["counts"]["queued"], 1);
}

#[tokio::test]
async fn unknown_task_is_a_404() {
    let api = api_with(&[]);
    let (s, v) = api.get("/api/tasks/tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    let (s, _) = api.get("/api/tasks/not-an-id").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .post("/api/dead/tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5/retry", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn queued_and_delayed_tasks_cancel_at_once_and_finished_ones_conflict() {
    let api = api_with(&[]);
    let (_, v) = api.post("/api/tasks", echo_task()).await;
    let id = v["id"].as_str().expect("id").to_owned();
    let (s, v, _) = api.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "cancelled");
    let (_, t) = api.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(t["state"], "cancelled");
    let (s, v, _) = api.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let mut delayed = echo_task();
    delayed["delay_ms"] = json!(60_000);
    let (_, v) = api.post("/api/tasks", delayed).await;
    let id = v["id"].as_str().expect("id").to_owned();
    let score = delayed_score(&api, &id).await;
    assert!(score.is_some(), "a delayed task waits in the delayed set");
    let (s, _, _) = api.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let score = delayed_score(&api, &id).await;
    assert_eq!(score, None);
    let len = stream_len(&api).await;
    // The queued task's id names its entry, which the cancel deleted at once; the delayed one
    // never had one.
    assert_eq!(len, 0, "no entry is left in the stream");
}

#[tokio::test]
async fn idempotency_key_returns_the_first_task() {
    let api = api_with(&[]);
    let mut t = echo_task();
    t["idempotency_key"] = json!("order-42");
    let (s1, v1) = api.post("/api/tasks", t.clone()).await;
    let (s2, v2) = api.post("/api/tasks", t).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(v1["id"], v2["id"]);
    assert_eq!(v2["duplicate"], true);
    let len = stream_len(&api).await;
    assert_eq!(len, 1, "the duplicate wrote nothing");
}

#[tokio::test]
async fn full_queue_is_a_429_with_retry_after() {
    let api = api_with(&[("MAX_QUEUE_DEPTH", "2")]);
    for _ in 0..2 {
        let (s, _) = api.post("/api/tasks", echo_task()).await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    let (s, v, h) = api
        .call(
            "POST",
            "/api/tasks",
            Some(SECRET),
            echo_task().to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(message(&v).contains("MAX_QUEUE_DEPTH"), "{v}");
    assert!(h.get(header::RETRY_AFTER).is_some());
}

#[tokio::test]
async fn unreachable_redis_is_a_503_within_the_timeout() {
    let port = switchyard_tests::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let api = api_with(&[("REDIS_URL", url.as_str()), ("REDIS_TIMEOUT_MS", "300")]);
    let began = std::time::Instant::now();
    let (s, v) = api.post("/api/tasks", echo_task()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "redis_unavailable");
    assert!(
        !message(&v).contains(&url),
        "no connection details leak: {v}"
    );
    assert!(
        began.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let (s, _) = api.get("/api/health/all").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

/// The score of task `id` in the `tool` queue's delayed set, if it is there.
async fn delayed_score(api: &Api, id: &str) -> Option<f64> {
    let mut con = connection(api.redis_url()).await;
    redis::cmd("ZSCORE")
        .arg(format!("{}{{tool}}:delayed", api.prefix()))
        .arg(id)
        .query_async(&mut con)
        .await
        .expect("zscore")
}

async fn stream_len(api: &Api) -> u64 {
    let mut con = connection(api.redis_url()).await;
    redis::cmd("XLEN")
        .arg(format!("{}{{tool}}:stream", api.prefix()))
        .query_async(&mut con)
        .await
        .expect("xlen")
}

#[tokio::test]
async fn batch_enqueues_every_task_in_order() {
    let api = api_with(&[]);
    let tasks: Vec<Value> = (0..25)
        .map(|i| json!({"kind": "tool", "payload": {"tool": "echo", "args": {"i": i}}}))
        .collect();
    let (s, v) = api
        .post("/api/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["accepted"], 25);
    let items = v["tasks"].as_array().expect("tasks");
    assert_eq!(items.len(), 25);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["state"], "queued", "{item}");
        let id = item["id"].as_str().expect("id");
        let (s, t) = api.get(&format!("/api/tasks/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            t["payload"]["args"]["i"], i,
            "answers follow the request's order"
        );
    }
    assert_eq!(stream_len(&api).await, 25);
}

#[tokio::test]
async fn batch_with_one_bad_task_is_rejected_whole_naming_it() {
    let api = api_with(&[]);
    let bad_tool = json!({"kind": "tool", "payload": {"tool": "nope", "args": {}}});
    let (s, v) = api
        .post(
            "/api/tasks/batch",
            json!({ "tasks": [echo_task(), echo_task(), bad_tool] }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(message(&v).starts_with("tasks[2]."), "{v}");
    let (s, v) = api
        .post(
            "/api/tasks/batch",
            json!({ "tasks": [echo_task(), {"kind": "tool"}] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("tasks[1]"), "{v}");
    assert!(message(&v).contains("payload"), "{v}");
    let (s, v) = api
        .post(
            "/api/tasks/batch",
            json!({ "tasks": [echo_task(), {"kind": "tool", "payload": {"tool": "echo", "args": {}}, "max_attempts": 0}] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).starts_with("tasks[1].max_attempts"), "{v}");
    assert_eq!(
        stream_len(&api).await,
        0,
        "nothing of a rejected batch is written"
    );

    let (s, v) = api.post("/api/tasks/batch", json!({ "tasks": [] })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("1 to 1000"), "{v}");
    let (s, v) = api.post("/api/tasks/batch", json!([echo_task()])).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a bare array is not a batch: {v}"
    );
}

#[tokio::test]
async fn batch_reports_a_full_queue_per_task() {
    let api = api_with(&[("MAX_QUEUE_DEPTH", "3")]);
    let (s, v) = api
        .post("/api/tasks/batch", json!({ "tasks": vec![echo_task(); 5] }))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["accepted"], 3);
    let items = v["tasks"].as_array().expect("tasks");
    assert!(items[..3].iter().all(|t| t["state"] == "queued"), "{v}");
    for t in &items[3..] {
        assert_eq!(t["error"]["code"], "queue_full", "{v}");
        assert!(t["id"].is_null(), "{v}");
    }
    assert_eq!(stream_len(&api).await, 3);
}

#[tokio::test]
async fn batch_survives_a_flushed_script_cache_without_writing_twice() {
    // Its own server: SCRIPT FLUSH would disturb the other tests of the shared one.
    let redis = switchyard_tests::RedisServer::start();
    let api = api_with(&[("REDIS_URL", redis.url())]);
    let mut con = connection(api.redis_url()).await;
    let (s, _) = api
        .post("/api/tasks/batch", json!({ "tasks": [echo_task()] }))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .expect("script flush");
    let (s, v) = api
        .post(
            "/api/tasks/batch",
            json!({ "tasks": vec![echo_task(); 10] }),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["accepted"], 10, "{v}");
    assert_eq!(stream_len(&api).await, 11, "each task queued exactly once");
}
