//! The translation of `/v1` bodies into messages API bodies.

use super::*;

fn body(v: Value) -> CompletionBody {
    v.as_object().cloned().expect("an object")
}

fn translate(v: Value) -> Value {
    completion_body("claude-x", &body(v), 4096).expect("translatable")
}

#[test]
fn a_tool_round_trip_conversation_is_translated_with_alternating_turns() {
    let out = translate(json!({
        "model": "claude-asked",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks"}
        ]
    }));
    assert_eq!(out["model"], "claude-x", "the model the worker chose");
    assert_eq!(out["system"], "Be brief.\n\nUse tools.");
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                {"type": "text", "text": "Thanks"}
            ]}
        ])
    );
    assert_eq!(out["stream"], true);
    assert_eq!(
        out["max_tokens"], 4096,
        "the default when the body names none"
    );
}

#[test]
fn images_become_base64_or_url_sources() {
    let out = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]}]}),
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ])
    );
}

#[test]
fn tools_choices_stops_limits_and_sampling_are_translated_and_the_rest_dropped() {
    let out = translate(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "now"}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": false,
        "stop": "END",
        "max_tokens": 100,
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "user-42",
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "response_format": {"type": "json_object"},
        "logprobs": true,
        "n": 1,
        "some_future_field": 1
    }));
    assert_eq!(
        out["tools"],
        json!([
            {"name": "weather", "description": "Weather of a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}}
        ])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true})
    );
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["max_tokens"], 50, "max_completion_tokens wins");
    assert_eq!(out["temperature"], 0.2);
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["metadata"], json!({"user_id": "user-42"}));
    let mut keys: Vec<&str> = out
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "max_tokens",
            "messages",
            "metadata",
            "model",
            "stop_sequences",
            "stream",
            "temperature",
            "tool_choice",
            "tools",
            "top_p"
        ]
    );
}

#[test]
fn tool_choice_words_and_stop_lists() {
    for (choice, expected) in [
        ("auto", json!({"type": "auto"})),
        ("none", json!({"type": "none"})),
        ("required", json!({"type": "any"})),
    ] {
        let out = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tool_choice": choice, "stop": ["a", "b"], "max_tokens": 9}),
        );
        assert_eq!(out["tool_choice"], expected, "{choice}");
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        assert_eq!(out["max_tokens"], 9);
    }
    let out = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": false}),
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let out = completion_body(
        "m",
        &body(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
        1234,
    )
    .expect("translatable");
    assert_eq!(out["max_tokens"], 1234);
    assert!(out.get("tool_choice").is_none() && out.get("system").is_none());
}

#[test]
fn what_anthropic_cannot_take_is_refused_naming_the_parameter() {
    let user =
        |content: Value| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    let cases = [
        (
            user(json!([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}])),
            "messages[0].content[0].type",
        ),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}])),
            "messages[0].content[0].image_url.url",
        ),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])),
            "messages[0].content[0].image_url.url",
        ),
        (user(json!(5)), "messages[0].content"),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "messages": [], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (json!({"model": "m", "messages": [], "stop": 3}), "stop"),
        (
            json!({"model": "m", "messages": [], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "messages": [], "max_completion_tokens": "9"}),
            "max_completion_tokens",
        ),
    ];
    for (b, param) in cases {
        let e = completion_body("m", &body(b.clone()), 10).expect_err("refused");
        assert!(e.starts_with(&format!("{param}: ")), "{b}: {e}");
    }
}
