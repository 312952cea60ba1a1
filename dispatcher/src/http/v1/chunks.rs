//! A streamed `/v1` answer: the task's output entries as OpenAI's `chat.completion.chunk`s. The
//! role first, then content and tool-call deltas as the worker writes them, then the chunk with
//! the finish reason (from the result), the usage chunk when the client asked for it, and
//! `data: [DONE]`; every chunk with the same `id`, `created` and `model`.
//!
//! OpenAI's protocol cannot take text back: a new attempt (its worker died, or a retry) that
//! begins after content was sent ends the stream with OpenAI's streaming error shape
//! (`data: {"error": {…}}`, which the SDKs raise), and the task is cancelled. A new attempt
//! before any content simply goes on in the same stream (the role chunk is not content).

use axum::response::sse::Event;
use serde_json::{Value, json};
use switchyard_shared::task::Task;

use super::answer::{self, Ids};
use super::error::V1Error;
use crate::replay::OutputEvent;

/// One SSE message of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// A chunk (or an error object) as the event's data.
    Json(Value),
    /// `data: [DONE]`.
    Done,
}

impl Piece {
    /// The SSE event.
    pub fn event(self) -> Event {
        match self {
            Self::Json(v) => Event::default().data(v.to_string()),
            Self::Done => Event::default().data("[DONE]"),
        }
    }
}

/// Whether a stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More may follow.
    Continue,
    /// The stream ends here.
    Stop,
}

/// The state of one streamed completion.
#[derive(Debug, Clone)]
pub struct Chunks {
    ids: Ids,
    model: String,
    include_usage: bool,
    /// Text sent so far (to send what the output stream missed, from the result, at the end).
    text: String,
    content_sent: bool,
    tool_calls_sent: bool,
}

impl Chunks {
    /// A stream of task `task_id` for `model` (as the client asked for it: the chunks go out
    /// before the answer says which model answered).
    pub fn new(task_id: &str, model: &str, include_usage: bool) -> Self {
        Self {
            ids: Ids::of(task_id),
            model: model.to_owned(),
            include_usage,
            text: String::new(),
            content_sent: false,
            tool_calls_sent: false,
        }
    }

