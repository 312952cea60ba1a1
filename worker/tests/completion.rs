//! `/v1` chat tasks (`payload.completion`) run by the worker's chat task against the local
//! provider server (real HTTP and SSE) and a real Redis: what reaches an OpenAI-compatible
//! provider is the client's body (unknown fields included) with streaming forced, a fallback
//! gets its own model, Anthropic gets the translation, and tool calls from either format stream
//! into the output stream as `tc` entries (after the text before them) and end up whole in the
//! result with finish reason `tool_calls` and the provider's usage.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::streams::StreamRangeReply;
use serde_json::{Value, json};
use switchyard_shared::chat::ChatResult;
use switchyard_shared::completion::ToolCall;
use switchyard_shared::config::{RedisConfig, WorkerConfig};
use switchyard_shared::keys::Keys;
use switchyard_shared::output::{AttemptEnd, Entry, decode};
use switchyard_shared::scripts::Retention;
use switchyard_shared::{clock, store};
use switchyard_tests::{ProviderServer, Reply, connection, shared_redis, unique_prefix};
use switchyard_worker::chat;
use switchyard_worker::context::WorkerContext;
use switchyard_worker::output::{OutputSettings, OutputWriter};
use switchyard_worker::providers::Provider;
use tokio_util::sync::CancellationToken;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A worker context on the shared Redis with these chat settings, and its providers.
fn worker(settings: &[(&str, &str)]) -> (Arc<WorkerContext>, Provider) {
    let prefix = unique_prefix();
    let redis = RedisConfig::from_vars(&vars(&[
        ("REDIS_URL", shared_redis().url()),
        ("QUEUE_PREFIX", &prefix),
    ]))
    .expect("redis config");
    let mut pairs = vec![("LLM_RETRY_BASE_MS", "10"), ("LLM_MAX_RETRIES", "0")];
    pairs.extend_from_slice(settings);
    let cfg = WorkerConfig::from_vars(&vars(&pairs)).expect("worker config");
    let provider = Provider::from_config(&cfg).expect("providers build");
    let ctx = Arc::new(WorkerContext {
        id: "worker-1".to_owned(),
        pool: store::create_pool(&redis).expect("pool"),
        keys: Keys::new(&prefix),
        retention: Retention {
            result_ttl: Duration::from_secs(600),
            events_maxlen: 1_000,
        },
        redis,
        cfg,
        in_flight: Mutex::new(HashMap::new()),
        processed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        started_at: clock::now_rfc3339(),
        draining: CancellationToken::new(),
        paused: Default::default(),
    });
    (ctx, provider)
}

fn openai(server: &ProviderServer) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_PROVIDER", "openai".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", server.url())),
        ("OPENAI_MODEL", "gpt-configured".into()),
    ]
}

fn anthropic(server: &ProviderServer) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_PROVIDER", "anthropic".into()),
        ("ANTHROPIC_BASE_URL", server.url()),
        ("ANTHROPIC_API_KEY", "sk-ant-local".into()),
        ("ANTHROPIC_MODEL", "claude-configured".into()),
    ]
}

fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs `body` as a chat task's `payload.completion` with the output writer on, and answers the
/// result and the output stream's entries.
async fn run(
    ctx: &Arc<WorkerContext>,
    provider: &Provider,
    body: &Value,
) -> (Result<ChatResult, String>, Vec<Entry>) {
    let key = ctx.keys.output("chat", "task-1");
    let settings = OutputSettings {
        flush_interval: Duration::from_millis(20),
        flush_bytes: 4096,
        ttl: Duration::from_secs(600),
        maxlen: 10_000,
    };
    let (writer, sink) = OutputWriter::start(ctx.pool.clone(), key.clone(), 1, settings);
    let payload = json!({ "completion": body });
    let result = chat::run(ctx, provider, "task-1", &payload, &sink).await;
    drop(sink);
    writer.finish(Some(AttemptEnd::Finished)).await;
    let mut con = connection(shared_redis().url()).await;
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    let entries = reply
        .ids
        .iter()
        .map(|e| decode(e).expect("a valid output entry").entry)
        .collect();
    let result = result
        .map(|v| ChatResult::decode(&v).expect("a chat result"))
        .map_err(|e| e.to_string());
    (result, entries)
}

