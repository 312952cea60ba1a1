//! The `openai` and `anthropic` providers against local servers that speak their APIs (wiremock on
//! loopback) with whole JSON answers, as servers that ignore `stream` do: request shape, answer
//! parsing, usage, retries honouring `Retry-After`, fallback to the next provider, and permanent
//! failures that name the provider but never the key. Streamed answers: `streaming.rs`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_shared::config::WorkerConfig;
use switchyard_shared::task::ChatMessage;
use switchyard_worker::providers::{ChatRequest, Conversation, Provider, ProviderError, Sink};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-test-openai-0123456789abcdef";
const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789abcdef";

fn provider(pairs: &[(&str, &str)]) -> Provider {
    let vars: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let cfg = WorkerConfig::from_vars(&vars).expect("valid test config");
    Provider::from_config(&cfg).expect("providers build")
}

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

/// A second turn: one earlier exchange and the new question.
fn second_turn(model: Option<&str>) -> ChatRequest {
    ChatRequest::Conversation(Conversation {
        model: model.map(str::to_owned),
        system: Some("be brief".into()),
        messages: vec![
            msg("user", "my name is Ada"),
            msg("assistant", "hello Ada"),
            msg("user", "what is my name?"),
        ],
    })
}

fn openai_answer(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-test-2025",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}
    })
}

fn anthropic_answer(text: &str) -> Value {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 17, "output_tokens": 5}
    })
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

fn header<'a>(r: &'a wiremock::Request, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn openai_sends_model_history_system_and_bearer_key_and_reads_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("You are Ada.")))
        .mount(&server)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &format!("{}/v1/", server.uri())),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("LLM_MODEL", "gpt-default"),
    ]);

    let answer = p
        .complete(&second_turn(Some("gpt-asked")), &Sink::discard())
        .await
        .expect("answer");
    assert_eq!(answer.text, "You are Ada.");
    assert_eq!(answer.provider, "openai");
    assert_eq!(answer.model, "gpt-test-2025");
    assert_eq!(
        (answer.usage.prompt_tokens, answer.usage.completion_tokens),
        (21, 4)
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));

    let got = requests(&server).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        header(&got[0], "authorization"),
        format!("Bearer {OPENAI_KEY}")
    );
    let body: Value = got[0].body_json().expect("JSON body");
    assert_eq!(
        body,
        json!({
            "model": "gpt-asked",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "my name is Ada"},
                {"role": "assistant", "content": "hello Ada"},
                {"role": "user", "content": "what is my name?"},
            ]
        })
    );

    // Without a model in the task, LLM_MODEL is used.
    p.complete(&second_turn(None), &Sink::discard())
        .await
        .expect("answer");
    let body: Value = requests(&server).await[1].body_json().expect("JSON body");
    assert_eq!(body["model"], "gpt-default");
}

#[tokio::test]
async fn openai_compatible_servers_need_no_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"role": "assistant", "content": "local"}}]
        })))
        .mount(&server)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &format!("{}/v1", server.uri())),
        ("LLM_MODEL", "llama3.2"),
    ]);
    let answer = p
        .complete(&second_turn(None), &Sink::discard())
        .await
        .expect("answer");
    assert_eq!(answer.text, "local");
    assert_eq!(answer.model, "llama3.2");
    assert_eq!(answer.usage.prompt_tokens, 0);
    assert!(
        requests(&server).await[0]
            .headers
            .get("authorization")
            .is_none()
    );
}

#[tokio::test]
async fn anthropic_sends_system_apart_with_version_and_key_and_reads_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_answer("Ada.")))
        .mount(&server)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "anthropic"),
        ("ANTHROPIC_BASE_URL", &server.uri()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ("ANTHROPIC_MODEL", "claude-default"),
        ("LLM_MAX_TOKENS", "256"),
    ]);

    let answer = p
        .complete(&second_turn(None), &Sink::discard())
        .await
        .expect("answer");
    assert_eq!(answer.text, "Ada.");
    assert_eq!(answer.provider, "anthropic");
    assert_eq!(answer.model, "claude-test");
    assert_eq!(
        (answer.usage.prompt_tokens, answer.usage.completion_tokens),
        (17, 5)
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"), "end_turn");

    let got = requests(&server).await;
    assert_eq!(got.len(), 1);
    assert_eq!(header(&got[0], "x-api-key"), ANTHROPIC_KEY);
    assert_eq!(header(&got[0], "anthropic-version"), "2023-06-01");
    assert!(got[0].headers.get("authorization").is_none());
    let body: Value = got[0].body_json().expect("JSON body");
    assert_eq!(
        body,
        json!({
            "model": "claude-default",
            "max_tokens": 256,
            "stream": true,
            "system": "be brief",
            "messages": [
                {"role": "user", "content": "my name is Ada"},
                {"role": "assistant", "content": "hello Ada"},
                {"role": "user", "content": "what is my name?"},
            ]
        })
    );
}

