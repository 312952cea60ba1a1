//! The bytes [`crate::provider_server`] sends: the OpenAI chat completions and the Anthropic
//! messages wire formats, as one whole JSON answer or as SSE frames (`chat.completion.chunk`s
//! ending in `data: [DONE]`; `message_start` … `message_stop`), text and tool calls (OpenAI's
//! `delta.tool_calls`; Anthropic's `tool_use` blocks with `input_json_delta`s), and each format's
//! error event.

use serde_json::{Value, json};

use crate::provider_reply::{Piece, Reply};

/// Which API a request spoke, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `…/chat/completions`.
    OpenAi,
    /// `…/messages`.
    Anthropic,
}

/// A reply of one text and no tool calls (the shape of the text-only helpers).
fn text_reply(text: &str, usage: (u64, u64)) -> Reply {
    let mut r = Reply::tokens(0);
    r.tokens = vec![text.to_owned()];
    r.usage = usage;
    r
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

    /// The finish reason `reply` ends with in this format.
    pub fn finish_reason(self, reply: &Reply) -> String {
        if let Some(f) = &reply.finish {
            return f.clone();
        }
        let calls = !reply.tool_calls.is_empty();
        match (self, calls) {
            (Self::OpenAi, false) => "stop",
            (Self::OpenAi, true) => "tool_calls",
            (Self::Anthropic, false) => "end_turn",
            (Self::Anthropic, true) => "tool_use",
        }
        .to_owned()
    }

    /// A text answer as one JSON document (a request without `stream: true`).
    pub fn whole(self, model: &str, text: &str, usage: (u64, u64)) -> Value {
        self.whole_reply(model, &text_reply(text, usage))
    }

    /// `reply` as one JSON document, with its tool calls.
    pub fn whole_reply(self, model: &str, reply: &Reply) -> Value {
        let text = reply.answer();
        let usage = reply.usage;
        let finish = self.finish_reason(reply);
        match self {
            Self::OpenAi => {
                let mut message = json!({"role": "assistant", "content": text});
                if !reply.tool_calls.is_empty() {
                    let calls: Vec<Value> = reply
                        .tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments()}})
                        })
                        .collect();
                    message["tool_calls"] = Value::Array(calls);
                    if text.is_empty() {
                        message["content"] = Value::Null;
                    }
                }
                json!({
                    "id": "chatcmpl-local",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
                })
            }
            Self::Anthropic => {
                let mut content = Vec::new();
                if has_text_block(reply) {
                    content.push(json!({"type": "text", "text": text}));
                }
                content.extend(reply.tool_calls.iter().map(
                    |c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.input()}),
                ));
                json!({
                    "id": "msg_local",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": finish,
                    "usage": {"input_tokens": usage.0, "output_tokens": usage.1}
                })
            }
        }
    }

    /// Frames sent before the first token of a text answer.
    pub fn opening(self, model: &str, usage: (u64, u64)) -> String {
        self.opening_for(model, &text_reply("", usage))
    }

    /// Frames sent before the first piece of `reply`.
    pub fn opening_for(self, model: &str, reply: &Reply) -> String {
        match self {
            Self::OpenAi => chunk(model, json!({"role": "assistant", "content": ""}), None),
            Self::Anthropic => {
                let start = json!({
                    "type": "message_start",
                    "message": {"id": "msg_local", "type": "message", "role": "assistant", "model": model,
                        "content": [], "stop_reason": null, "usage": {"input_tokens": reply.usage.0, "output_tokens": 1}}
                });
                let mut out = event("message_start", &start);
                if has_text_block(reply) {
                    let block = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
                    out.push_str(&event("content_block_start", &block));
                }
                out.push_str(&event("ping", &json!({"type": "ping"})));
                out
            }
        }
    }

    /// The frame carrying one text token.
    pub fn token(self, model: &str, text: &str) -> String {
        self.piece(model, &text_reply("", (0, 0)), Piece::Text(text))
    }

    /// The frames carrying one piece of `reply` (for Anthropic, a call's start also closes the
    /// block before it).
    pub fn piece(self, model: &str, reply: &Reply, piece: Piece<'_>) -> String {
        let first_call_block = usize::from(has_text_block(reply));
        match (self, piece) {
            (Self::OpenAi, Piece::Text(text)) => chunk(model, json!({"content": text}), None),
            (Self::OpenAi, Piece::CallStart { index, id, name }) => chunk(
                model,
                json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                None,
            ),
            (Self::OpenAi, Piece::CallArguments { index, args }) => chunk(
                model,
                json!({"tool_calls": [{"index": index, "function": {"arguments": args}}]}),
                None,
            ),
            (Self::Anthropic, Piece::Text(text)) => event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            ),
            (Self::Anthropic, Piece::CallStart { index, id, name }) => {
                let block = first_call_block + index;
                let mut out = String::new();
                if block > 0 {
                    out.push_str(&block_stop(block - 1));
                }
                out.push_str(&event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": block,
                        "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                ));
                out
            }
            (Self::Anthropic, Piece::CallArguments { index, args }) => event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": first_call_block + index,
                    "delta": {"type": "input_json_delta", "partial_json": args}}),
            ),
        }
    }

    /// Frames after the last token of a text answer: finish reason, usage, end mark.
    pub fn closing(self, model: &str, usage: (u64, u64)) -> String {
        self.closing_for(model, &text_reply("", usage))
    }

    /// Frames after the last piece of `reply`: finish reason, usage, end mark.
    pub fn closing_for(self, model: &str, reply: &Reply) -> String {
        let usage = reply.usage;
        let finish = self.finish_reason(reply);
        match self {
            Self::OpenAi => format!(
                "{}{}data: [DONE]\n\n",
                chunk(model, json!({}), Some(&finish)),
                data(&json!({
                    "id": "chatcmpl-local", "object": "chat.completion.chunk", "model": model, "choices": [],
                    "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
                }))
            ),
            Self::Anthropic => {
                let last_block =
                    (usize::from(has_text_block(reply)) + reply.tool_calls.len()).saturating_sub(1);
                format!(
                    "{}{}{}",
                    block_stop(last_block),
                    event(
                        "message_delta",
                        &json!({"type": "message_delta", "delta": {"stop_reason": finish, "stop_sequence": null},
                            "usage": {"output_tokens": usage.1}})
                    ),
                    event("message_stop", &json!({"type": "message_stop"}))
                )
            }
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

/// Whether an Anthropic answer opens with a text block: when it has text, or nothing else.
fn has_text_block(reply: &Reply) -> bool {
    !reply.tokens.is_empty() || reply.tool_calls.is_empty()
}

/// One `chat.completion.chunk` with this delta.
fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    data(&json!({
        "id": "chatcmpl-local", "object": "chat.completion.chunk", "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    }))
}

/// Anthropic's end of content block `index`.
fn block_stop(index: usize) -> String {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// An unnamed SSE event (the OpenAI framing).
fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// A named SSE event (the Anthropic framing).
fn event(name: &str, v: &Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}
