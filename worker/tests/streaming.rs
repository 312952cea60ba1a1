//! Streamed answers from the `openai` and `anthropic` providers against the local provider server
//! (real SSE over TCP): deltas arrive while the server is still sending, add up to the answer,
//! usage is read; a failure before the first token is retried and falls back, one after it ends
//! the call as a retryable failure without retry or fallback; dropping the call closes the
//! connection.

use std::time::{Duration, Instant};

use switchyard_shared::config::WorkerConfig;
use switchyard_shared::task::ChatMessage;
use switchyard_tests::{ProviderServer, Reply, poll_until};
use switchyard_worker::providers::{
    ChatRequest, Conversation, Piece, Provider, ProviderError, Sink,
};

const TOKEN_DELAY: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug)]
enum Format {
    OpenAi,
    Anthropic,
}

const FORMATS: [Format; 2] = [Format::OpenAi, Format::Anthropic];

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The variables pointing this provider at `server`.
    fn vars(self, server: &ProviderServer) -> Vec<(String, String)> {
        let pairs = match self {
            Self::OpenAi => vec![
                ("OPENAI_BASE_URL", format!("{}/v1", server.url())),
                ("OPENAI_MODEL", "gpt-local".to_owned()),
            ],
            Self::Anthropic => vec![
                ("ANTHROPIC_BASE_URL", server.url()),
                ("ANTHROPIC_API_KEY", "sk-ant-local".to_owned()),
                ("ANTHROPIC_MODEL", "claude-local".to_owned()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

fn provider(chain: &[(Format, &ProviderServer)], extra: &[(&str, &str)]) -> Provider {
    let names: Vec<&str> = chain.iter().map(|(f, _)| f.name()).collect();
    let mut vars = vec![
        ("LLM_PROVIDER".to_owned(), names.join(",")),
        ("LLM_RETRY_BASE_MS".to_owned(), "10".to_owned()),
    ];
    for (f, s) in chain {
        vars.extend(f.vars(s));
    }
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let cfg = WorkerConfig::from_vars(&vars).expect("valid test config");
    Provider::from_config(&cfg).expect("providers build")
}

fn question() -> ChatRequest {
    ChatRequest::Conversation(Conversation {
        model: None,
        system: Some("be brief".into()),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "count".into(),
        }],
    })
}

/// A text piece's text (these answers have no tool calls).
fn text(piece: Piece) -> String {
    match piece {
        Piece::Text(t) => t,
        Piece::ToolCall(d) => panic!("a text answer sent a tool call: {d:?}"),
    }
}

#[tokio::test]
async fn deltas_arrive_while_the_provider_still_sends_and_add_up_to_the_answer() {
    for format in FORMATS {
        let reply = Reply::tokens(15).delay(TOKEN_DELAY);
        let expected = reply.answer();
        let server = ProviderServer::start(reply).await;
        let p = provider(&[(format, &server)], &[]);
        let (sink, mut deltas) = Sink::channel();
        let call = tokio::spawn(async move { p.complete(&question(), &sink).await });

        let first = text(deltas.recv().await.expect("a first delta"));
        let served = server.requests();
        assert_eq!(first, "w0", "{format:?}");
        assert!(
            served[0].finished.is_none(),
            "{format:?}: the first delta came before the provider finished"
        );
        let answer = call.await.expect("joined").expect("answer");
        let mut got = first;
        while let Some(d) = deltas.recv().await {
            got.push_str(&text(d));
        }
        assert_eq!(got, expected, "{format:?}");
        assert_eq!(answer.text, expected, "{format:?}");
        assert_eq!(answer.provider, format.name());
        assert_eq!(
            (answer.usage.prompt_tokens, answer.usage.completion_tokens),
            (11, 15),
            "{format:?}: usage from the stream"
        );
        let body = &server.requests()[0].body;
        assert_eq!(body["stream"], true, "{format:?}");
        if let Format::OpenAi = format {
            assert_eq!(body["stream_options"]["include_usage"], true);
        }
    }
}

#[tokio::test]
async fn a_failure_after_the_first_token_is_retryable_and_neither_retried_nor_passed_on() {
    for format in FORMATS {
        for reply in [
            Reply::tokens(10).drop_after(3),
            Reply::tokens(10).error_after(3),
        ] {
            let failing = ProviderServer::start(reply.clone()).await;
            let fallback = ProviderServer::start(Reply::text("unused")).await;
            let other = match format {
                Format::OpenAi => Format::Anthropic,
                Format::Anthropic => Format::OpenAi,
            };
            let p = provider(&[(format, &failing), (other, &fallback)], &[]);
            let (sink, mut deltas) = Sink::channel();
            let e = p.complete(&question(), &sink).await.expect_err("broken");
            assert!(e.is_retryable(), "{format:?} {reply:?}: {e}");
            assert!(
                matches!(e, ProviderError::Retryable { provider, .. } if provider == format.name()),
                "{format:?}: {e:?}"
            );
            assert_eq!(failing.requests().len(), 1, "{format:?}: not retried");
            assert!(fallback.requests().is_empty(), "{format:?}: no fallback");
            drop(sink);
            let mut got = String::new();
            while let Some(d) = deltas.recv().await {
                got.push_str(&text(d));
            }
            assert_eq!(
                got, "w0 w1 w2",
                "{format:?}: the text before the failure went out"
            );
        }
    }
}

#[tokio::test]
async fn a_failure_before_the_first_token_is_retried_then_falls_back() {
    for format in FORMATS {
        let failing = ProviderServer::start(Reply::tokens(10).drop_after(0)).await;
        failing.push(Reply::status(
            503,
            serde_json::json!({"error": {"message": "busy"}}),
        ));
        let fallback_format = match format {
            Format::OpenAi => Format::Anthropic,
            Format::Anthropic => Format::OpenAi,
        };
        let fallback = ProviderServer::start(Reply::text("from the fallback")).await;
        let p = provider(
            &[(format, &failing), (fallback_format, &fallback)],
            &[("LLM_MAX_RETRIES", "2")],
        );
        let (sink, mut deltas) = Sink::channel();
        let answer = p.complete(&question(), &sink).await.expect("answer");
        assert_eq!(answer.provider, fallback_format.name());
        assert_eq!(answer.text, "from the fallback");
        assert_eq!(
            failing.requests().len(),
            3,
            "{format:?}: a call and two retries"
        );
        drop(sink);
        let mut got = String::new();
        while let Some(d) = deltas.recv().await {
            got.push_str(&text(d));
        }
        assert_eq!(
            got, "from the fallback",
            "{format:?}: only the answer's text"
        );
    }
}

#[tokio::test]
async fn dropping_the_call_closes_the_provider_connection_at_once() {
    for format in FORMATS {
        let server = ProviderServer::start(Reply::tokens(500).delay(TOKEN_DELAY)).await;
        let p = provider(&[(format, &server)], &[]);
        let (sink, mut deltas) = Sink::channel();
        let call = tokio::spawn(async move { p.complete(&question(), &sink).await });
        deltas.recv().await.expect("a first delta");
        call.abort();
        let dropped = Instant::now();
        let closed = poll_until(
            "the provider sees the close",
            Duration::from_secs(5),
            || async { server.requests()[0].closed_early },
        )
        .await;
        assert!(
            closed.saturating_duration_since(dropped) < Duration::from_secs(1),
            "{format:?}: closed {:?} after the drop",
            closed.saturating_duration_since(dropped)
        );
        assert!(server.tokens_served() < 500);
    }
}