#[tokio::test]
async fn rate_limit_is_retried_after_the_servers_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "slow down"}})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("after the wait")))
        .mount(&server)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &server.uri()),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("LLM_MODEL", "m"),
        ("LLM_RETRY_BASE_MS", "10"),
    ]);
    let began = Instant::now();
    let answer = p
        .complete(&second_turn(None), &Sink::discard())
        .await
        .expect("answer");
    assert_eq!(answer.text, "after the wait");
    assert_eq!(requests(&server).await.len(), 2);
    // Our own backoff is 10 ms: the second second came from Retry-After.
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn retry_after_is_capped_by_llm_retry_max_ms() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3600"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("soon enough")))
        .mount(&server)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &server.uri()),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("LLM_MODEL", "m"),
        ("LLM_RETRY_BASE_MS", "10"),
        ("LLM_RETRY_MAX_MS", "50"),
    ]);
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        p.complete(&second_turn(None), &Sink::discard()),
    )
    .await
    .expect("an hour-long Retry-After is capped")
    .expect("answer");
    assert_eq!(answer.text, "soon enough");
}

#[tokio::test]
async fn server_errors_fall_back_to_the_next_provider_after_retries() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"error": {"message": "boom"}})),
        )
        .mount(&openai)
        .await;
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(anthropic_answer("from the fallback")),
        )
        .mount(&anthropic)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai,anthropic"),
        ("OPENAI_BASE_URL", &openai.uri()),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("ANTHROPIC_BASE_URL", &anthropic.uri()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ("LLM_MODEL", "gpt-x"),
        ("ANTHROPIC_MODEL", "claude-fallback"),
        ("LLM_MAX_RETRIES", "2"),
        ("LLM_RETRY_BASE_MS", "10"),
    ]);
    let answer = p
        .complete(&second_turn(Some("gpt-asked")), &Sink::discard())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "anthropic");
    assert_eq!(answer.text, "from the fallback");
    // One call and two retries on the first provider, then the fallback with its own model.
    assert_eq!(requests(&openai).await.len(), 3);
    let body: Value = requests(&anthropic).await[0]
        .body_json()
        .expect("JSON body");
    assert_eq!(body["model"], "claude-fallback");
}

#[tokio::test]
async fn timeouts_fall_back_and_all_failing_is_retryable() {
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("too late"))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&slow)
        .await;
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&down)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai,anthropic"),
        ("OPENAI_BASE_URL", &slow.uri()),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("ANTHROPIC_BASE_URL", &down.uri()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ("LLM_MODEL", "m"),
        ("LLM_MAX_RETRIES", "0"),
        ("LLM_TIMEOUT_MS", "200"),
    ]);
    let e = p
        .complete(&second_turn(None), &Sink::discard())
        .await
        .expect_err("both fail");
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        matches!(e, ProviderError::Exhausted(ref v) if v.len() == 2),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("openai: timed out") && text.contains("anthropic: HTTP 502"),
        "{text}"
    );
}

#[tokio::test]
async fn unauthorized_fails_permanently_naming_the_provider_not_the_key() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {
                "message": format!("Incorrect API key provided: {OPENAI_KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "type": "invalid_request_error",
                "code": "invalid_api_key"
            }
        })))
        .mount(&openai)
        .await;
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_answer("unused")))
        .expect(0)
        .mount(&anthropic)
        .await;
    let p = provider(&[
        ("LLM_PROVIDER", "openai,anthropic"),
        ("OPENAI_BASE_URL", &openai.uri()),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("ANTHROPIC_BASE_URL", &anthropic.uri()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ("LLM_MODEL", "m"),
        ("LLM_RETRY_BASE_MS", "10"),
    ]);
    let e = p
        .complete(&second_turn(None), &Sink::discard())
        .await
        .expect_err("refused");
    assert!(
        matches!(
            e,
            ProviderError::Permanent {
                provider: "openai",
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.starts_with("openai: HTTP 401"), "{text}");
    assert!(text.contains("Incorrect API key provided"), "{text}");
    for shown in [text, format!("{e:?}"), format!("{p:?}")] {
        assert!(!shown.contains("0123456789abcdef"), "key leaked: {shown}");
    }
    // 401 is not retried and does not fall back.
    assert_eq!(requests(&openai).await.len(), 1);
    anthropic.verify().await;
}
