//! Chat providers and capability tools through the real binaries (issue 4): a two-turn chat with
//! the `openai` provider pointed at a local OpenAI-compatible server (the second request carries
//! the first turn), a rejected key that fails the task without leaking it, and `web_fetch`
//! routed to the `web` queue that only the capable worker consumes.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::{
    connection, poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk-e2e-0123456789abcdef";

/// Answers like the chat completions API, quoting how many messages it was sent.
fn counting_completion(req: &Request) -> ResponseTemplate {
    let body: Value = req.body_json().unwrap_or(Value::Null);
    let messages = body["messages"].as_array().map_or(0, Vec::len);
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-e2e",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("seen {messages} messages")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10 * messages, "completion_tokens": 3}
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_turn_chat_with_openai_sends_the_first_turn_with_the_second() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(counting_completion)
        .mount(&server)
        .await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let base_url = format!("{}/v1", server.uri());
    let w = spawn_worker(
        redis.url(),
        &prefix,
        "w-openai",
        &[
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", &base_url),
            ("OPENAI_API_KEY", KEY),
            ("LLM_MODEL", "gpt-e2e"),
        ],
    )
    .await;

    let (s, first) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"session_id": "ada", "message": "my name is Ada", "system": "be brief"})),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["response"], "seen 2 messages");
    let (s, second) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"session_id": "ada", "message": "what is my name?", "system": "be brief"})),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["response"], "seen 4 messages");
    assert_eq!(second["provider"], "openai");
    assert_eq!(second["model"], "gpt-e2e");
    assert_eq!(
        second["usage"],
        json!({"prompt_tokens": 40, "completion_tokens": 3})
    );

    let got = server.received_requests().await.expect("recording is on");
    assert_eq!(got.len(), 2);
    let body: Value = got[1].body_json().expect("JSON body");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "my name is Ada"},
            {"role": "assistant", "content": "seen 2 messages"},
            {"role": "user", "content": "what is my name?"},
        ])
    );

    // The task record keeps the result shape and never the key.
    let task_id = second["task_id"].as_str().expect("task_id");
    let (s, task) = d
        .request("GET", &format!("/api/tasks/{task_id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(task["result"]["provider"], "openai");
    assert_eq!(task["result"]["usage"]["completion_tokens"], 3);
    assert!(!task.to_string().contains(KEY));

    // The registry advertises what the worker serves.
    let (_, workers) = d.request("GET", "/api/workers", None).await;
    let me = workers["workers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|x| x["id"] == w.id()))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(me["providers"], json!(["openai"]), "{workers}");
    assert_eq!(
        me["capabilities"],
        json!(["echo", "sleep", "fail"]),
        "{workers}"
    );
    assert!(!w.proc.log_text().contains(KEY), "the key reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_key_fails_the_chat_task_once_naming_the_provider_not_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "invalid_request_error"}
        })))
        .mount(&server)
        .await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w = spawn_worker(
        redis.url(),
        &prefix,
        "w-401",
        &[
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", &server.uri()),
            ("OPENAI_API_KEY", KEY),
            ("LLM_MODEL", "gpt-e2e"),
        ],
    )
    .await;

    let task = d
        .submit_and_wait(
            json!({"kind": "chat", "payload": {"session_id": "s401", "message": "hi"}}),
        )
        .await;
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["attempts"], 1, "a 401 is not retried: {task}");
    let error = task["error"].as_str().unwrap_or("");
    assert!(error.starts_with("openai: HTTP 401"), "{error}");
    assert!(!task.to_string().contains("0123456789abcdef"), "{task}");
    assert!(!w.proc.log_text().contains("0123456789abcdef"));
    // A failed turn leaves no half turn in the session.
    let mut con = connection(redis.url()).await;
    let len: u64 = redis::cmd("LLEN")
        .arg(format!("{prefix}session:s401"))
        .query_async(&mut con)
        .await
        .expect("llen");
    assert_eq!(len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_fetch_runs_on_the_web_queue_and_fails_clearly_elsewhere() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/page"))
        .respond_with(ResponseTemplate::new(200).set_body_string("local page"))
        .mount(&server)
        .await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[("QUEUES", "chat,tool,web")]).await;
    let web = spawn_worker(
        redis.url(),
        &prefix,
        "w-web",
        &[
            ("WORKER_QUEUES", "web"),
            ("ENABLE_WEB_SEARCH", "true"),
            // The test server is on loopback: allowed by exception, everything else private is not.
            ("WEB_FETCH_ALLOWED_IPS", "127.0.0.1"),
        ],
    )
    .await;
    let plain = spawn_worker(
        redis.url(),
        &prefix,
        "w-plain",
        &[("WORKER_QUEUES", "tool")],
    )
    .await;
    let url = format!("{}/page", server.uri());

    let ok = d.submit_and_wait(json!({"kind": "tool", "queue": "web", "payload": {"tool": "web_fetch", "args": {"url": url}}}),
    )
    .await;
    assert_eq!(ok["state"], "succeeded", "{ok}");
    assert_eq!(ok["worker"], web.id());
    assert_eq!(ok["result"]["output"]["body"], "local page");

    let metadata = d.submit_and_wait(json!({"kind": "tool", "queue": "web", "payload": {"tool": "web_fetch", "args": {"url": "http://169.254.169.254/latest/meta-data/"}}}),
    )
    .await;
    assert_eq!(metadata["state"], "failed", "{metadata}");
    assert!(
        metadata["error"].as_str().unwrap_or("").contains("refused"),
        "{metadata}"
    );

    let misrouted = d
        .submit_and_wait(
            json!({"kind": "tool", "payload": {"tool": "web_fetch", "args": {"url": url}}}),
        )
        .await;
    assert_eq!(misrouted["state"], "failed", "{misrouted}");
    assert_eq!(misrouted["worker"], plain.id());
    let error = misrouted["error"].as_str().unwrap_or("");
    assert!(
        error.contains("ENABLE_WEB_SEARCH") && error.contains("queue \"web\""),
        "{error}"
    );

    let caps = poll_until("both workers listed", Duration::from_secs(10), || async {
        let (_, v) = d.request("GET", "/api/workers", None).await;
        let find = |id: &str| {
            v["workers"]
                .as_array()
                .and_then(|ws| ws.iter().find(|x| x["id"] == id))
                .map(|x| x["capabilities"].clone())
        };
        Some((find("w-web")?, find("w-plain")?))
    })
    .await;
    assert_eq!(caps.0, json!(["echo", "sleep", "fail", "web_fetch"]));
    assert_eq!(caps.1, json!(["echo", "sleep", "fail"]));
}
