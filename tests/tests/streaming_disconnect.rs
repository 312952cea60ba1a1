//! Cancel on client disconnect through the real binaries (issue 17): with `RESUME_GRACE_MS=0`
//! the provider sees its connection closed within 1 s of the streaming client leaving and the
//! task ends `cancelled`; without a resume the grace runs out and cancels; `"detach": true` runs
//! on; a plain `/api/chat` client that leaves cancels at once; `POST /api/tasks?wait_ms=` runs
//! on unless the body says `"cancel_on_disconnect": true`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::provider_server::{ProviderServer, Reply, Wire};
use switchyard_tests::sse::SseStream;
use switchyard_tests::{
    Dispatcher, env_pairs, poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);

struct Stack {
    provider: ProviderServer,
    d: Dispatcher,
    _w: switchyard_tests::Worker,
}

/// A dispatcher with `dispatcher_env`, one worker on the `openai` provider, and a provider
/// that streams 200 tokens, one every 50 ms (10 s).
async fn stack(dispatcher_env: &[(&str, &str)]) -> Stack {
    let provider = ProviderServer::start(Reply::tokens(200).delay(Duration::from_millis(50))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, dispatcher_env).await;
    let env = provider.worker_env(Wire::OpenAi);
    let w = spawn_worker(redis.url(), &prefix, "w1", &env_pairs(&env)).await;
    Stack { provider, d, _w: w }
}

/// Opens a streamed chat and reads `start` and two deltas; answers the task id and the stream.
async fn streaming(d: &Dispatcher, body: Value) -> (String, SseStream) {
    let mut s = d.chat_stream(body).await;
    let start = s.expect("start", LONG).await;
    for k in 0..2 {
        let e = s.expect(&format!("delta {k}"), LONG).await;
        assert_eq!(e.event, "delta", "{e:?}");
    }
    let id = start.json()["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    (id, s)
}

async fn ends(d: &Dispatcher, id: &str, within: Duration) -> String {
    poll_until("the task to end", within, || async {
        let (_, t) = d.request("GET", &format!("/api/tasks/{id}"), None).await;
        let state = t["state"].as_str().unwrap_or_default().to_owned();
        ["succeeded", "failed", "dead", "cancelled"]
            .contains(&state.as_str())
            .then_some(state)
    })
    .await
}

async fn provider_closed(p: &ProviderServer, within: Duration) -> Instant {
    poll_until(
        "the provider to see its connection closed",
        within,
        || async { p.requests().first().and_then(|r| r.closed_early) },
    )
    .await
}

/// With `RESUME_GRACE_MS=grace`, opens a streamed chat, leaves after two deltas, and waits for
/// the provider to see its connection closed; the stack, the task id, and how long after the
/// client left the provider saw the close.
async fn stream_and_leave(grace: &str) -> (Stack, String, Duration) {
    let st = stack(&[("RESUME_GRACE_MS", grace)]).await;
    let (id, s) = streaming(&st.d, json!({"message": "hi", "stream": true})).await;
    drop(s);
    let left = Instant::now();
    let closed = provider_closed(&st.provider, Duration::from_secs(10)).await;
    (st, id, closed.saturating_duration_since(left))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grace_a_departed_stream_client_cancels_and_the_provider_sees_it_within_1s() {
    let (st, id, after) = stream_and_leave("0").await;
    assert!(
        after < Duration::from_secs(1),
        "the provider saw the close {after:?} after the client left"
    );
    assert_eq!(ends(&st.d, &id, LONG).await, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_without_resume_ends_in_cancel_and_not_before() {
    let (st, id, after) = stream_and_leave("1500").await;
    assert!(
        after >= Duration::from_millis(1400),
        "cancelled {after:?} after the client left, inside the grace"
    );
    assert_eq!(ends(&st.d, &id, LONG).await, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_stream_runs_on_after_its_client_left() {
    let st = stack(&[("RESUME_GRACE_MS", "0")]).await;
    let (id, s) = streaming(
        &st.d,
        json!({"message": "hi", "stream": true, "detach": true}),
    )
    .await;
    drop(s);
    assert_eq!(ends(&st.d, &id, LONG).await, "succeeded");
    assert!(st.provider.requests()[0].closed_early.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_chat_client_that_leaves_cancels_its_task() {
    let st = stack(&[]).await;
    let url = format!("{}/api/chat", st.d.base_url());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let sent = client
        .post(&url)
        .bearer_auth(st.d.secret())
        .json(&json!({"session_id": "leaver", "message": "hi"}))
        .timeout(Duration::from_millis(1500))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up before the answer");
    let left = Instant::now();
    let closed = provider_closed(&st.provider, Duration::from_secs(10)).await;
    assert!(closed.saturating_duration_since(left) < Duration::from_secs(1));
    poll_until("the chat task to end cancelled", LONG, || async {
        let (_, queues) = st.d.request("GET", "/api/queues", None).await;
        let chat = queues["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["queue"] == "chat"))
            .cloned()
            .unwrap_or(Value::Null);
        (chat["counts"]["cancelled"] == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_ms_clients_leave_tasks_running_unless_they_ask_for_cancel() {
    let st = stack(&[]).await;
    let url = format!("{}/api/tasks?wait_ms=60000", st.d.base_url());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut ids = vec![];
    for cancel in [false, true] {
        let body = json!({"kind": "tool", "idempotency_key": format!("k{cancel}"),
            "payload": {"tool": "sleep", "args": {"ms": 1500}}, "cancel_on_disconnect": cancel});
        let sent = client
            .post(&url)
            .bearer_auth(st.d.secret())
            .json(&body)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(sent.is_err(), "the client gave up before the answer");
        // The idempotency key finds the task the departed request made.
        let (_, v) = st.d.request("POST", "/api/tasks", Some(body)).await;
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ends(&st.d, &ids[1], LONG).await, "cancelled");
    assert_eq!(ends(&st.d, &ids[0], LONG).await, "succeeded");
}
