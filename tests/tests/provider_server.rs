//! The local provider server itself: it streams real SSE frames over TCP one token at a time,
//! answers whole JSON when not asked to stream, and notices a client that leaves early.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::{ProviderServer, Reply, poll_until, sse};

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

/// The scripted answer of the tool-call tests: a sentence, then two calls.
fn tool_reply() -> Reply {
    Reply::text("Let me check.")
        .tool_call("call_1", "get_weather", r#"{"city":"Paris","unit":"c"}"#)
        .tool_call("call_2", "get_time", r#"{"tz":"CET"}"#)
}

#[tokio::test]
async fn openai_tool_calls_stream_in_pieces_and_end_with_tool_calls() {
    let server = ProviderServer::start(tool_reply()).await;
    let body = json!({"model": "m", "stream": true, "messages": [], "tools": [{"type": "function"}],
        "some_future_field": 7});
    let sse = post(
        &format!("{}/v1/chat/completions", server.url()),
        body.clone(),
    )
    .await
    .text()
    .await
    .expect("body");
    let chunks: Vec<Value> = sse::parse(&sse)
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(sse::SseEvent::json)
        .collect();
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut argument_chunks = 0;
    for c in &chunks {
        let delta = &c["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or(""));
        for tc in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = usize::try_from(tc["index"].as_u64().expect("index")).expect("small");
            if let Some(id) = tc["id"].as_str() {
                assert_eq!(i, calls.len(), "calls start in order");
                let name = tc["function"]["name"].as_str().expect("a name with the id");
                calls.push((id.to_owned(), name.to_owned(), String::new()));
            }
            let args = tc["function"]["arguments"].as_str().expect("arguments");
            if !args.is_empty() {
                argument_chunks += 1;
            }
            calls[i].2.push_str(args);
        }
    }
    assert_eq!(text, "Let me check.");
    assert_eq!(
        calls,
        vec![
            (
                "call_1".into(),
                "get_weather".into(),
                r#"{"city":"Paris","unit":"c"}"#.into()
            ),
            ("call_2".into(), "get_time".into(), r#"{"tz":"CET"}"#.into()),
        ]
    );
    assert!(
        argument_chunks > 2,
        "arguments came in pieces: {argument_chunks}"
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
    assert_eq!(
        server.bodies(),
        vec![body],
        "the body is recorded as received"
    );
}

#[tokio::test]
async fn anthropic_tool_use_blocks_stream_input_json_deltas() {
    let server = ProviderServer::start(tool_reply()).await;
    let sse = post(
        &format!("{}/v1/messages", server.url()),
        json!({"model": "c", "stream": true, "messages": []}),
    )
    .await
    .text()
    .await
    .expect("body");
    let events = sse::parse(&sse);
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut stop_reason = Value::Null;
    for e in &events {
        let v = e.json();
        assert_eq!(v["type"].as_str(), Some(e.event.as_str()), "{}", e.data);
        let index = v["index"]
            .as_u64()
            .map(|i| usize::try_from(i).expect("small"));
        match e.event.as_str() {
            "content_block_start" => {
                assert_eq!(index, Some(blocks.len()));
                blocks.push(v["content_block"].clone());
                open.push(blocks.len() - 1);
            }
            "content_block_delta" => {
                let b = &mut blocks[index.expect("index")];
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let t = format!(
                            "{}{}",
                            b["text"].as_str().unwrap_or(""),
                            d["text"].as_str().unwrap_or("")
                        );
                        b["text"] = json!(t);
                    }
                    Some("input_json_delta") => {
                        let t = format!(
                            "{}{}",
                            b["partial"].as_str().unwrap_or(""),
                            d["partial_json"].as_str().unwrap_or("")
                        );
                        b["partial"] = json!(t);
                    }
                    other => panic!("unknown delta {other:?}"),
                }
            }
            "content_block_stop" => assert_eq!(open.pop(), index, "the open block closes"),
            "message_delta" => stop_reason = v["delta"]["stop_reason"].clone(),
            _ => {}
        }
    }
    assert!(open.is_empty(), "every block closed: {sse}");
    assert_eq!(stop_reason, "tool_use");
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0]["text"], "Let me check.");
    assert_eq!(blocks[1]["type"], "tool_use");
    assert_eq!(blocks[1]["id"], "call_1");
    assert_eq!(blocks[1]["name"], "get_weather");
    assert_eq!(blocks[1]["partial"], r#"{"city":"Paris","unit":"c"}"#);
    assert_eq!(blocks[2]["name"], "get_time");
    assert_eq!(blocks[2]["partial"], r#"{"tz":"CET"}"#);
}

#[tokio::test]
async fn whole_answers_carry_tool_calls_in_both_formats() {
    let server =
        ProviderServer::start(Reply::tokens(0).tool_call("call_9", "f", r#"{"a":1}"#)).await;
    let openai: Value = post(
        &format!("{}/v1/chat/completions", server.url()),
        json!({"model": "m", "messages": []}),
    )
    .await
    .json()
    .await
    .expect("JSON");
    let choice = &openai["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}])
    );
    let anthropic: Value = post(
        &format!("{}/v1/messages", server.url()),
        json!({"model": "c", "messages": []}),
    )
    .await
    .json()
    .await
    .expect("JSON");
    assert_eq!(anthropic["stop_reason"], "tool_use");
    assert_eq!(
        anthropic["content"],
        json!([{"type": "tool_use", "id": "call_9", "name": "f", "input": {"a": 1}}])
    );
}

#[tokio::test]
async fn a_scripted_finish_reason_is_sent_as_is() {
    let server = ProviderServer::start(Reply::text("cut").finish("max_tokens")).await;
    let sse = post(
        &format!("{}/v1/messages", server.url()),
        json!({"model": "c", "stream": true, "messages": []}),
    )
    .await
    .text()
    .await
    .expect("body");
    assert!(sse.contains(r#""stop_reason":"max_tokens""#), "{sse}");
}
