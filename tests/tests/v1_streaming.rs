//! `/v1` requests and their tasks through the real binaries (issue 18): a client that leaves
//! cancels its task and the provider call at once (streamed or waited), unless the body says
//! `"detach": true`; a worker SIGKILLed mid-answer is survived in the same SSE response when no
//! content was sent yet, and ends the stream with OpenAI's streaming error (and cancels the
//! task) when content was; a provider's refusal answers 400 with its message, and attempts
//! exhausted on provider errors end in a 502-class error.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::provider_server::{ProviderServer, Reply};
use switchyard_tests::sse::{self, SseEvent, SseStream};
use switchyard_tests::{
    Dispatcher, Worker, poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);

struct Stack {
    provider: ProviderServer,
    d: Dispatcher,
    workers: Vec<Worker>,
}

/// A dispatcher and `n` workers on the `openai` provider, which answers `default` unless a
/// reply was pushed.
async fn stack(n: usize, default: Reply) -> Stack {
    let provider = ProviderServer::start(default).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let base = format!("{}/v1", provider.url());
    let mut workers = vec![];
    for i in 0..n {
        let id = format!("w{i}");
        let env = [
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", base.as_str()),
            ("OPENAI_API_KEY", "sk-test"),
            ("LLM_MODEL", "model-e2e"),
        ];
        workers.push(spawn_worker(redis.url(), &prefix, &id, &env).await);
    }
    Stack {
        provider,
        d,
        workers,
    }
}

fn body(stream: bool, detach: bool) -> Value {
    json!({"model": "model-e2e", "messages": [{"role": "user", "content": "hi"}],
        "stream": stream, "detach": detach})
}

/// Opens a streamed completion; answers the stream and the task id (from the role chunk).
async fn open(d: &Dispatcher, body: &Value) -> (SseStream, String) {
    let url = format!("{}/v1/chat/completions", d.base_url());
    let mut s = sse::open("POST", &url, d.secret(), Some(body), None)
        .await
        .unwrap_or_else(|(status, v)| panic!("stream refused: {status} {v}"));
    let role = s.expect("the role chunk", LONG).await.json();
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant", "{role}");
    let id = role["id"]
        .as_str()
        .and_then(|i| i.strip_prefix("chatcmpl-"))
        .expect("chatcmpl-<task id>")
        .to_owned();
    (s, id)
}

