//! The bytes [`crate::provider_server`] sends: the OpenAI chat completions and the Anthropic
//! messages wire formats, as one whole JSON answer or as SSE frames (`chat.completion.chunk`s
//! ending in `data: [DONE]`; `message_start` … `message_stop`), and each format's error event.

use serde_json::{Value, json};

/// Which API a request spoke, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `…/chat/completions`.
    OpenAi,
    /// `…/messages`.
    Anthropic,
}

impl Wire {
    /// The format a request path asks for.
    pub fn from_path(path: &str) -> Option<Self> {
        if path.ends_with("/chat/completions") {
            Some(Self::OpenAi)
        } else if path.ends_with("/messages") {
            Some(Self::Anthropic)
        } else {
            None
        }
    }

    /// The whole answer as one JSON document (a request without `stream: true`).
    pub fn whole(self, model: &str, text: &str, usage: (u64, u64)) -> Value {
        match self {
            Self::OpenAi => json!({
                "id": "chatcmpl-local",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
            }),
            Self::Anthropic => json!({
                "id": "msg_local",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": usage.0, "output_tokens": usage.1}
            }),
        }
    }

    /// Frames sent before the first token.
    pub fn opening(self, model: &str, usage: (u64, u64)) -> String {
        match self {
            Self::OpenAi => data(&json!({
                "id": "chatcmpl-local", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]
            })),
            Self::Anthropic => {
                let start = json!({
                    "type": "message_start",
                    "message": {"id": "msg_local", "type": "message", "role": "assistant", "model": model,
                        "content": [], "stop_reason": null, "usage": {"input_tokens": usage.0, "output_tokens": 1}}
                });
                let block = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
                format!(
                    "{}{}{}",
                    event("message_start", &start),
                    event("content_block_start", &block),
                    event("ping", &json!({"type": "ping"}))
                )
            }
        }
    }

    /// The frame carrying one token.
    pub fn token(self, model: &str, text: &str) -> String {
        match self {
            Self::OpenAi => data(&json!({
                "id": "chatcmpl-local", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
            })),
            Self::Anthropic => event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            ),
        }
    }

    /// Frames after the last token: finish reason, usage, end mark.
    pub fn closing(self, model: &str, usage: (u64, u64)) -> String {
        match self {
            Self::OpenAi => format!(
                "{}{}data: [DONE]\n\n",
                data(&json!({
                    "id": "chatcmpl-local", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]
                })),
                data(&json!({
                    "id": "chatcmpl-local", "object": "chat.completion.chunk", "model": model, "choices": [],
                    "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
                }))
            ),
            Self::Anthropic => format!(
                "{}{}{}",
                event(
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": 0})
                ),
                event(
                    "message_delta",
                    &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                        "usage": {"output_tokens": usage.1}})
                ),
                event("message_stop", &json!({"type": "message_stop"}))
            ),
        }
    }

    /// The format's mid-stream error event.
    pub fn error(self, message: &str) -> String {
        match self {
            Self::OpenAi => data(&json!({"error": {"message": message, "type": "server_error"}})),
            Self::Anthropic => event(
                "error",
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
            ),
        }
    }
}

/// An unnamed SSE event (the OpenAI framing).
fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// A named SSE event (the Anthropic framing).
fn event(name: &str, v: &Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}
