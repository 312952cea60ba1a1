//! Streaming through `Router::oneshot` against a real Redis, with output entries written by the
//! one writer (`shared::output::append`) as a worker would: bad input answered as JSON before
//! any SSE byte, the events and ids of a task's output, resuming exactly after any event, and
//! live delivery until the task ends. The fan-out duty's own tests are in `streams_duty.rs`.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Api, SECRET, api, code, delta, message};
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_dispatcher::waiter::EventTail;
use switchyard_shared::output::{AttemptEnd, Entry};
use switchyard_tests::connection;
use switchyard_tests::sse::{SseEvent, parse};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// An authorised request with an optional JSON body and `Last-Event-ID`.
fn request(method: &str, path: &str, body: Option<Value>, last_id: Option<&str>) -> Request<Body> {
    let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
    let mut req = common::request(method, path, Some(SECRET), body);
    if let Some(id) = last_id {
        let value = id.parse().expect("a header value");
        req.headers_mut().insert("last-event-id", value);
    }
    req
}

impl Api {
    async fn json(&self, req: Request<Body>) -> (StatusCode, Value) {
        let a = self.oneshot(req).await;
        assert!(
            a.content_type().starts_with("application/json"),
            "{} {}: {}",
            a.status,
            a.content_type(),
            a.text()
        );
        (a.status, a.json())
    }

    /// Enqueues a chat task through `POST /api/tasks`; answers its id.
    async fn chat_task(&self) -> String {
        let body = json!({"kind": "chat", "payload": {"session_id": "s1", "message": "hi"}});
        let (s, v) = self
            .json(request("POST", "/api/tasks", Some(body), None))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn write(&self, id: &str, entries: &[Entry]) {
        self.append(&self.state.keys.output("chat", id), entries)
            .await;
    }

    /// Marks the task succeeded as a worker's completion would leave its record.
    async fn succeed(&self, id: &str, response: &str) {
        let mut con = connection(self.redis_url()).await;
        let result = json!({"response": response, "model": "m", "provider": "p",
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}});
        // The finished record is written whole, as complete.lua writes it: the queued record
        // (from the entry) and the outcome.
        let queued = switchyard_shared::store::load_task(&mut con, &self.state.keys, "chat", id)
            .await
            .expect("lookup")
            .expect("the task exists");
        let _: () = redis::cmd("HSET")
            .arg(self.state.keys.task("chat", id))
            .arg("id")
            .arg(id)
            .arg("kind")
            .arg("chat")
            .arg("queue")
            .arg("chat")
            .arg("payload")
            .arg(queued.payload.to_string())
            .arg("attempts")
            .arg(1)
            .arg("max_attempts")
            .arg(queued.max_attempts)
            .arg("timeout_ms")
            .arg(queued.timeout_ms)
            .arg("created_at")
            .arg(&queued.created_at)
            .arg("state")
            .arg("succeeded")
            .arg("result")
            .arg(result.to_string())
            .arg("worker")
            .arg("w1")
            .arg("finished_at")
            .arg(switchyard_shared::clock::now_rfc3339())
            .query_async(&mut con)
            .await
            .expect("hset");
    }

    async fn stream(&self, id: &str, last: Option<&str>) -> Vec<SseEvent> {
        let path = format!("/api/tasks/{id}/stream");
        let a = self.oneshot(request("GET", &path, None, last)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert!(
            a.content_type().starts_with("text/event-stream"),
            "{}",
            a.content_type()
        );
        parse(&a.text())
    }
}

#[tokio::test]
async fn stream_and_detach_must_be_booleans_and_the_400_names_them() {
    let api = api();
    for (field, value) in [("stream", json!("yes")), ("detach", json!(1))] {
        let mut body = json!({"message": "hi"});
        body[field] = value;
        let (s, v) = api
            .json(request("POST", "/api/chat", Some(body), None))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(message(&v).contains(field), "{v}");
    }
    let batch = json!({"tasks": [{"kind": "tool", "payload": {"tool": "echo"}, "cancel_on_disconnect": true}]});
    let (s, v) = api
        .json(request("POST", "/api/tasks/batch", Some(batch), None))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("tasks[0].cancel_on_disconnect"), "{v}");
}

#[tokio::test]
async fn unknown_malformed_and_foreign_tasks_are_refused_as_json_before_any_sse() {
    let api = api();
    let (s, v) = api
        .json(request(
            "GET",
            "/api/tasks/chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y5/stream",
            None,
            None,
        ))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (s, _) = api
        .json(request("GET", "/api/tasks/nonsense/stream", None, None))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .json(request(
            "GET",
            "/api/tasks/web-01JDX3N4Z7Q8R9S0T1V2W3X4Y5/stream",
            None,
            None,
        ))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_queue"),
        "{v}"
    );
}

