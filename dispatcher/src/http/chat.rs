//! `POST /api/chat`: one conversation turn. Enqueues a chat task on the `chat` queue, waits up to
//! `WORKER_TIMEOUT_MS` for a worker to answer, and returns the answer.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::task::{TaskKind, TaskState, new_task_id};

use super::error::ApiError;
use super::extract::ApiJson;
use super::tasks::wait_for;
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
}

/// Answers one chat turn.
pub async fn chat(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Json<Value>, ApiError> {
    let began = Instant::now();
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
            queue: None,
            payload,
            max_attempts: None,
            timeout_ms: None,
            delay_ms: None,
            idempotency_key: None,
        },
    )
    .await?;
    let timeout = state.cfg.worker_timeout;
    let task = wait_for(&state, &submitted.queue, &submitted.id, timeout).await?;
    let latency_ms = began.elapsed().as_millis() as u64;
    let Some(task) = task else {
        return Err(ApiError::TaskFailed(format!(
            "task {} expired before it was read",
            submitted.id
        )));
    };
    match task.state {
        TaskState::Succeeded => {
            let result = task.result.unwrap_or(Value::Null);
            Ok(Json(json!({
                "response": result.get("response").cloned().unwrap_or(Value::Null),
                "session_id": session_id,
                "task_id": task.id,
                "worker_id": task.worker,
                "latency_ms": latency_ms,
                "model": result.get("model").cloned().unwrap_or(Value::Null),
                "provider": result.get("provider").cloned().unwrap_or(Value::Null),
                "usage": result.get("usage").cloned().unwrap_or(Value::Null),
            })))
        }
        s if s.is_terminal() => Err(ApiError::TaskFailed(format!(
            "chat task {} ended {}: {}",
            task.id,
            s.as_str(),
            task.error.as_deref().unwrap_or("no error recorded")
        ))),
        _ => Err(ApiError::Timeout {
            message: format!(
                "no answer within WORKER_TIMEOUT_MS ({} ms); the task keeps running: poll GET /api/tasks/{}",
                timeout.as_millis(),
                task.id
            ),
            task_id: task.id,
        }),
    }
}
