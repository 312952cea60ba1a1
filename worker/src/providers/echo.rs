//! The built-in `echo` provider: answers deterministically without a network, and visibly uses
//! the conversation history (it reports the turn number and quotes the previous message), so
//! multi-turn behaviour can be tested offline.

use super::{Backend, ChatRequest, ChatResponse, ProviderError, Usage};

/// Deterministic, offline chat provider.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    model: String,
}

impl Echo {
    /// An echo provider whose default model name is `model` (`LLM_MODEL`).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
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
    ) -> Result<ChatResponse, ProviderError> {
        Ok(self.answer(model, req))
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
