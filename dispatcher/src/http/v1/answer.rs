//! A finished chat task as OpenAI answers it: the `chat.completion` object of a task that
//! succeeded, or the OpenAI-shaped error of one that did not. Streaming shares the pieces (the
//! completion id, `created`, the finish reason and the failure mapping) through [`Ids`] and
//! [`task_error`].

use serde_json::{Value, json};
use switchyard_shared::chat::ChatResult;
use switchyard_shared::task::{self, Task, TaskState};

use super::error::V1Error;

/// What every chunk and answer of one completion carries alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `chatcmpl-<task id>`.
    pub id: String,
    /// Seconds since the epoch: when the task was created.
    pub created: u64,
}

impl Ids {
    /// The ids of task `task_id`.
    pub fn of(task_id: &str) -> Self {
        Self {
            id: format!("chatcmpl-{task_id}"),
            created: task::created_ms(task_id).unwrap_or(0) / 1000,
        }
    }
}

/// OpenAI's `finish_reason` of `r`: the provider's, else `tool_calls` when it asked for tools,
/// else `stop`.
pub fn finish_reason(r: &ChatResult) -> String {
    match &r.finish_reason {
        Some(f) => f.clone(),
        None if !r.tool_calls.is_empty() => "tool_calls".into(),
        None => "stop".into(),
    }
}

/// OpenAI's `usage`.
pub fn usage(r: &ChatResult) -> Value {
    let u = r.usage;
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// The result of a task that ended: its chat result when it succeeded, the error a `/v1` client
/// gets otherwise.
pub fn result(task: &Task) -> Result<ChatResult, V1Error> {
    if task.state != TaskState::Succeeded {
        return Err(task_error(task));
    }
    ChatResult::decode(task.result.as_ref().unwrap_or(&Value::Null)).map_err(|e| {
        tracing::error!(task_id = %task.id, error = %e, "a chat task's result is not a chat result");
        V1Error::provider(format!("the answer of task {} is unreadable", task.id))
    })
}

/// The error of a task that ended without an answer. `failed` means the provider refused the
/// request for good (or the worker found it unusable): 400 with that message. `dead` means every
/// attempt failed on the way (provider errors, timeouts, workers that died): 502. `cancelled`:
/// 409, and no retry.
pub fn task_error(task: &Task) -> V1Error {
    let why = task.error.as_deref().unwrap_or("no error recorded");
    match task.state {
        TaskState::Failed => V1Error::refused(why),
        TaskState::Dead => V1Error::provider(format!(
            "no answer after {} attempt(s): {why}",
            task.attempts
        )),
        TaskState::Cancelled => V1Error::cancelled(format!(
            "the request (task {}) was cancelled before it was answered",
            task.id
        )),
        // Not terminal: the caller's deadline passed.
        _ => V1Error::timeout(format!(
            "no answer within WORKER_TIMEOUT_MS (task {} is {})",
            task.id,
            task.state.as_str()
        )),
    }
}

/// The `chat.completion` object of a task that succeeded with `r`.
pub fn completion(task_id: &str, r: &ChatResult) -> Value {
    let ids = Ids::of(task_id);
    // A message that only calls tools has no content, as OpenAI sends it.
    let content = if r.response.is_empty() && !r.tool_calls.is_empty() {
        Value::Null
    } else {
        json!(r.response)
    };
    let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
    if !r.tool_calls.is_empty() {
        message["tool_calls"] = json!(r.tool_calls);
    }
    json!({
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": r.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(r),
        }],
        "usage": usage(r),
        "system_fingerprint": null,
    })
}

#[cfg(test)]
mod tests {
    use switchyard_shared::chat::ChatUsage;
    use switchyard_shared::completion::ToolCall;

    use super::*;

    fn result(response: &str, calls: Vec<ToolCall>) -> ChatResult {
        ChatResult {
            response: response.into(),
            model: "gpt-x-2025".into(),
            provider: "openai".into(),
            session_id: None,
            usage: ChatUsage {
                prompt_tokens: 7,
                completion_tokens: 3,
            },
            finish_reason: None,
            tool_calls: calls,
        }
    }

    #[test]
    fn a_text_answer_is_a_chat_completion() {
        let id = "chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y5";
        let v = completion(id, &result("hello", vec![]));
        assert_eq!(v["id"], format!("chatcmpl-{id}"));
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["created"], task::created_ms(id).expect("ulid") / 1000);
        assert_eq!(v["model"], "gpt-x-2025");
        let c = &v["choices"][0];
        assert_eq!(c["message"]["content"], "hello");
        assert_eq!(c["message"]["role"], "assistant");
        assert!(c["message"].get("tool_calls").is_none());
        assert_eq!(c["finish_reason"], "stop");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
        );
    }

    #[test]
    fn a_tool_call_answer_has_null_content_and_finishes_with_tool_calls() {
        let call = ToolCall::function("call_1", "get_weather", r#"{"city":"Oslo"}"#);
        let v = completion("chat-x", &result("", vec![call]));
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let mut r = result("", vec![]);
        r.finish_reason = Some("length".into());
        assert_eq!(finish_reason(&r), "length");
    }
}
