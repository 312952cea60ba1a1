//! `/v1` chat tasks through the real binaries (issue 18, worker side): a chat task whose payload
//! carries a chat-completions body (`payload.completion`), enqueued with `POST /api/tasks`, is
//! answered by the worker through the local provider server in OpenAI's and Anthropic's wire
//! formats; the result holds the whole tool calls and finish reason `tool_calls`, the output
//! stream the text then the `tc` pieces. The worker registers the models it serves, and its LLM
//! metrics label only those (a client's made-up model name counts as `other`).

use std::time::Duration;

use redis::streams::StreamRangeReply;
use serde_json::{Value, json};
use switchyard_shared::completion::ToolCall;
use switchyard_shared::output::{Entry, decode};
use switchyard_tests::{
    Dispatcher, ProviderServer, Reply, connection, poll_until, shared_redis, spawn_dispatcher,
    spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(60);

async fn enqueue(d: &Dispatcher, completion: Value) -> String {
    let body = json!({"kind": "chat", "payload": {"completion": completion}});
    let (status, v) = d.request("POST", "/api/tasks", Some(body)).await;
    assert_eq!(status, 202, "enqueue answered {status}: {v}");
    v["id"].as_str().expect("task id").to_owned()
}

async fn finished(d: &Dispatcher, id: &str) -> Value {
    poll_until(&format!("task {id} to finish"), LONG, || async {
        let (_, v) = d.request("GET", &format!("/api/tasks/{id}"), None).await;
        matches!(v["state"].as_str(), Some("succeeded" | "failed" | "dead")).then_some(v)
    })
    .await
}

/// The tool calls the `tc` entries of task `id`'s output stream add up to, and whether every
/// text entry came before the first of them.
async fn streamed_calls(prefix: &str, id: &str) -> (Vec<ToolCall>, bool) {
    let mut con = connection(shared_redis().url()).await;
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{prefix}{{chat}}:out:{id}"))
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    let mut calls: Vec<ToolCall> = Vec::new();
    let mut text_after_calls = false;
    for e in &reply.ids {
        match decode(e).expect("a valid output entry").entry {
            Entry::ToolCalls { calls: pieces, .. } => {
                for p in pieces {
                    let i = p.index as usize;
                    if calls.len() <= i {
                        calls.resize(i + 1, ToolCall::function("", "", ""));
                    }
                    if let Some(id) = p.id {
                        calls[i].id = id;
                    }
                    if let Some(name) = p.name {
                        calls[i].function.name = name;
                    }
                    calls[i].function.arguments.push_str(&p.arguments);
                }
            }
            Entry::Delta { .. } => text_after_calls |= !calls.is_empty(),
            Entry::End { .. } => {}
        }
    }
    (calls, !text_after_calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_tasks_end_with_tool_calls_in_the_result_and_the_output_stream() {
    let reply = Reply::text("Checking the weather. ")
        .tool_call("call_1", "weather", r#"{"city":"Paris"}"#)
        .tool_call("call_2", "weather", r#"{"city":"Rome"}"#)
        .usage(30, 12)
        .delay(Duration::from_millis(5));
    let expected = vec![
        ToolCall::function("call_1", "weather", r#"{"city":"Paris"}"#),
        ToolCall::function("call_2", "weather", r#"{"city":"Rome"}"#),
    ];
    let server = ProviderServer::start(reply).await;
    for anthropic in [false, true] {
        let redis = shared_redis();
        let prefix = unique_prefix();
        let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
        let env: Vec<(&str, String)> = if anthropic {
            vec![
                ("LLM_PROVIDER", "anthropic".into()),
                ("ANTHROPIC_BASE_URL", server.url()),
                ("ANTHROPIC_API_KEY", "sk-ant-local".into()),
                ("ANTHROPIC_MODEL", "claude-local".into()),
            ]
        } else {
            vec![
                ("LLM_PROVIDER", "openai".into()),
                ("OPENAI_BASE_URL", format!("{}/v1", server.url())),
                ("OPENAI_MODEL", "gpt-local".into()),
            ]
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _w = spawn_worker(redis.url(), &prefix, "w1", &env).await;
        let before = server.requests().len();
        let id = enqueue(
            &d,
            json!({"model": "local", "messages": [{"role": "user", "content": "Paris and Rome?"}],
                "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
                "some_future_field": true}),
        )
        .await;
        let task = finished(&d, &id).await;
        assert_eq!(task["state"], "succeeded", "anthropic: {anthropic}: {task}");
        let result = &task["result"];
        assert_eq!(result["finish_reason"], "tool_calls", "{result}");
        assert_eq!(result["response"], "Checking the weather. ");
        assert_eq!(result["usage"]["prompt_tokens"], 30);
        let calls: Vec<ToolCall> =
            serde_json::from_value(result["tool_calls"].clone()).expect("tool calls");
        assert_eq!(calls, expected, "anthropic: {anthropic}");
        let (streamed, ordered) = streamed_calls(&prefix, &id).await;
        assert_eq!(streamed, expected, "anthropic: {anthropic}: the tc entries");
        assert!(ordered, "the text came before the tool calls");
        let sent = &server.bodies()[before];
        if anthropic {
            assert_eq!(sent["tools"][0]["input_schema"], json!({"type": "object"}));
            assert!(sent.get("some_future_field").is_none());
        } else {
            assert_eq!(sent["some_future_field"], true, "passed through");
            assert_eq!(sent["tools"][0]["type"], "function");
        }
    }
}

/// The value of `name{…label=value…}` in a Prometheus text page.
fn series<'a>(page: &'a str, name: &str, label: &str) -> Vec<&'a str> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_models_are_registered_and_the_only_model_labels() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w = spawn_worker(
        redis.url(),
        &prefix,
        "w1",
        &[("LLM_MODEL", "echo-1"), ("LLM_MODELS", "echo-large")],
    )
    .await;
    let (_, workers) = d.request("GET", "/api/workers", None).await;
    let listed = workers["workers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|x| x["id"] == "w1"))
        .cloned()
        .unwrap_or_else(|| panic!("w1 is listed: {workers}"));
    assert_eq!(listed["models"], json!(["echo-1", "echo-large"]));
    for model in ["echo-large", "made-up-1", "made-up-2"] {
        let id = enqueue(
            &d,
            json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]}),
        )
        .await;
        let task = finished(&d, &id).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(task["result"]["response"], "hi there");
        assert_eq!(task["result"]["model"], model);
    }
    let page = reqwest::get(format!("http://127.0.0.1:{}/metrics", w.port()))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics page");
    let requests = "switchyard_llm_requests_total";
    assert_eq!(
        series(&page, requests, r#"model="echo-large""#),
        vec![r#"switchyard_llm_requests_total{provider="echo",model="echo-large"} 1"#],
        "{page}"
    );
    assert_eq!(
        series(&page, requests, r#"model="other""#),
        vec![r#"switchyard_llm_requests_total{provider="echo",model="other"} 2"#],
        "{page}"
    );
    assert!(!page.contains("made-up"), "{page}");
}