#[tokio::test]
async fn a_last_event_id_that_is_not_an_event_of_the_task_is_a_400() {
    let api = api();
    let id = api.chat_task().await;
    api.write(&id, &[delta(1, "a")]).await;
    let path = format!("/api/tasks/{id}/stream");
    // Malformed; well-formed but no entry; an entry's id with a step it has no event for; the
    // terminal step of a task that has not ended.
    for bad in ["garbage", "1-0-1", "1-0-3", "0-0-1", "0-0-2"] {
        let (s, v) = api.json(request("GET", &path, None, Some(bad))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(message(&v).contains("Last-Event-ID"), "{v}");
    }
}

#[tokio::test]
async fn a_finished_task_streams_its_output_and_resumes_exactly_after_any_event() {
    let api = api();
    let id = api.chat_task().await;
    api.write(&id, &[delta(1, "Hel"), delta(1, "lo")]).await;
    api.write(
        &id,
        &[Entry::End {
            attempt: 1,
            end: AttemptEnd::Failed,
        }],
    )
    .await;
    api.write(
        &id,
        &[
            delta(2, "Hi"),
            delta(2, " there"),
            Entry::End {
                attempt: 2,
                end: AttemptEnd::Finished,
            },
        ],
    )
    .await;
    api.succeed(&id, "Hi there").await;

    let all = api.stream(&id, None).await;
    let names: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "start", "delta", "delta", "restart", "delta", "delta", "done"
        ]
    );
    assert_eq!(all[0].id.as_deref(), Some("0-0-0"));
    assert_eq!(all[0].json()["task_id"], id.as_str());
    assert_eq!(all[3].json(), json!({"attempt": 2}));
    let after_restart: String = all[4..6]
        .iter()
        .map(|e| e.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    let done = all[6].json();
    assert_eq!(after_restart, done["response"].as_str().unwrap_or_default());
    assert_eq!(done["usage"]["completion_tokens"], 4);
    assert_eq!(done["task_id"], id.as_str());
    let ids: Vec<&str> = all
        .iter()
        .map(|e| e.id.as_deref().unwrap_or_default())
        .collect();
    for (k, last) in ids.iter().enumerate() {
        let rest = api.stream(&id, Some(last)).await;
        assert_eq!(rest, all[k + 1..], "resumed after event {k} ({last})");
    }
}

#[tokio::test]
async fn a_live_stream_gets_output_written_after_it_opened_and_ends_with_the_task() {
    let api = api();
    let stop = CancellationToken::new();
    let tail = api.output_tail(&api.state.streams);
    tokio::spawn(tail.run(stop.clone()));
    let events = EventTail::new(
        api.state.waiter.clone(),
        api.state.recent.clone(),
        api.settings.redis.clone(),
        &api.state.keys,
        &api.state.cfg.queues,
    );
    tokio::spawn(events.run(stop.clone()));
    let id = api.chat_task().await;
    let resp = api
        .router
        .clone()
        .oneshot(request(
            "GET",
            &format!("/api/tasks/{id}/stream"),
            None,
            None,
        ))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    let mut text = String::new();
    let mut next_events = async |want: usize, text: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let evs = parse(text);
            if evs.len() >= want {
                return evs;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, body.next())
                .await
                .expect("an event within 10 s")
                .expect("body open")
                .expect("chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    assert_eq!(next_events(1, &mut text).await[0].event, "start");
    api.write(&id, &[delta(1, "one ")]).await;
    let evs = next_events(2, &mut text).await;
    assert_eq!(
        (evs[1].event.as_str(), evs[1].json()["text"].clone()),
        ("delta", json!("one "))
    );
    api.write(&id, &[delta(1, "two")]).await;
    assert_eq!(next_events(3, &mut text).await[2].json()["text"], "two");
    assert_eq!(api.state.streams.clients(), 1);
    let (s, _) = api
        .json(request("DELETE", &format!("/api/tasks/{id}"), None, None))
        .await;
    assert_eq!(s, StatusCode::OK);
    let evs = next_events(4, &mut text).await;
    assert_eq!(evs[3].event, "error");
    assert!(
        evs[3].json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cancelled"),
        "{:?}",
        evs[3]
    );
    assert!(
        body.next().await.is_none(),
        "the stream ends after the terminal event"
    );
    assert_eq!(
        api.state.streams.clients(),
        0,
        "the client left the fan-out"
    );
    stop.cancel();
}
