//! The result of a chat task, as the worker stores it in the task record's `result` and as the
//! dispatcher's `/api/chat` and the worker's LLM metrics read it back: one struct, written and
//! decoded with serde, so the three never disagree on a field name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat task's result: `{response, model, provider, session_id, usage}` (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatResult {
    /// The assistant's answer.
    pub response: String,
    /// Model that answered.
    pub model: String,
    /// Provider that answered (`echo`, `openai`, `anthropic`).
    pub provider: String,
    /// Session the turn was appended to; `null` for a conversation given whole.
    pub session_id: Option<String>,
    /// Tokens used.
    pub usage: ChatUsage,
    /// Why the answer ended, in OpenAI's words (`stop`, `length`, `tool_calls`,
    /// `content_filter`); absent in results written before `/v1` existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The tool calls the model asked for (`/v1` requests with `tools`), in OpenAI's shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<crate::completion::ToolCall>,
}

/// Token counts of a chat call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    /// Tokens sent.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

/// Why a stored result is not a chat result.
#[derive(Debug, thiserror::Error)]
#[error("not a chat result: {0}")]
pub struct ChatResultError(#[from] serde_json::Error);

impl ChatResult {
    /// The JSON stored as the task's result.
    pub fn to_value(&self) -> Value {
        // A struct of strings and integers always serialises; the fallback is unreachable.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Decodes a stored result.
    pub fn decode(result: &Value) -> Result<Self, ChatResultError> {
        Ok(Self::deserialize(result)?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_result_is_stored_with_the_documented_fields_and_decodes_back() {
        let r = ChatResult {
            response: "hi".into(),
            model: "m".into(),
            provider: "echo".into(),
            session_id: None,
            usage: ChatUsage {
                prompt_tokens: 3,
                completion_tokens: 1,
            },
            finish_reason: None,
            tool_calls: Vec::new(),
        };
        let v = r.to_value();
        assert_eq!(
            v,
            json!({
                "response": "hi", "model": "m", "provider": "echo", "session_id": null,
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            })
        );
        assert_eq!(ChatResult::decode(&v).expect("decodes"), r);
    }

    #[test]
    fn a_tool_result_is_not_a_chat_result() {
        let e = ChatResult::decode(&json!({"output": {}})).expect_err("not chat");
        assert!(e.to_string().contains("response"), "{e}");
    }
}
