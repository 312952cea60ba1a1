//! The built-in `echo` provider: answers deterministically without a network, and visibly uses
//! the conversation history (it reports the turn number and quotes the previous message), so
//! multi-turn behaviour can be tested offline. It streams its answer word by word, with
//! `ECHO_TOKEN_DELAY_MS` between words so a demo or a test can watch it arrive.

use std::time::Duration;

use switchyard_shared::config::WorkerConfig;

use super::{Backend, ChatRequest, ChatResponse, ProviderError, Sink, Usage};

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

    /// Answers `req`: echoes the last user message with the turn number and the previous one.
    pub fn answer(&self, model: &str, req: &ChatRequest) -> ChatResponse {
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
        }
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
    use switchyard_shared::task::ChatMessage;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn first_turn_has_no_history() {
        let r = Echo::new("echo-1").answer(
            "echo-1",
            &ChatRequest {
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
        let req = ChatRequest {
            model: None,
            system: None,
            messages: vec![msg("user", "hello  there")],
        };
        let r = Echo::new("echo-1")
            .complete("echo-1", &req, &sink)
            .await
            .expect("answer");
        drop(sink);
        let mut got = Vec::new();
        while let Some(d) = deltas.recv().await {
            got.push(d);
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
        let r = Echo::new("echo-1").answer(
            "echo-1",
            &ChatRequest {
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
}
