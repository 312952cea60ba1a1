//! The local provider server itself: it streams real SSE frames over TCP one token at a time,
//! answers whole JSON when not asked to stream, and notices a client that leaves early.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::{ProviderServer, Reply, poll_until};

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the provider server answers")
}

#[tokio::test]
async fn streamed_tokens_arrive_one_frame_at_a_time_and_end_with_done() {
    let server = ProviderServer::start(Reply::tokens(5).delay(Duration::from_millis(30))).await;
    let mut resp = post(
        &format!("{}/v1/chat/completions", server.url()),
        json!({"model": "m", "stream": true, "messages": []}),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut first_at = None;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        let chunk = String::from_utf8_lossy(&chunk).into_owned();
        if chunk.contains("\"content\":\"w0\"") {
            first_at = Some(Instant::now());
        }
        text.push_str(&chunk);
    }
    let served = &server.requests()[0];
    let finished = served.finished.expect("finished");
    assert!(
        first_at.expect("first token seen") < finished,
        "the first token came before the answer was complete"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(served.tokens, 5);
    assert_eq!(served.body["model"], "m");
    assert!(served.closed_early.is_none());
}

#[tokio::test]
async fn whole_answers_and_anthropic_events_follow_their_formats() {
    let server = ProviderServer::start(Reply::text("hi there")).await;
    let whole: Value = post(
        &format!("{}/v1/messages", server.url()),
        json!({"model": "c", "messages": []}),
    )
    .await
    .json()
    .await
    .expect("JSON");
    assert_eq!(whole["content"][0]["text"], "hi there");
    assert_eq!(whole["usage"]["output_tokens"], 2);
    let sse = post(
        &format!("{}/v1/messages", server.url()),
        json!({"model": "c", "stream": true, "messages": []}),
    )
    .await
    .text()
    .await
    .expect("body");
    for name in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(sse.contains(&format!("event: {name}\n")), "{sse}");
    }
    assert_eq!(server.tokens_served(), 4);
}

#[tokio::test]
async fn a_client_that_leaves_mid_answer_is_recorded_as_an_early_close() {
    let server = ProviderServer::start(Reply::tokens(200).delay(Duration::from_millis(10))).await;
    let mut resp = post(
        &format!("{}/v1/chat/completions", server.url()),
        json!({"model": "m", "stream": true, "messages": []}),
    )
    .await;
    resp.chunk().await.expect("first chunk");
    let left = Instant::now();
    drop(resp);
    let closed = poll_until("the early close", Duration::from_secs(5), || async {
        server.requests()[0].closed_early
    })
    .await;
    assert!(closed.duration_since(left) < Duration::from_secs(1));
    assert!(server.requests()[0].tokens < 200);
}

#[tokio::test]
async fn a_scripted_drop_cuts_the_body_short() {
    let server = ProviderServer::start(Reply::tokens(10).drop_after(3)).await;
    let resp = post(
        &format!("{}/v1/chat/completions", server.url()),
        json!({"model": "m", "stream": true, "messages": []}),
    )
    .await;
    assert!(resp.text().await.is_err(), "an incomplete body is an error");
    let served = &server.requests()[0];
    assert_eq!(served.tokens, 3);
    assert!(
        served.closed_early.is_none(),
        "the drop was the server's own"
    );
}
