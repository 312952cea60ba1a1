//! Reads an OpenAI chat completions answer: the stream of `chat.completion.chunk` events
//! (`delta.content` text, `delta.tool_calls` pieces, `finish_reason`, the usage chunk, an
//! `error` some compatible servers send mid-stream, `[DONE]`), or one whole `chat.completion`
//! from a server that does not stream.

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
    choices: Vec<WholeChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WholeChoice {
    message: WholeMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WholeMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<WholeToolCall>,
}

#[derive(Deserialize)]
struct WholeToolCall {
    #[serde(default)]
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }
    }
}

/// One `chat.completion.chunk` (or an error some compatible servers send mid-stream).
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<ChunkToolCall>,
}

/// A list some compatible servers write as `null` when empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct ChunkToolCall {
    /// Absent from a few compatible servers, which send each call whole.
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

/// The OpenAI answer decoder.
#[derive(Default)]
pub struct Reading {
    answer: Answer,
}

impl Reading {
    /// A piece of a tool call. Without an `index`, a piece with an id starts the next call and
    /// one without continues the last.
    fn tool_call(&mut self, tc: ChunkToolCall, sink: &Sink) {
        let started = u32::try_from(self.answer.tool_calls()).unwrap_or(u32::MAX);
        let index = tc.index.unwrap_or(match tc.id {
            Some(_) => started,
            None => started.saturating_sub(1),
        });
        let (name, arguments) = tc.function.map_or((None, None), |f| (f.name, f.arguments));
        self.answer.tool_call(
            ToolCallDelta {
                index,
                id: tc.id.filter(|id| !id.is_empty()),
                name: name.filter(|n| !n.is_empty()),
                arguments: arguments.unwrap_or_default(),
            },
            sink,
        );
    }
}

impl Decoder for Reading {
    fn event(&mut self, _event: &str, data: &str, sink: &Sink) -> Result<Flow, ProviderError> {
        if data.trim() == "[DONE]" {
            return Ok(Flow::Done);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| unreadable(NAME, "chunk", e))?;
        if let Some(error) = chunk.error {
            return Err(ProviderError::Retryable {
                provider: NAME,
                message: format!("error in the answer stream: {}", error_text(&error)),
            });
        }
        if chunk.model.is_some() {
            self.answer.model = chunk.model;
        }
        if let Some(u) = chunk.usage {
            self.answer.usage = u.into();
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content {
                    self.answer.text(&text, sink);
                }
                for tc in delta.tool_calls {
                    self.tool_call(tc, sink);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.answer.finish_reason = Some(reason);
                self.answer.finished = true;
            }
        }
        Ok(Flow::More)
    }

    fn whole(&mut self, answer: Value, sink: &Sink) -> Result<(), ProviderError> {
        let whole: Whole =
            serde_json::from_value(answer).map_err(|e| unreadable(NAME, "answer", e))?;
        let choice = whole
            .choices
            .into_iter()
            .next()
            .ok_or(ProviderError::Permanent {
                provider: NAME,
                message: "the answer holds no choice".into(),
            })?;
        self.answer
            .text(choice.message.content.as_deref().unwrap_or(""), sink);
        for (index, call) in choice.message.tool_calls.into_iter().enumerate() {
            self.tool_call(
                ChunkToolCall {
                    index: u32::try_from(index).ok(),
                    id: Some(call.id),
                    function: Some(call.function),
                },
                sink,
            );
        }
        self.answer.model = whole.model;
        self.answer.usage = whole.usage.map(Usage::from).unwrap_or_default();
        self.answer.finish_reason = choice.finish_reason;
        self.answer.finished = true;
        Ok(())
    }

    fn into_answer(self) -> Answer {
        self.answer
    }

    /// Some compatible servers close without `[DONE]`; a finish reason says the answer is whole.
    fn is_complete(&self) -> bool {
        self.answer.finished
    }
}

/// `error.message`, or the error as JSON.
fn error_text(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::completion::ToolCall;

    fn read(events: &[&str]) -> Answer {
        let mut r = Reading::default();
        let sink = Sink::discard();
        for e in events {
            if r.event("message", e, &sink).expect("a valid event") == Flow::Done {
                break;
            }
        }
        r.into_answer()
    }

    #[test]
    fn streamed_tool_calls_assemble_with_finish_reason_and_usage() {
        let a = read(&[
            r#"{"model":"gpt-x-1","choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}"#,
            "[DONE]",
        ]);
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(a.usage.prompt_tokens, 20);
        assert_eq!(a.usage.completion_tokens, 9);
        let r = a.into_response(NAME, "asked");
        assert_eq!(r.model, "gpt-x-1");
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall::function("call_a", "get_weather", r#"{"city":"Paris"}"#),
                ToolCall::function("call_b", "get_time", "{}"),
            ]
        );
        assert_eq!(r.text, "");
    }

    #[test]
    fn null_lists_read_as_empty() {
        let a = read(&[
            r#"{"choices":[{"delta":{"content":"hi","tool_calls":null},"finish_reason":null}]}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":null},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(a.text, "hi");
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn calls_without_an_index_are_numbered_in_order() {
        let a = read(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"c1","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"c2","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        ]);
        let r = a.into_response(NAME, "m");
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall::function("c1", "f", r#"{"a":1}"#),
                ToolCall::function("c2", "g", "{}")
            ]
        );
    }

    #[test]
    fn a_whole_answer_carries_content_tool_calls_and_finish_reason() {
        let mut r = Reading::default();
        r.whole(
            serde_json::json!({"model": "m-1", "choices": [{"index": 0, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":2}"}}]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
            &Sink::discard(),
        )
        .expect("a valid answer");
        let a = r.into_answer();
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(a.usage.completion_tokens, 4);
        let resp = a.into_response(NAME, "m");
        assert_eq!(
            resp.tool_calls,
            vec![ToolCall::function("call_1", "f", "{\"x\":2}")]
        );
        let mut r = Reading::default();
        let e = r
            .whole(serde_json::json!({"choices": []}), &Sink::discard())
            .expect_err("no choice");
        assert!(e.to_string().contains("no choice"), "{e}");
    }
}