/// The tool calls the output stream's `tc` entries add up to, in index order.
fn streamed_calls(entries: &[Entry]) -> Vec<ToolCall> {
    let mut calls: Vec<ToolCall> = Vec::new();
    for e in entries {
        let Entry::ToolCalls { calls: pieces, .. } = e else {
            continue;
        };
        for p in pieces {
            let i = p.index as usize;
            if calls.len() <= i {
                calls.resize(i + 1, ToolCall::function("", "", ""));
            }
            if let Some(id) = &p.id {
                calls[i].id.clone_from(id);
            }
            if let Some(name) = &p.name {
                calls[i].function.name.clone_from(name);
            }
            calls[i].function.arguments.push_str(&p.arguments);
        }
    }
    calls
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// The scripted answer: a sentence, then two calls, arguments in pieces, 5 ms apart.
fn tool_reply() -> Reply {
    Reply::text("Let me check. ")
        .tool_call("call_1", "weather", r#"{"city":"Paris"}"#)
        .tool_call("call_2", "weather", r#"{"city":"Rome"}"#)
        .usage(42, 17)
        .delay(Duration::from_millis(5))
}

fn expected_calls() -> Vec<ToolCall> {
    vec![
        ToolCall::function("call_1", "weather", r#"{"city":"Paris"}"#),
        ToolCall::function("call_2", "weather", r#"{"city":"Rome"}"#),
    ]
}

#[tokio::test]
async fn openai_receives_the_clients_body_unchanged_but_for_streaming() {
    let server = ProviderServer::start(Reply::text("fine")).await;
    let (ctx, provider) = worker(&borrowed(&openai(&server)));
    let body = json!({
        "model": "gpt-asked",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": weather_tools(), "tool_choice": "auto", "parallel_tool_calls": true,
        "response_format": {"type": "json_object"}, "seed": 7, "temperature": 0.3, "max_completion_tokens": 99,
        "logit_bias": {"50256": -100}, "some_future_field": {"nested": [1, 2]}, "user": "u-1"
    });
    let (result, entries) = run(&ctx, &provider, &body).await;
    let result = result.expect("answered");
    assert_eq!(result.response, "fine");
    assert_eq!(result.finish_reason.as_deref(), Some("stop"));
    assert!(result.tool_calls.is_empty());
    assert_eq!(result.session_id, None);
    let mut expected = body.clone();
    expected["stream"] = json!(true);
    expected["stream_options"] = json!({"include_usage": true});
    assert_eq!(server.bodies(), vec![expected]);
    assert_eq!(
        entries.first(),
        Some(&Entry::Delta {
            attempt: 1,
            text: "fine".into()
        })
    );
}

#[tokio::test]
async fn a_fallback_provider_answers_with_its_own_model() {
    let failing = ProviderServer::start(Reply::status(
        503,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    ))
    .await;
    let fallback = ProviderServer::start(Reply::text("from the fallback")).await;
    let mut settings = anthropic(&failing);
    settings.extend(openai(&fallback));
    settings.retain(|(k, _)| *k != "LLM_PROVIDER");
    settings.push(("LLM_PROVIDER", "anthropic,openai".into()));
    let (ctx, provider) = worker(&borrowed(&settings));
    let body = json!({"model": "claude-asked", "messages": [{"role": "user", "content": "hi"}], "seed": 1});
    let (result, _) = run(&ctx, &provider, &body).await;
    assert_eq!(result.expect("answered").provider, "openai");
    assert_eq!(failing.bodies()[0]["model"], "claude-asked");
    let got = &fallback.bodies()[0];
    assert_eq!(got["model"], "gpt-configured", "the fallback's own model");
    assert_eq!(got["seed"], 1, "the rest unchanged");
    assert_eq!(got["messages"], body["messages"]);
}

#[tokio::test]
async fn openai_tool_calls_stream_as_tc_entries_and_end_whole_in_the_result() {
    let server = ProviderServer::start(tool_reply()).await;
    let (ctx, provider) = worker(&borrowed(&openai(&server)));
    let body = json!({"model": "gpt-asked", "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}],
        "tools": weather_tools()});
    let (result, entries) = run(&ctx, &provider, &body).await;
    let result = result.expect("answered");
    assert_eq!(result.response, "Let me check. ");
    assert_eq!(result.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(result.tool_calls, expected_calls());
    assert_eq!(
        (result.usage.prompt_tokens, result.usage.completion_tokens),
        (42, 17)
    );
    assert_eq!(streamed_calls(&entries), expected_calls());
    assert_order(&entries);
}

#[tokio::test]
async fn anthropic_tool_use_is_translated_both_ways() {
    let server = ProviderServer::start(tool_reply()).await;
    let (ctx, provider) = worker(&borrowed(&anthropic(&server)));
    let body = json!({
        "model": "claude-asked",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
            {"role": "user", "content": "And Rome?"}
        ],
        "tools": weather_tools(), "tool_choice": "required", "stop": "END", "seed": 3
    });
    let (result, entries) = run(&ctx, &provider, &body).await;
    let result = result.expect("answered");
    assert_eq!(result.provider, "anthropic");
    assert_eq!(result.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(result.tool_calls, expected_calls());
    assert_eq!(
        (result.usage.prompt_tokens, result.usage.completion_tokens),
        (42, 17)
    );
    assert_eq!(streamed_calls(&entries), expected_calls());
    assert_order(&entries);
    let sent = &server.bodies()[0];
    assert_eq!(sent["model"], "claude-asked");
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["max_tokens"], 4096, "the documented default");
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(sent["tools"][0]["name"], "weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_0", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_0", "content": "18C"},
                {"type": "text", "text": "And Rome?"}
            ]}
        ])
    );
    assert!(sent.get("seed").is_none(), "no Anthropic meaning: dropped");
}

#[tokio::test]
async fn whole_answers_with_tool_calls_are_read_in_both_formats() {
    for anthropic_wire in [false, true] {
        let server = ProviderServer::start(tool_reply().whole()).await;
        let settings = if anthropic_wire {
            anthropic(&server)
        } else {
            openai(&server)
        };
        let (ctx, provider) = worker(&borrowed(&settings));
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": weather_tools()});
        let (result, entries) = run(&ctx, &provider, &body).await;
        let result = result.expect("answered");
        assert_eq!(
            result.tool_calls,
            expected_calls(),
            "anthropic: {anthropic_wire}"
        );
        assert_eq!(result.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(streamed_calls(&entries), expected_calls());
    }
}

#[tokio::test]
async fn a_body_anthropic_cannot_take_fails_for_good_naming_the_parameter() {
    let server = ProviderServer::start(Reply::text("unused")).await;
    let (ctx, provider) = worker(&borrowed(&anthropic(&server)));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]});
    let (result, _) = run(&ctx, &provider, &body).await;
    let e = result.expect_err("refused");
    assert!(e.contains("messages[0].content[0].type"), "{e}");
    assert!(server.requests().is_empty(), "nothing was sent");
}

/// Text entries come before the tool calls, and the stream ends with the end entry.
fn assert_order(entries: &[Entry]) {
    let first_call = entries
        .iter()
        .position(|e| matches!(e, Entry::ToolCalls { .. }))
        .expect("a tc entry");
    assert!(
        entries[..first_call]
            .iter()
            .all(|e| matches!(e, Entry::Delta { .. })),
        "{entries:?}"
    );
    assert!(
        entries[first_call..]
            .iter()
            .all(|e| !matches!(e, Entry::Delta { .. })),
        "{entries:?}"
    );
    assert!(first_call > 0, "the text went out first: {entries:?}");
    assert!(matches!(entries.last(), Some(Entry::End { .. })));
}
