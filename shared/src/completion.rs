//! The `/v1` contract between the dispatcher and the worker: an OpenAI chat-completions request
//! as a `/v1` client sent it travels in a chat task's payload (`payload.completion`), and an
//! answer's tool calls come back in OpenAI's shape, whole in the result ([`ToolCall`]) and piece
//! by piece in the output stream ([`ToolCallDelta`]).
//!
//! The body is kept as the client's JSON object, so fields this build does not know still reach
//! an OpenAI-compatible provider unchanged; only what the dispatcher itself reads (`stream`,
//! `stream_options`, `detach`) is taken out before the task is queued. The worker always asks
//! its provider for a streamed answer with usage.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::task::PayloadError;

/// The request body of `POST /v1/chat/completions`, minus [`DISPATCHER_ONLY`].
pub type CompletionBody = Map<String, Value>;

/// Fields of a `/v1` body that the dispatcher reads and never queues.
pub const DISPATCHER_ONLY: &[&str] = &["stream", "stream_options", "detach"];

/// Message roles OpenAI's protocol knows.
pub const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// Checks what every consumer of a completion body relies on: a non-empty `model` string, a
/// non-empty `messages` list of objects with a known `role`, and `n` absent or 1. The error
/// names the parameter (`messages[2].role`), as OpenAI's `param` does.
pub fn validate(body: &CompletionBody) -> Result<(), PayloadError> {
    let bad = |param: &str, what: &str| PayloadError::Malformed(format!("{param}: {what}"));
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => {}
        Some(Value::String(_)) => return Err(bad("model", "must not be empty")),
        Some(_) => return Err(bad("model", "must be a string")),
        None => return Err(bad("model", "is required")),
    }
    let messages = match body.get("messages") {
        Some(Value::Array(ms)) if !ms.is_empty() => ms,
        Some(Value::Array(_)) => return Err(bad("messages", "must not be empty")),
        Some(_) => return Err(bad("messages", "must be an array")),
        None => return Err(bad("messages", "is required")),
    };
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(bad(&format!("messages[{i}]"), "must be an object"));
        };
        match m.get("role").and_then(Value::as_str) {
            Some(r) if ROLES.contains(&r) => {}
            _ => {
                return Err(bad(
                    &format!("messages[{i}].role"),
                    &format!("must be one of {}", ROLES.join(", ")),
                ));
            }
        }
    }
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(_) => return Err(bad("n", "only 1 is supported")),
    }
    Ok(())
}

/// The model a completion body names (after [`validate`], always present).
pub fn model(body: &CompletionBody) -> Option<&str> {
    body.get("model").and_then(Value::as_str)
}

/// A tool call of an answer, in OpenAI's shape
/// (`{"id", "type": "function", "function": {"name", "arguments"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which the client's `tool` message answers (`tool_call_id`).
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

/// The function a [`ToolCall`] calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Its arguments, a JSON document as text (as the model wrote it).
    pub arguments: String,
}

impl ToolCall {
    /// A function call.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// A piece of a tool call as it streams: the first piece of call `index` carries its `id` and
/// `name`, later ones more `arguments` text. Stored compactly in the output stream, sent to a
/// `/v1` client as one element of a chunk's `delta.tool_calls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer (0-based), as OpenAI's `index`.
    #[serde(rename = "i")]
    pub index: u32,
    /// The call's id, on its first piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name, on its first piece.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More of the arguments text (may be empty).
    #[serde(rename = "args", default)]
    pub arguments: String,
}

impl ToolCallDelta {
    /// The element of an OpenAI chunk's `delta.tool_calls`.
    pub fn to_openai(&self) -> Value {
        let mut function = Map::new();
        if let Some(name) = &self.name {
            function.insert("name".into(), json!(name));
        }
        function.insert("arguments".into(), json!(self.arguments));
        let mut v = Map::new();
        v.insert("index".into(), json!(self.index));
        if let Some(id) = &self.id {
            v.insert("id".into(), json!(id));
            v.insert("type".into(), json!("function"));
        }
        v.insert("function".into(), Value::Object(function));
        Value::Object(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CompletionBody {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_valid_body_passes_and_unknown_fields_are_kept() {
        let b = body(
            json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}],
            "some_future_field": {"x": 1}, "n": 1}),
        );
        assert_eq!(validate(&b), Ok(()));
        assert_eq!(model(&b), Some("gpt-x"));
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            (json!({"messages": [{"role": "user"}]}), "model"),
            (json!({"model": 3, "messages": [{"role": "user"}]}), "model"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"model": "m", "messages": [1]}), "messages[0]"),
            (
                json!({"model": "m", "messages": [{"role": "user"}, {"role": "robot"}]}),
                "messages[1].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user"}], "n": 2}),
                "n",
            ),
        ];
        for (b, param) in cases {
            let e = validate(&body(b.clone())).expect_err("invalid").to_string();
            assert!(e.starts_with(&format!("payload: {param}: ")), "{b}: {e}");
        }
    }

    #[test]
    fn tool_call_pieces_round_trip_and_render_as_openai_deltas() {
        let first = ToolCallDelta {
            index: 0,
            id: Some("call_1".into()),
            name: Some("get_weather".into()),
            arguments: String::new(),
        };
        let stored = serde_json::to_string(&first).expect("serialises");
        assert_eq!(
            stored,
            r#"{"i":0,"id":"call_1","n":"get_weather","args":""}"#
        );
        assert_eq!(
            serde_json::from_str::<ToolCallDelta>(&stored).expect("decodes"),
            first
        );
        assert_eq!(
            first.to_openai(),
            json!({"index": 0, "id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}})
        );
        let more = ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments: "{\"city\"".into(),
        };
        assert_eq!(
            more.to_openai(),
            json!({"index": 0, "function": {"arguments": "{\"city\""}})
        );
        let call = ToolCall::function("call_1", "get_weather", "{}");
        assert_eq!(
            serde_json::to_value(&call).expect("serialises"),
            json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}})
        );
    }
}
