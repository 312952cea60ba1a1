//! `POST /api/chat`: one conversation turn. Enqueues a chat task on the queue its model routes to
//! (`MODEL_ROUTES`; `chat` by default) and either waits up to `WORKER_TIMEOUT_MS` for the answer,
//! or (`"stream": true`) answers at once with an SSE stream of the answer as it is written (see
//! [`super::stream`]). A client that goes away before the answer cancels the task, unless the
//! body says `"detach": true`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::chat::ChatResult;
use switchyard_shared::task::{KEY_RULE, Task, TaskKind, TaskState, is_valid_key, new_task_id};

use super::access::Caller;
use super::error::ApiError;
use super::extract::ApiJson;
use super::stream;
use super::tasks::wait_for;
use crate::disconnect::{DisconnectGuard, OnDisconnect};
use crate::routing;
use crate::state::AppState;
use crate::submit::{NewTask, submit};

/// The body of `POST /api/chat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// Session whose history gives context; a new one is made when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The user's message.
    pub message: String,
    /// Model; the worker's `LLM_MODEL` when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Answer with an SSE stream of the answer as it is written.
    #[serde(default)]
    pub stream: bool,
    /// Keep the task running when the client goes away.
    #[serde(default)]
    pub detach: bool,
    /// `high`, `normal` or `low`; default `CHAT_PRIORITY`.
    #[serde(default)]
    pub priority: Option<String>,
}

/// Answers one chat turn.
pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    let began = Instant::now();
    // Checked here too so the message names this body's field, not the payload's.
    if body.session_id.as_deref().is_some_and(|s| !is_valid_key(s)) {
        return Err(ApiError::BadRequest(format!(
            "session_id: must be {KEY_RULE}"
        )));
    }
    let queue = routing::chat_queue(&state, body.model.as_deref())
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    let session_id = body
        .session_id
        .unwrap_or_else(|| new_task_id("session").replacen("session-", "s-", 1));
    let mut payload = json!({ "session_id": session_id, "message": body.message });
    if let Some(m) = body.model {
        payload["model"] = json!(m);
    }
    if let Some(s) = body.system {
        payload["system"] = json!(s);
    }
    let submitted = submit(
        &state,
        NewTask {
            kind: TaskKind::Chat.as_str().to_owned(),
            queue: Some(queue),
            payload,
            max_attempts: None,
            timeout_ms: None,
            delay_ms: None,
            idempotency_key: None,
            cancel_on_disconnect: false,
            priority: Some(
                body.priority
                    .unwrap_or_else(|| state.cfg.chat_priority().as_str().to_owned()),
            ),
        },
        caller.tenant(),
    )
    .await?;
    if body.stream {
        let policy = if body.detach {
            OnDisconnect::RunOn
        } else {
            OnDisconnect::streaming(state.cfg.resume_grace)
        };
        return stream::open_chat(&state, &submitted, &session_id, policy).await;
    }
    let policy = if body.detach {
        OnDisconnect::RunOn
    } else {
        OnDisconnect::Cancel
    };
    let mut guard = DisconnectGuard::new(&state, &submitted.queue, &submitted.id, policy);
    let timeout = state.cfg.worker_timeout;
    let task = wait_for(&state, &submitted.queue, &submitted.id, timeout).await;
    guard.disarm();
    let latency_ms = began.elapsed().as_millis() as u64;
    let Some(task) = task? else {
        return Err(ApiError::TaskFailed(format!(
            "task {} expired before it was read",
            submitted.id
        )));
    };
    if !task.state.is_terminal() {
        return Err(ApiError::Timeout {
            message: format!(
                "no answer within WORKER_TIMEOUT_MS ({} ms); the task keeps running: poll GET /api/tasks/{}",
                timeout.as_millis(),
                task.id
            ),
            task_id: task.id,
        });
    }
    answer(&task, Some(&session_id), latency_ms).map(|v| Json(v).into_response())
}

/// The answer to a chat turn whose task ended: `{response, session_id, task_id, …}` when it
/// succeeded, the failure otherwise. The same for the plain answer and the `done` event.
pub fn answer(task: &Task, session_id: Option<&str>, latency_ms: u64) -> Result<Value, ApiError> {
    if task.state != TaskState::Succeeded {
        return Err(ended_without_result(task));
    }
    let result = ChatResult::decode(task.result.as_ref().unwrap_or(&Value::Null))
        .map_err(|e| ApiError::TaskFailed(format!("chat task {} answered badly: {e}", task.id)))?;
    let mut v = json!({
        "response": result.response,
        "session_id": session_id,
        "task_id": task.id,
        "worker_id": task.worker,
        "latency_ms": latency_ms,
        "model": result.model,
        "provider": result.provider,
        "usage": result.usage,
    });
    // Answers of `/v1` tasks (read through `/api/tasks/{id}/stream`) carry these too.
    if let Some(f) = &result.finish_reason {
        v["finish_reason"] = json!(f);
    }
    if !result.tool_calls.is_empty() {
        v["tool_calls"] = json!(result.tool_calls);
    }
    Ok(v)
}

/// The failure of a task that ended without a result.
pub fn ended_without_result(task: &Task) -> ApiError {
    ApiError::TaskFailed(format!(
        "{} task {} ended {}: {}",
        task.kind.as_str(),
        task.id,
        task.state.as_str(),
        task.error.as_deref().unwrap_or("no error recorded")
    ))
}
