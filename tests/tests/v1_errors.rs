//! The `/v1` front door's refusals and failures through the real dispatcher (issue 18): OpenAI's
//! error shape `{"error": {message, type, param, code}}` with OpenAI's statuses, checked before
//! anything is queued: 401 `invalid_api_key` before any 404/405 under `/v1`, 400 naming the
//! parameter, 413, 404 `model_not_found` when `MODEL_ROUTES` has no queue for the model (and 404
//! in `/api`'s own shape for `/api/chat`), 429 with `Retry-After` on a full queue, 503 while Redis
//! is away, and 504 (waited or streamed) when no worker answers in time, which cancels the task.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::sse;
use switchyard_tests::{
    Dispatcher, RedisServer, poll_until, shared_redis, spawn_dispatcher, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn post_v1(d: &Dispatcher, token: Option<&str>, body: &[u8]) -> switchyard_tests::Response {
    d.raw_request(
        "POST",
        "/v1/chat/completions",
        token,
        &[("content-type", "application/json")],
        Some(body.to_vec()),
    )
    .await
}

/// Asserts OpenAI's error shape with `status`, `type` and `code`; answers the error object.
fn openai_error(r: &switchyard_tests::Response, status: u16, kind: &str, code: Value) -> Value {
    let v = r.json();
    assert_eq!(r.status, status, "{}", r.text());
    let e = &v["error"];
    for f in ["message", "type", "param", "code"] {
        assert!(e.get(f).is_some(), "no {f} in {v}");
    }
    assert_eq!(e["type"], kind, "{v}");
    assert_eq!(e["code"], code, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    e.clone()
}

async fn chat_depth(d: &Dispatcher, queue: &str) -> u64 {
    let (_, v) = d.request("GET", "/api/queues", None).await;
    v["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == queue))
        .and_then(|q| q["depth"].as_u64())
        .unwrap_or_else(|| panic!("no queue {queue} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_openai_shapes_and_queue_nothing() {
    let redis = shared_redis();
    let d = spawn_dispatcher(
        redis.url(),
        &unique_prefix(),
        &[("MODEL_ROUTES", "gpt-*=chat"), ("MAX_BODY_BYTES", "4096")],
    )
    .await;
    let good = serde_json::to_vec(&hi("gpt-4o")).expect("json");
    let secret = d.secret().to_owned();

    // 401 before anything else under /v1, unknown paths and methods included.
    for (method, path, token) in [
        ("POST", "/v1/chat/completions", None),
        ("POST", "/v1/chat/completions", Some("wrong")),
        ("GET", "/v1/models", None),
        ("GET", "/v1/no-such-route", None),
        ("DELETE", "/v1/chat/completions", None),
    ] {
        let r = d.raw_request(method, path, token, &[], None).await;
        openai_error(&r, 401, "invalid_request_error", json!("invalid_api_key"));
    }
    let r = d
        .raw_request("GET", "/v1/no-such-route", Some(&secret), &[], None)
        .await;
    openai_error(&r, 404, "invalid_request_error", json!("unknown_url"));
    let r = d
        .raw_request("GET", "/v1/chat/completions", Some(&secret), &[], None)
        .await;
    openai_error(
        &r,
        405,
        "invalid_request_error",
        json!("method_not_allowed"),
    );

    // 400 naming the parameter.
    let user = json!([{"role": "user", "content": "hi"}]);
    for (body, param) in [
        (
            json!({"model": "gpt-4o", "messages": user, "n": 2}),
            json!("n"),
        ),
        (json!({"messages": user}), json!("model")),
        (
            json!({"model": "gpt-4o", "messages": []}),
            json!("messages"),
        ),
        (
            json!({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}),
            json!("messages[0].role"),
        ),
        (
            json!({"model": "gpt-4o", "messages": user, "stream": "yes"}),
            json!("stream"),
        ),
        (
            json!({"model": "gpt-4o", "messages": user, "stream_options": {"include_usage": true}}),
            json!("stream_options"),
        ),
        (json!([1, 2]), Value::Null),
    ] {
        let bytes = serde_json::to_vec(&body).expect("json");
        let e = openai_error(
            &post_v1(&d, Some(&secret), &bytes).await,
            400,
            "invalid_request_error",
            Value::Null,
        );
        assert_eq!(e["param"], param, "{body}: {e}");
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(b" {}");
    let e = openai_error(
        &post_v1(&d, Some(&secret), &trailing).await,
        400,
        "invalid_request_error",
        Value::Null,
    );
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("trailing")),
        "{e}"
    );
    let big = serde_json::to_vec(
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(5000)}]}),
    )
    .expect("json");
    openai_error(
        &post_v1(&d, Some(&secret), &big).await,
        413,
        "invalid_request_error",
        json!("request_too_large"),
    );

    // 404 for a model no route serves; /api/chat keeps its own shape.
    let unrouted = serde_json::to_vec(&hi("llama3")).expect("json");
    let e = openai_error(
        &post_v1(&d, Some(&secret), &unrouted).await,
        404,
        "invalid_request_error",
        json!("model_not_found"),
    );
    assert_eq!(e["param"], "model");
    let (status, v) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"message": "hi", "model": "llama3"})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert!(v["error"].get("type").is_none(), "{v}");

    assert_eq!(
        chat_depth(&d, "chat").await,
        0,
        "a refused request queued a task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    let redis = shared_redis();
    let d = spawn_dispatcher(redis.url(), &unique_prefix(), &[("MAX_QUEUE_DEPTH", "1")]).await;
    let (status, v) = d
        .request(
            "POST",
            "/api/tasks",
            // `/v1` tasks wait in the `high` lane, and the depth limit is per lane.
            Some(json!({"kind": "chat", "priority": "high", "payload": {"message": "fill"}})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let body = serde_json::to_vec(&hi("m")).expect("json");
    let r = post_v1(&d, Some(d.secret()), &body).await;
    openai_error(&r, 429, "requests", json!("rate_limit_exceeded"));
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_answers_503() {
    let mut redis = RedisServer::start();
    let d = spawn_dispatcher(
        redis.url(),
        &unique_prefix(),
        &[("REDIS_TIMEOUT_MS", "500")],
    )
    .await;
    tokio::task::block_in_place(|| redis.stop());
    let body = serde_json::to_vec(&hi("m")).expect("json");
    let r = post_v1(&d, Some(d.secret()), &body).await;
    openai_error(&r, 503, "server_error", json!("service_unavailable"));
    let r = d
        .raw_request("GET", "/v1/models", Some(d.secret()), &[], None)
        .await;
    openai_error(&r, 503, "server_error", json!("service_unavailable"));
}

async fn task_state(d: &Dispatcher, id: &str) -> String {
    let (_, t) = d.request("GET", &format!("/api/tasks/{id}"), None).await;
    t["state"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_in_time_answers_504_waited_or_streamed_and_cancels_the_task() {
    let redis = shared_redis();
    let d = spawn_dispatcher(
        redis.url(),
        &unique_prefix(),
        &[("WORKER_TIMEOUT_MS", "1000")],
    )
    .await;
    let body = serde_json::to_vec(&hi("m")).expect("json");
    let r = post_v1(&d, Some(d.secret()), &body).await;
    openai_error(&r, 504, "server_error", json!("timeout"));
    let id = r.header("x-request-id").expect("x-request-id on a 504");
    poll_until("the timed-out task to be cancelled", LONG, || async {
        (task_state(&d, &id).await == "cancelled").then_some(())
    })
    .await;

    let url = format!("{}/v1/chat/completions", d.base_url());
    let mut streamed = hi("m");
    streamed["stream"] = json!(true);
    let mut s = sse::open("POST", &url, d.secret(), Some(&streamed), None)
        .await
        .unwrap_or_else(|(status, v)| panic!("stream refused: {status} {v}"));
    let role = s.expect("the role chunk", LONG).await.json();
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant", "{role}");
    let id = role["id"]
        .as_str()
        .and_then(|i| i.strip_prefix("chatcmpl-"))
        .expect("chatcmpl-<task id>")
        .to_owned();
    let rest = s.rest(LONG).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    let e = rest[0].json();
    assert_eq!(e["error"]["code"], "timeout", "{e}");
    poll_until(
        "the timed-out streamed task to be cancelled",
        LONG,
        || async { (task_state(&d, &id).await == "cancelled").then_some(()) },
    )
    .await;
}
