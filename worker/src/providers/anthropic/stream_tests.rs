//! Reading Anthropic answers into OpenAI's terms.

use serde_json::json;
use switchyard_shared::completion::ToolCall;

use super::*;
use crate::providers::sink::Piece;

async fn read(events: &[Value]) -> (Answer, Vec<Piece>) {
    let (sink, mut rx) = Sink::channel();
    let mut r = Reading::default();
    for e in events {
        let data = e.to_string();
        if r.event("message", &data, &sink).expect("a valid event") == Flow::Done {
            break;
        }
    }
    drop(sink);
    let mut pieces = Vec::new();
    while let Some(p) = rx.recv().await {
        pieces.push(p);
    }
    (r.into_answer(), pieces)
}

fn piece(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Piece {
    Piece::ToolCall(ToolCallDelta {
        index,
        id: id.map(str::to_owned),
        name: name.map(str::to_owned),
        arguments: args.to_owned(),
    })
}

#[tokio::test]
async fn tool_use_blocks_stream_as_tool_call_pieces_and_end_as_tool_calls() {
    let (answer, pieces) = read(&[
        json!({"type": "message_start", "message": {"model": "claude-x-1", "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 17}}),
        json!({"type": "message_stop"}),
    ])
    .await;
    assert_eq!(
        pieces,
        vec![
            Piece::Text("Checking.".into()),
            piece(0, Some("toolu_1"), Some("weather"), ""),
            piece(0, None, None, "{\"city\": "),
            piece(0, None, None, "\"Paris\"}"),
            piece(1, Some("toolu_2"), Some("now"), ""),
            piece(1, None, None, "{}"),
        ],
        "an empty partial_json is no piece; a call without arguments gets {{}}"
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.usage.prompt_tokens, 30);
    assert_eq!(answer.usage.completion_tokens, 17);
    let r = answer.into_response(NAME, "asked");
    assert_eq!(r.model, "claude-x-1");
    assert_eq!(r.text, "Checking.");
    assert_eq!(
        r.tool_calls,
        vec![
            ToolCall::function("toolu_1", "weather", "{\"city\": \"Paris\"}"),
            ToolCall::function("toolu_2", "now", "{}"),
        ]
    );
}

#[tokio::test]
async fn stop_reasons_become_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        let (answer, _) = read(&[
            json!({"type": "message_delta", "delta": {"stop_reason": stop}}),
            json!({"type": "message_stop"}),
        ])
        .await;
        assert_eq!(answer.finish_reason.as_deref(), Some(finish), "{stop}");
    }
}

#[tokio::test]
async fn a_whole_message_carries_text_tool_use_and_stop_reason() {
    let (sink, mut rx) = Sink::channel();
    let mut r = Reading::default();
    r.whole(
        json!({"model": "claude-x-1", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "On it."},
                {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "toolu_10", "name": "g", "input": {}}],
            "usage": {"input_tokens": 5, "output_tokens": 6}}),
        &sink,
    )
    .expect("a valid message");
    drop(sink);
    let mut pieces = Vec::new();
    while let Some(p) = rx.recv().await {
        pieces.push(p);
    }
    assert_eq!(pieces.len(), 4, "{pieces:?}");
    let r = r.into_answer().into_response(NAME, "m");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.text, "On it.");
    assert_eq!(
        r.tool_calls,
        vec![
            ToolCall::function("toolu_9", "f", "{\"a\":1}"),
            ToolCall::function("toolu_10", "g", "{}"),
        ]
    );
    assert_eq!(r.usage.completion_tokens, 6);
}

#[test]
fn error_events_are_retryable_only_for_the_providers_trouble() {
    let mut r = Reading::default();
    let e = r
        .event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
            &Sink::discard(),
        )
        .expect_err("an error");
    assert!(e.is_retryable(), "{e}");
    let e = r
        .event(
            "error",
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
            &Sink::discard(),
        )
        .expect_err("an error");
    assert!(!e.is_retryable(), "{e}");
}
