//! Reads an Anthropic messages answer in OpenAI's terms: the stream of events (`message_start`
//! with the model and input usage, `content_block_start` of a `tool_use` block → a tool call's
//! id and name, `content_block_delta` text or `input_json_delta` arguments, `message_delta` with
//! the stop reason and output usage, `message_stop`, `error`), or one whole message from a server
//! that does not stream. Stop reasons become OpenAI's finish reasons.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use switchyard_shared::completion::ToolCallDelta;

use super::NAME;
use crate::providers::answer::{Answer, unreadable};
use crate::providers::http::{Decoder, Flow};
use crate::providers::{ProviderError, Sink, Usage};

#[derive(Deserialize)]
struct Whole {
    #[serde(default)]
    model: Option<String>,
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// A content block, whole (`content` of a message) or as it starts in a stream.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// The events of a streamed message, by their `type`; unknown ones (new API events) are skipped.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        delta: Option<MessageDeltaBody>,
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    MessageStop,
    Error {
        error: ApiError,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// `message_delta` counts are cumulative; input tokens appear there only in newer versions.
#[derive(Deserialize)]
struct DeltaUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The Anthropic answer decoder.
#[derive(Default)]
pub struct Reading {
    answer: Answer,
    /// The tool call of each `tool_use` block, by block index.
    calls: HashMap<u32, u32>,
}

/// OpenAI's finish reason for an Anthropic stop reason.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => "stop",
    }
}

impl Reading {
    /// A `tool_use` block starts call number `tool_calls()` (an `input` given whole, as in a
    /// whole message, goes out as its arguments).
    fn start_call(&mut self, block: u32, id: String, name: String, input: &Value, sink: &Sink) {
        let index = u32::try_from(self.answer.tool_calls()).unwrap_or(u32::MAX);
        self.calls.insert(block, index);
        let arguments = match input {
            Value::Object(o) if !o.is_empty() => input.to_string(),
            _ => String::new(),
        };
        let delta = ToolCallDelta {
            index,
            id: Some(id),
            name: Some(name),
            arguments,
        };
        self.answer.tool_call(delta, sink);
    }

    /// A call whose block ended without arguments takes none: `{}`, as OpenAI would send.
    fn end_block(&mut self, block: u32, sink: &Sink) {
        if let Some(&index) = self.calls.get(&block)
            && self.answer.arguments(index) == Some("")
        {
            self.answer.tool_call(arguments(index, "{}"), sink);
        }
    }

    fn stopped(&mut self, stop_reason: Option<&str>) {
        self.answer.finished = true;
        if let Some(r) = stop_reason {
            self.answer.finish_reason = Some(finish_reason(r).to_owned());
        }
    }
}

fn arguments(index: u32, text: &str) -> ToolCallDelta {
    ToolCallDelta {
        index,
        id: None,
        name: None,
        arguments: text.to_owned(),
    }
}

impl Decoder for Reading {
    fn event(&mut self, _event: &str, data: &str, sink: &Sink) -> Result<Flow, ProviderError> {
        match serde_json::from_str(data).map_err(|e| unreadable(NAME, "event", e))? {
            Event::MessageStart { message } => {
                self.answer.model = message.model;
                if let Some(u) = message.usage {
                    self.answer.usage.prompt_tokens = u.input_tokens;
                    self.answer.usage.completion_tokens = u.output_tokens;
                }
            }
            Event::ContentBlockStart {
                index,
                content_block: Block::ToolUse { id, name, input },
            } => self.start_call(index, id, name, &input, sink),
            Event::ContentBlockStart {
                content_block: Block::Text { text },
                ..
            } => self.answer.text(&text, sink),
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.answer.text(&text, sink),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(&call) = self.calls.get(&index) {
                        self.answer.tool_call(arguments(call, &partial_json), sink);
                    }
                }
                BlockDelta::Other => {}
            },
            Event::ContentBlockStop { index } => self.end_block(index, sink),
            Event::MessageDelta { delta, usage } => {
                self.stopped(delta.as_ref().and_then(|d| d.stop_reason.as_deref()));
                if let Some(u) = usage {
                    let usage = &mut self.answer.usage;
                    usage.prompt_tokens = u.input_tokens.unwrap_or(usage.prompt_tokens);
                    usage.completion_tokens = u.output_tokens.unwrap_or(usage.completion_tokens);
                }
            }
            Event::MessageStop => return Ok(Flow::Done),
            Event::Error { error } => return Err(stream_error(error)),
            Event::ContentBlockStart { .. } | Event::Other => {}
        }
        Ok(Flow::More)
    }

    fn whole(&mut self, answer: Value, sink: &Sink) -> Result<(), ProviderError> {
        let whole: Whole =
            serde_json::from_value(answer).map_err(|e| unreadable(NAME, "answer", e))?;
        for (i, block) in (0u32..).zip(whole.content) {
            match block {
                Block::Text { text } => self.answer.text(&text, sink),
                Block::ToolUse { id, name, input } => {
                    self.start_call(i, id, name, &input, sink);
                    self.end_block(i, sink);
                }
                Block::Other => {}
            }
        }
        self.answer.model = whole.model;
        self.answer.usage = whole.usage.map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
        });
        self.stopped(whole.stop_reason.as_deref());
        Ok(())
    }

    fn into_answer(self) -> Answer {
        self.answer
    }

    /// `message_delta` carries the stop reason: the answer is whole even without `message_stop`.
    fn is_complete(&self) -> bool {
        self.answer.finished
    }
}

/// An `error` event: overload and server trouble pass; anything else is the request's fault.
fn stream_error(error: ApiError) -> ProviderError {
    let message = format!(
        "error in the answer stream: {}: {}",
        error.kind, error.message
    );
    match error.kind.as_str() {
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error" => {
            ProviderError::Retryable {
                provider: NAME,
                message,
            }
        }
        _ => ProviderError::Permanent {
            provider: NAME,
            message,
        },
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
