//! The built-in `echo` provider: answers deterministically without a network. An `/api/chat`
//! conversation is answered visibly using its history (the turn number and the previous message
//! quoted), so multi-turn behaviour can be tested offline; a `/v1` body with the text of its last
//! user message. It streams its answer word by word, with `ECHO_TOKEN_DELAY_MS` between words so
//! a demo or a test can watch it arrive.

use std::time::Duration;

use serde_json::Value;
use switchyard_shared::completion::CompletionBody;
use switchyard_shared::config::WorkerConfig;

use super::{Backend, ChatRequest, ChatResponse, Conversation, ProviderError, Sink, Usage};

/// Deterministic, offline chat provider.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    model: String,
    token_delay: Duration,
}

impl Echo {
    /// An echo provider whose default model name is `model` (`LLM_MODEL`), sending its words
    /// without a pause.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            token_delay: Duration::ZERO,
        }
    }

    /// The echo provider `LLM_MODEL` and `ECHO_TOKEN_DELAY_MS` describe.
    pub fn from_config(cfg: &WorkerConfig) -> Self {
        Self {
            model: cfg.llm.llm_model.clone(),
            token_delay: cfg.llm.echo_token_delay,
        }
    }

    /// Answers `req`: a conversation as [`Echo::converse`], a `/v1` body as [`Echo::repeat`].
    pub fn answer(&self, model: &str, req: &ChatRequest) -> ChatResponse {
        match req {
            ChatRequest::Conversation(c) => self.converse(model, c),
            ChatRequest::Completion(b) => self.repeat(model, b),
        }
    }

    /// Echoes the last user message with the turn number and the previous one.
    pub fn converse(&self, model: &str, req: &Conversation) -> ChatResponse {
        let users: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .collect();
        let last = users.last().copied().unwrap_or("");
        let earlier = users.len().saturating_sub(1);
        let mut text = format!("echo: {last} (turn {}", earlier + 1);
        if let Some(prev) = users.iter().rev().nth(1) {
            text.push_str(&format!(
                "; {earlier} earlier turn(s), previous message: {prev:?}"
            ));
        }
        text.push(')');
        let count = |s: &str| s.split_whitespace().count() as u64;
        let prompt_tokens = req.system.as_deref().map_or(0, count)
            + req.messages.iter().map(|m| count(&m.content)).sum::<u64>();
        ChatResponse {
            usage: Usage {
                prompt_tokens,
                completion_tokens: count(&text),
            },
            text,
            model: model.to_owned(),
            provider: "echo",
            finish_reason: Some("stop".into()),
            tool_calls: Vec::new(),
        }
    }

    /// Answers a `/v1` body with the text of its last user message (a string, or its text parts
    /// joined).
    pub fn repeat(&self, model: &str, body: &CompletionBody) -> ChatResponse {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let text = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        let count = |s: &str| s.split_whitespace().count() as u64;
        let prompt_tokens = messages
            .iter()
            .map(|m| count(&content_text(m.get("content").unwrap_or(&Value::Null))))
            .sum();
        ChatResponse {
            usage: Usage {
                prompt_tokens,
                completion_tokens: count(&text),
            },
            text,
            model: model.to_owned(),
            provider: "echo",
            finish_reason: Some("stop".into()),
            tool_calls: Vec::new(),
        }
    }
}

/// A message's text: the string, or its `text` parts joined.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

impl Backend for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn complete(
        &self,
        model: &str,
        req: &ChatRequest,
        sink: &Sink,
    ) -> Result<ChatResponse, ProviderError> {
        let answer = self.answer(model, req);
        // Each word with the whitespace after it: the deltas add up to the answer exactly.
        for (i, word) in answer.text.split_inclusive(char::is_whitespace).enumerate() {
            if i > 0 && !self.token_delay.is_zero() {
                tokio::time::sleep(self.token_delay).await;
            }
            sink.send(word);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_shared::task::ChatMessage;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn first_turn_has_no_history() {
        let r = Echo::new("echo-1").converse(
            "echo-1",
            &Conversation {
                model: None,
                system: None,
                messages: vec![msg("user", "hello")],
            },
        );
        assert_eq!(r.text, "echo: hello (turn 1)");
        assert_eq!(r.usage.prompt_tokens, 1);
    }

    #[tokio::test]
    async fn the_answer_streams_word_by_word() {
        let (sink, mut deltas) = Sink::channel();
        let req = ChatRequest::Conversation(Conversation {
            model: None,
            system: None,
            messages: vec![msg("user", "hello  there")],
        });
        let r = Echo::new("echo-1")
            .complete("echo-1", &req, &sink)
            .await
            .expect("answer");
        drop(sink);
        let mut got = Vec::new();
        while let Some(d) = deltas.recv().await {
            match d {
                crate::providers::Piece::Text(t) => got.push(t),
                other => panic!("echo sends text only: {other:?}"),
            }
        }
        assert_eq!(
            got,
            ["echo: ", "hello ", " ", "there ", "(turn ", "1)"],
            "whitespace stays with the words"
        );
        assert_eq!(got.concat(), r.text);
    }

    #[test]
    fn later_turns_quote_the_previous_message() {
        let r = Echo::new("echo-1").converse(
            "echo-1",
            &Conversation {
                model: None,
                system: Some("be brief".into()),
                messages: vec![
                    msg("user", "my name is Ada"),
                    msg("assistant", "echo: my name is Ada (turn 1)"),
                    msg("user", "what is my name?"),
                ],
            },
        );
        assert_eq!(
            r.text,
            "echo: what is my name? (turn 2; 1 earlier turn(s), previous message: \"my name is Ada\")"
        );
    }

    #[test]
    fn a_completion_body_is_answered_with_its_last_user_text() {
        let body = json!({"model": "echo-1", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "say "}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}, {"type": "text", "text": "this"}]},
            {"role": "tool", "tool_call_id": "c", "content": "ignored"}
        ]});
        let r = Echo::new("echo-1").answer(
            "echo-2",
            &ChatRequest::Completion(body.as_object().cloned().expect("an object")),
        );
        assert_eq!(r.text, "say this");
        assert_eq!(r.model, "echo-2");
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage.completion_tokens, 2);
    }
}