    /// Whether content (text or tool calls) went out.
    pub fn content_sent(&self) -> bool {
        self.content_sent
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Piece {
        let mut c = json!({
            "id": self.ids.id,
            "object": "chat.completion.chunk",
            "created": self.ids.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        Piece::Json(c)
    }

    /// The first chunk: the role, with empty content.
    pub fn role(&self) -> Piece {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    fn text(&mut self, text: &str, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        out.push(self.chunk(json!({ "content": text }), None));
        self.text.push_str(text);
        self.content_sent = true;
    }

    /// Renders one event of the output stream into `out`.
    pub fn output(&mut self, ev: OutputEvent, out: &mut Vec<Piece>) -> Flow {
        match ev {
            OutputEvent::Delta { text, .. } => self.text(&text, out),
            OutputEvent::ToolCalls { calls, .. } => {
                let calls: Vec<Value> = calls.iter().map(|c| c.to_openai()).collect();
                out.push(self.chunk(json!({ "tool_calls": calls }), None));
                self.content_sent = true;
                self.tool_calls_sent = true;
            }
            OutputEvent::Restart { attempt } => {
                out.push(error(&V1Error::provider(format!(
                    "the answer broke off after it had begun (its worker or provider failed, and \
                     attempt {attempt} would start it over); the request was cancelled"
                ))));
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// The task `task_id` ended as `task` (`None`: its record expired): the rest of the answer
    /// and the end of the stream, or its error.
    pub fn end(&mut self, task: Option<&Task>, task_id: &str, out: &mut Vec<Piece>) {
        let Some(task) = task else {
            out.push(error(&V1Error::provider(format!(
                "task {task_id} expired before its end was read"
            ))));
            return;
        };
        let r = match answer::result(task) {
            Ok(r) => r,
            Err(e) => {
                out.push(error(&e));
                return;
            }
        };
        // What the output stream missed (a worker that could not write it, a provider that
        // answered whole) comes from the result.
        if let Some(rest) = r.response.strip_prefix(self.text.as_str()) {
            self.text(rest, out);
        }
        if !self.tool_calls_sent && !r.tool_calls.is_empty() {
            let calls: Vec<Value> = r
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut v = json!(c);
                    v["index"] = json!(i);
                    v
                })
                .collect();
            out.push(self.chunk(json!({ "tool_calls": calls }), None));
        }
        out.push(self.chunk(json!({}), Some(&answer::finish_reason(&r))));
        if self.include_usage {
            out.push(Piece::Json(json!({
                "id": self.ids.id,
                "object": "chat.completion.chunk",
                "created": self.ids.created,
                "model": self.model,
                "system_fingerprint": null,
                "choices": [],
                "usage": answer::usage(&r),
            })));
        }
        out.push(Piece::Done);
    }

    /// The error that ends a stream no worker began in time.
    pub fn timed_out(&self) -> Piece {
        error(&V1Error::timeout(
            "no worker began the answer within WORKER_TIMEOUT_MS; the request was cancelled",
        ))
    }
}

/// OpenAI's streaming error shape: the error object as a chunk's data.
fn error(e: &V1Error) -> Piece {
    Piece::Json(e.body())
}

#[cfg(test)]
mod tests {
    use switchyard_shared::chat::{ChatResult, ChatUsage};
    use switchyard_shared::completion::{ToolCall, ToolCallDelta};
    use switchyard_shared::record::Task;

    use super::*;

    fn first_call() -> OutputEvent {
        OutputEvent::ToolCalls {
            attempt: 1,
            calls: vec![ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("f".into()),
                arguments: String::new(),
            }],
        }
    }

    fn task(state: &str, result: Option<ChatResult>, error: Option<&str>) -> Task {
        serde_json::from_value(json!({
            "id": "chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y5", "kind": "chat", "queue": "chat",
            "payload": {}, "state": state, "attempts": 1, "max_attempts": 3,
            "timeout_ms": 1000, "created_at": "2026-01-01T00:00:00Z",
            "result": result.map(|r| r.to_value()), "error": error,
        }))
        .expect("a task record")
    }

    fn answer(response: &str, calls: Vec<ToolCall>) -> ChatResult {
        ChatResult {
            response: response.into(),
            model: "m-2025".into(),
            provider: "openai".into(),
            session_id: None,
            usage: ChatUsage {
                prompt_tokens: 5,
                completion_tokens: 2,
            },
            finish_reason: None,
            tool_calls: calls,
        }
    }

    fn json(p: &Piece) -> &Value {
        match p {
            Piece::Json(v) => v,
            Piece::Done => panic!("[DONE] where a chunk was expected"),
        }
    }

    #[test]
    fn every_chunk_shares_id_created_and_model() {
        let mut c = Chunks::new("chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y5", "gpt-x", true);
        let mut out = vec![c.role()];
        c.output(
            OutputEvent::Delta {
                attempt: 1,
                text: "Hel".into(),
            },
            &mut out,
        );
        c.output(first_call(), &mut out);
        c.end(
            Some(&task(
                "succeeded",
                Some(answer("Hello", vec![ToolCall::function("call_1", "f", "")])),
                None,
            )),
            "x",
            &mut out,
        );
        assert_eq!(out.last(), Some(&Piece::Done));
        let chunks: Vec<&Value> = out[..out.len() - 1].iter().map(json).collect();
        for ch in &chunks {
            assert_eq!(ch["id"], "chatcmpl-chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y5");
            assert_eq!(ch["object"], "chat.completion.chunk");
            assert_eq!(ch["model"], "gpt-x");
            assert_eq!(ch["created"], chunks[0]["created"]);
        }
        let deltas: Vec<&Value> = chunks[..chunks.len() - 1]
            .iter()
            .map(|c| &c["choices"][0]["delta"])
            .collect();
        assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
        assert_eq!(deltas[1], &json!({"content": "Hel"}));
        assert_eq!(deltas[2]["tool_calls"][0]["id"], "call_1");
        // The rest of the text the output stream missed, from the result.
        assert_eq!(deltas[3], &json!({"content": "lo"}));
        assert_eq!(deltas[4], &json!({}));
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
        let usage = chunks.last().expect("usage chunk");
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
    }

    #[test]
    fn a_restart_after_content_ends_with_an_error_and_before_content_is_silent() {
        let mut c = Chunks::new("chat-x", "m", false);
        let mut out = vec![];
        assert!(!c.content_sent());
        c.output(
            OutputEvent::Delta {
                attempt: 1,
                text: String::new(),
            },
            &mut out,
        );
        assert!(
            out.is_empty() && !c.content_sent(),
            "an empty delta is not content"
        );
        assert_eq!(c.output(first_call(), &mut out), Flow::Continue);
        assert!(c.content_sent());
        assert_eq!(
            c.output(OutputEvent::Restart { attempt: 2 }, &mut out),
            Flow::Stop
        );
        assert_eq!(json(&out[1])["error"]["code"], "provider_error");
    }

    #[test]
    fn a_failed_task_ends_the_stream_with_its_error_and_whole_tool_calls_are_sent() {
        let mut c = Chunks::new("chat-x", "m", false);
        let mut out = vec![];
        c.end(
            Some(&task("failed", None, Some("openai: HTTP 400: no"))),
            "x",
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(json(&out[0])["error"]["type"], "invalid_request_error");
        assert!(
            json(&out[0])["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("HTTP 400"))
        );
        let mut c = Chunks::new("chat-x", "m", false);
        let mut out = vec![];
        let call = ToolCall::function("call_9", "f", "{}");
        c.end(
            Some(&task("succeeded", Some(answer("", vec![call])), None)),
            "x",
            &mut out,
        );
        let tc = &json(&out[0])["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(tc["index"], 0);
        assert_eq!(tc["id"], "call_9");
        assert_eq!(tc["function"]["arguments"], "{}");
    }
}
