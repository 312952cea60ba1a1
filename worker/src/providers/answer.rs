//! A remote provider's answer as it is read, whatever its wire format: text and tool-call pieces
//! are handed to the [`Sink`] as they arrive and kept, whole tool calls assembled by index, with
//! the model, token usage and finish reason (in OpenAI's words) once known. Each format's
//! decoder feeds one; [`Answer::into_response`] makes the [`ChatResponse`].

use std::collections::BTreeMap;

use switchyard_shared::completion::{ToolCall, ToolCallDelta};

use super::{ChatResponse, ProviderError, Sink, Usage};

/// The answer read so far.
#[derive(Debug, Default)]
pub struct Answer {
    /// The text.
    pub text: String,
    /// The model that answered, when the provider said.
    pub model: Option<String>,
    /// Tokens used (zero when not reported).
    pub usage: Usage,
    /// Why the answer ended, in OpenAI's words.
    pub finish_reason: Option<String>,
    /// Whether the provider said the answer is complete (a finish reason, a stop event).
    pub finished: bool,
    /// Tool calls by their index.
    calls: BTreeMap<u32, ToolCall>,
}

impl Answer {
    /// More text: kept and handed on.
    pub fn text(&mut self, text: &str, sink: &Sink) {
        sink.send(text);
        self.text.push_str(text);
    }

    /// A piece of a tool call: added to its call and handed on.
    pub fn tool_call(&mut self, delta: ToolCallDelta, sink: &Sink) {
        let call = self
            .calls
            .entry(delta.index)
            .or_insert_with(|| ToolCall::function("", "", ""));
        if let Some(id) = &delta.id {
            id.clone_into(&mut call.id);
        }
        if let Some(name) = &delta.name {
            name.clone_into(&mut call.function.name);
        }
        call.function.arguments.push_str(&delta.arguments);
        sink.send_tool_call(delta);
    }

    /// How many tool calls started so far.
    pub fn tool_calls(&self) -> usize {
        self.calls.len()
    }

    /// The arguments of call `index` so far.
    pub fn arguments(&self, index: u32) -> Option<&str> {
        self.calls
            .get(&index)
            .map(|c| c.function.arguments.as_str())
    }

    /// The response of `provider`, which was asked for `model`.
    pub fn into_response(self, provider: &'static str, model: &str) -> ChatResponse {
        ChatResponse {
            text: self.text,
            model: self.model.unwrap_or_else(|| model.to_owned()),
            provider,
            usage: self.usage,
            finish_reason: self.finish_reason,
            tool_calls: self.calls.into_values().collect(),
        }
    }
}

/// An answer whose JSON does not have the documented shape: the same every time.
pub fn unreadable(provider: &'static str, what: &str, e: serde_json::Error) -> ProviderError {
    ProviderError::Permanent {
        provider,
        message: format!("unexpected {what} shape: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::sink::Piece;

    #[tokio::test]
    async fn tool_call_pieces_assemble_by_index_and_go_to_the_sink() {
        let (sink, mut pieces) = Sink::channel();
        let mut a = Answer::default();
        let piece = |index, id: Option<&str>, name: Option<&str>, args: &str| ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        };
        a.text("hi", &sink);
        a.tool_call(piece(1, Some("c2"), Some("g"), ""), &sink);
        a.tool_call(piece(0, Some("c1"), Some("f"), "{\"x\""), &sink);
        a.tool_call(piece(0, None, None, ":1}"), &sink);
        a.tool_call(piece(1, None, None, "{}"), &sink);
        assert_eq!(a.tool_calls(), 2);
        assert_eq!(a.arguments(0), Some("{\"x\":1}"));
        let r = a.into_response("openai", "asked");
        assert_eq!(r.model, "asked");
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall::function("c1", "f", "{\"x\":1}"),
                ToolCall::function("c2", "g", "{}")
            ]
        );
        drop(sink);
        let mut got = Vec::new();
        while let Some(p) = pieces.recv().await {
            got.push(p);
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], Piece::Text("hi".into()));
        assert_eq!(got[4], Piece::ToolCall(piece(1, None, None, "{}")));
    }
}
