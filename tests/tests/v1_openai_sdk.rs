//! The `/v1` front door driven by the official `openai` Python package (pinned in
//! `tests/python/requirements.txt`, from the venv `ops/test-pyenv.sh` makes) against the real
//! dispatcher and workers, with local providers speaking OpenAI's and Anthropic's streaming
//! formats (issue 18): `chat.completions.create` with and without `stream=True` (chunks arrive
//! incrementally), `stream_options={"include_usage": True}`, a tool-call round trip, `models.list()`,
//! `AuthenticationError` on a bad key, `BadRequestError` on a bad body, and `MODEL_ROUTES`
//! sending two models to two queues served by different workers.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::provider_server::{ProviderServer, Reply, Wire};
use switchyard_tests::python::run_scenario;
use switchyard_tests::{
    Dispatcher, Worker, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

/// The model the workers are configured with.
const MODEL: &str = "model-e2e";

fn provider_env(wire: Wire, url: &str, model: &str) -> Vec<(&'static str, String)> {
    match wire {
        Wire::OpenAi => vec![
            ("LLM_PROVIDER", "openai".into()),
            ("OPENAI_BASE_URL", format!("{url}/v1")),
            ("OPENAI_API_KEY", "sk-test".into()),
            ("LLM_MODEL", model.into()),
        ],
        Wire::Anthropic => vec![
            ("LLM_PROVIDER", "anthropic".into()),
            ("ANTHROPIC_BASE_URL", url.to_owned()),
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
            ("LLM_MODEL", model.into()),
        ],
    }
}

struct Stack {
    provider: ProviderServer,
    d: Dispatcher,
    _w: Worker,
}

impl Stack {
    async fn start(wire: Wire, default: Reply) -> Self {
        let provider = ProviderServer::start(default).await;
        let redis = shared_redis();
        let prefix = unique_prefix();
        let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
        let env = provider_env(wire, &provider.url(), MODEL);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let w = spawn_worker(redis.url(), &prefix, "w1", &env).await;
        Self { provider, d, _w: w }
    }

    async fn run(&self, scenario: &str, args: Value) -> Value {
        sdk(&self.d, scenario, MODEL, args).await
    }
}

async fn sdk(d: &Dispatcher, scenario: &str, model: &str, args: Value) -> Value {
    let base = format!("{}/v1", d.base_url());
    run_scenario(scenario, &base, d.secret(), model, &args).await
}

async fn create_and_stream(wire: Wire) {
    let reply = Reply::tokens(10).delay(Duration::from_millis(100));
    let expect = reply.answer();
    let st = Stack::start(wire, reply).await;
    let facts = st
        .run("create", json!({"expect": expect, "completion_tokens": 10}))
        .await;
    let id = facts["request_id"].as_str().expect("request id");
    let (status, task) = st.d.request("GET", &format!("/api/tasks/{id}"), None).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["state"], "succeeded", "{task}");
    assert!(task["payload"]["completion"].is_object(), "{task}");
    let facts = st
        .run(
            "stream",
            json!({"expect": expect, "completion_tokens": 10, "min_spread_ms": 400}),
        )
        .await;
    println!("{wire:?} stream: {facts}");
    // Every request reached the provider as a streamed one, whatever the client asked.
    assert_eq!(st.provider.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_create_and_stream_through_an_openai_provider() {
    create_and_stream(Wire::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_create_and_stream_through_an_anthropic_provider() {
    create_and_stream(Wire::Anthropic).await;
}

async fn tool_round_trip(wire: Wire, call_id: &str) {
    let args = r#"{"city": "Oslo"}"#;
    let st = Stack::start(wire, Reply::text("unexpected extra request")).await;
    for _ in 0..2 {
        st.provider
            .push(Reply::tokens(0).tool_call(call_id, "get_weather", args));
    }
    st.provider.push(Reply::text("It is sunny in Oslo."));
    let facts = st
        .run(
            "tools",
            json!({"call_id": call_id, "arguments": {"city": "Oslo"},
                "tool_result": "{\"sky\": \"sunny\"}", "expect": "It is sunny in Oslo."}),
        )
        .await;
    assert!(
        facts["tool_call_chunks"].as_u64() >= Some(2),
        "the streamed call came in one piece: {facts}"
    );
    let bodies = st.provider.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    let last = &bodies[2];
    let text = last.to_string();
    match wire {
        Wire::OpenAi => {
            // Passed through as the client sent it.
            let msgs = last["messages"].as_array().expect("messages");
            let tool = msgs.iter().find(|m| m["role"] == "tool").expect("tool msg");
            assert_eq!(tool["tool_call_id"], call_id, "{text}");
            assert_eq!(
                last["tools"][0]["function"]["name"], "get_weather",
                "{text}"
            );
        }
        Wire::Anthropic => {
            // Translated: the tool result is a user turn's tool_result block.
            assert!(
                text.contains("tool_result") && text.contains(call_id),
                "{text}"
            );
            assert_eq!(last["tools"][0]["name"], "get_weather", "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_tool_call_round_trip_through_an_openai_provider() {
    tool_round_trip(Wire::OpenAi, "call_w1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_tool_call_round_trip_through_an_anthropic_provider() {
    tool_round_trip(Wire::Anthropic, "toolu_w1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_raises_authentication_and_bad_request_errors() {
    let redis = shared_redis();
    let d = spawn_dispatcher(redis.url(), &unique_prefix(), &[]).await;
    let facts = sdk(&d, "auth", MODEL, json!({})).await;
    assert_eq!(facts["status"], 401);
    let facts = sdk(&d, "bad_request", MODEL, json!({})).await;
    assert!(
        facts["n"].as_str().is_some_and(|m| m.contains("only 1")),
        "{facts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_models_route_to_queues_served_by_different_workers() {
    let openai = ProviderServer::start(Reply::text("from openai")).await;
    let anthropic = ProviderServer::start(Reply::text("from anthropic")).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(
        redis.url(),
        &prefix,
        &[
            ("QUEUES", "chat,tool,chat-openai,chat-anthropic"),
            ("MODEL_ROUTES", "gpt-*=chat-openai,claude-*=chat-anthropic"),
        ],
    )
    .await;
    let mut workers = vec![];
    for (id, queue, wire, url, model) in [
        (
            "w-openai",
            "chat-openai",
            Wire::OpenAi,
            openai.url(),
            "gpt-test",
        ),
        (
            "w-anthropic",
            "chat-anthropic",
            Wire::Anthropic,
            anthropic.url(),
            "claude-test",
        ),
    ] {
        let mut env = provider_env(wire, &url, model);
        env.push(("WORKER_QUEUES", queue.into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        workers.push(spawn_worker(redis.url(), &prefix, id, &env).await);
    }
    let facts = sdk(
        &d,
        "routing",
        MODEL,
        json!({"routes": {"gpt-test": "chat-openai", "claude-test": "chat-anthropic"},
            "unrouted": "llama3"}),
    )
    .await;
    for (model, worker) in [("gpt-test", "w-openai"), ("claude-test", "w-anthropic")] {
        let id = facts[model].as_str().expect("request id");
        let (_, task) = d.request("GET", &format!("/api/tasks/{id}"), None).await;
        assert_eq!(task["worker"], worker, "{model}: {task}");
    }
    // /api/chat routes by its `model` the same way.
    let (status, v) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"message": "hi", "model": "claude-test"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["worker_id"], "w-anthropic", "{v}");
    assert!(
        v["task_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("chat-anthropic.h-")),
        "{v}"
    );
    assert_eq!(openai.bodies()[0]["model"], "gpt-test");
    assert_eq!(anthropic.bodies()[0]["model"], "claude-test");
    assert_eq!(openai.requests().len(), 1);
    assert_eq!(anthropic.requests().len(), 2);
    // Each worker registers its model; each is listed, since its route reaches its worker.
    sdk(
        &d,
        "models",
        MODEL,
        json!({"expect": ["claude-test", "gpt-test"]}),
    )
    .await;
}