fn content(e: &SseEvent) -> Option<String> {
    e.json()["choices"][0]["delta"]["content"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

/// Reads until `n` chunks with content arrived.
async fn read_content(s: &mut SseStream, n: usize) {
    let mut got = 0;
    while got < n {
        let e = s.expect("content", LONG).await;
        got += usize::from(content(&e).is_some());
    }
}

async fn task(d: &Dispatcher, id: &str) -> Value {
    d.request("GET", &format!("/api/tasks/{id}"), None).await.1
}

async fn ends(d: &Dispatcher, id: &str) -> Value {
    poll_until("the task to end", LONG, || async {
        let t = task(d, id).await;
        ["succeeded", "failed", "dead", "cancelled"]
            .contains(&t["state"].as_str().unwrap_or_default())
            .then_some(t)
    })
    .await
}

async fn provider_closed(p: &ProviderServer, request: usize) -> Instant {
    poll_until(
        "the provider to see its connection closed",
        LONG,
        || async { p.requests().get(request).and_then(|r| r.closed_early) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_client_that_leaves_cancels_the_task_and_the_provider_call() {
    let st = stack(1, Reply::tokens(200).delay(Duration::from_millis(50))).await;
    let (mut s, id) = open(&st.d, &body(true, false)).await;
    read_content(&mut s, 2).await;
    drop(s);
    let left = Instant::now();
    let closed = provider_closed(&st.provider, 0).await;
    let after = closed.saturating_duration_since(left);
    assert!(
        after < Duration::from_secs(1),
        "provider closed {after:?} after the client left"
    );
    assert_eq!(ends(&st.d, &id).await["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_that_leaves_cancels_the_task_and_the_provider_call() {
    let st = stack(1, Reply::tokens(200).delay(Duration::from_millis(50))).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let sent = client
        .post(format!("{}/v1/chat/completions", st.d.base_url()))
        .bearer_auth(st.d.secret())
        .json(&body(false, false))
        .timeout(Duration::from_millis(1500))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up before the answer");
    let left = Instant::now();
    let closed = provider_closed(&st.provider, 0).await;
    let after = closed.saturating_duration_since(left);
    assert!(
        after < Duration::from_secs(1),
        "provider closed {after:?} after the client left"
    );
    poll_until("the task to end cancelled", LONG, || async {
        let (_, q) = st.d.request("GET", "/api/queues", None).await;
        let chat = q["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["queue"] == "chat"))
            .cloned()
            .unwrap_or(Value::Null);
        (chat["counts"]["cancelled"] == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_request_runs_on_after_its_client_left() {
    let st = stack(1, Reply::tokens(20).delay(Duration::from_millis(50))).await;
    let (mut s, id) = open(&st.d, &body(true, true)).await;
    read_content(&mut s, 1).await;
    drop(s);
    let t = ends(&st.d, &id).await;
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["result"]["response"], Reply::tokens(20).answer());
    assert!(st.provider.requests()[0].closed_early.is_none());
}

/// Kills the worker running task `id` (after the provider got its request).
async fn kill_its_worker(st: &Stack, id: &str) {
    let t = poll_until("the task to run", LONG, || async {
        let t = task(&st.d, id).await;
        (t["state"] == "running" && !st.provider.requests().is_empty()).then_some(t)
    })
    .await;
    let worker = st
        .workers
        .iter()
        .find(|w| t["worker"] == w.id())
        .unwrap_or_else(|| panic!("no worker of ours runs it: {t}"));
    worker.proc.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_before_any_content_leaves_the_stream_going() {
    let st = stack(2, Reply::text("the second attempt answers")).await;
    // The first attempt's provider waits long before its first token.
    st.provider
        .push(Reply::tokens(3).delay(Duration::from_secs(20)));
    let (mut s, id) = open(&st.d, &body(true, false)).await;
    kill_its_worker(&st, &id).await;
    let rest = s.rest(LONG).await;
    let text: String = rest.iter().filter_map(content).collect();
    assert_eq!(text, "the second attempt answers", "{rest:?}");
    assert!(
        rest.iter().all(|e| e.json().get("error").is_none()),
        "{rest:?}"
    );
    let finish = &rest[rest.len() - 2].json()["choices"][0]["finish_reason"];
    assert_eq!(finish, "stop", "{rest:?}");
    assert_eq!(rest.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let t = ends(&st.d, &id).await;
    assert_eq!(
        (&t["state"], &t["attempts"]),
        (&json!("succeeded"), &json!(2)),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_content_ends_the_stream_with_an_error_and_cancels() {
    let st = stack(2, Reply::tokens(100).delay(Duration::from_millis(100))).await;
    let (mut s, id) = open(&st.d, &body(true, false)).await;
    read_content(&mut s, 2).await;
    kill_its_worker(&st, &id).await;
    let rest = s.rest(LONG).await;
    let last = rest.last().expect("an event after the kill").json();
    assert_eq!(last["error"]["code"], "provider_error", "{rest:?}");
    let message = last["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("attempt 2"),
        "not the restart's error: {message}"
    );
    assert!(rest.iter().all(|e| e.data != "[DONE]"), "{rest:?}");
    assert_eq!(ends(&st.d, &id).await["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusal_is_400_and_exhausted_attempts_are_502() {
    let provider = ProviderServer::start(Reply::status(
        503,
        json!({"error": {"message": "overloaded"}}),
    ))
    .await;
    provider.push(Reply::status(
        400,
        json!({"error": {"message": "no such model here"}}),
    ));
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let base = format!("{}/v1", provider.url());
    let _w = spawn_worker(
        redis.url(),
        &prefix,
        "w0",
        &[
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-test"),
            ("LLM_MODEL", "model-e2e"),
            ("LLM_MAX_RETRIES", "0"),
            ("RETRY_BASE_MS", "10"),
            ("RETRY_MAX_MS", "20"),
        ],
    )
    .await;
    let r = d
        .raw_request(
            "POST",
            "/v1/chat/completions",
            Some(d.secret()),
            &[],
            Some(body(false, false).to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "provider_refused", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such model here")),
        "{e}"
    );
    assert_eq!(r.header("x-should-retry").as_deref(), Some("false"));

    // Streamed: every attempt meets a 503, the task goes dead, the stream ends with a 502-class
    // error chunk.
    let (mut s, id) = open(&d, &body(true, false)).await;
    let rest = s.rest(LONG).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    let e = rest[0].json();
    assert_eq!(e["error"]["code"], "provider_error", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("3 attempt")),
        "{e}"
    );
    assert_eq!(task(&d, &id).await["state"], "dead");
}
