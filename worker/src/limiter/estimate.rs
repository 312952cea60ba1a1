//! What a provider call is expected to cost before it is made, read from the request body as it
//! goes to the provider (OpenAI's or Anthropic's format): the prompt at four characters a token
//! plus a few tokens a message (the rule of thumb both vendors give for English), and the
//! completion's cap (`max_tokens` / `max_completion_tokens`). The shared budget calibrates both
//! halves from what providers report (`limit_settle.lua`), so the rule of thumb only has to be
//! proportional to the truth.

use serde_json::Value;

/// Characters per token of the rule of thumb.
const CHARS_PER_TOKEN: usize = 4;
/// Tokens each message costs beyond its text (role and framing).
const TOKENS_PER_MESSAGE: u64 = 4;

/// A call's expected cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Prompt tokens, by the rule of thumb (uncalibrated).
    pub prompt: u64,
    /// Most completion tokens the call may produce; 0 = no cap.
    pub completion_cap: u64,
}

impl Estimate {
    /// The estimate of a request body in either provider format.
    pub fn of(body: &Value) -> Self {
        let mut chars = body.get("system").map_or(0, text_chars);
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for m in messages {
            chars += m.get("content").map_or(0, text_chars);
            // An assistant turn's tool calls and tools' definitions are prompt too.
            chars += m.get("tool_calls").map_or(0, json_chars);
        }
        chars += body.get("tools").map_or(0, json_chars);
        let prompt =
            chars.div_ceil(CHARS_PER_TOKEN) as u64 + TOKENS_PER_MESSAGE * messages.len() as u64;
        let completion_cap = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|f| body.get(*f).and_then(Value::as_u64))
            .unwrap_or(0);
        Self {
            prompt,
            completion_cap,
        }
    }
}

/// Characters of text in a message's content: a string, or parts / blocks with `text` (and a
/// tool result's own `content`).
fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(parts) => parts.iter().map(text_chars).sum(),
        Value::Object(o) => {
            o.get("text").map_or(0, text_chars)
                + o.get("content").map_or(0, text_chars)
                + o.get("input").map_or(0, json_chars)
        }
        _ => 0,
    }
}

fn json_chars(v: &Value) -> usize {
    v.to_string().chars().count()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prompts_count_four_characters_a_token_plus_each_message() {
        let openai = json!({"model": "m", "max_tokens": 50, "messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]},
        ]});
        assert_eq!(
            Estimate::of(&openai),
            Estimate {
                prompt: 3 + 8,
                completion_cap: 50
            }
        );
        let anthropic = json!({"model": "m", "system": "abcde", "max_tokens": 9, "messages": [
            {"role": "user", "content": "abc"},
        ]});
        assert_eq!(
            Estimate::of(&anthropic),
            Estimate {
                prompt: 2 + 4,
                completion_cap: 9
            }
        );
        let v1 = json!({"max_completion_tokens": 7, "max_tokens": 3, "messages": []});
        assert_eq!(Estimate::of(&v1).completion_cap, 7);
        assert_eq!(Estimate::of(&json!({})), Estimate::default());
    }
}
