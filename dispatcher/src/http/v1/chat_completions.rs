//! `POST /v1/chat/completions`: one OpenAI chat-completions request as one queued chat task
//! (payload `{completion: <body>}`, no session: the client sends the history) on the queue its
//! model routes to, so `/api/tasks/{id}`, metrics, dead letters and cancel apply to it. Answers
//! OpenAI's `chat.completion` after waiting up to `WORKER_TIMEOUT_MS`, or with `stream: true` its
//! `chat.completion.chunk` stream at once. Either way the task id is in `x-request-id`, and a
//! client that leaves before the answer cancels the task unless the body says `"detach": true`
//! (there is no resume on `/v1`).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_shared::task::TaskKind;

use super::answer;
use super::body::CompletionRequest;
use super::chunks::Chunks;
use super::error::V1Error;
use crate::disconnect::{DisconnectGuard, OnDisconnect};
use crate::http::access::Caller;
use crate::http::stream;
use crate::http::tasks::wait_for;
use crate::routing;
use crate::state::AppState;
use crate::submit::{NewTask, Submitted, submit};
use crate::subscription::Answer;

/// The header carrying the task id.
pub const REQUEST_ID: &str = "x-request-id";

/// Answers one chat-completions request.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: CompletionRequest,
) -> Result<Response, V1Error> {
    let model = req.model().to_owned();
    let queue = routing::chat_queue(&state, Some(&model)).map_err(|e| {
        V1Error::model_not_found(format!(
            "The model `{model}` does not exist: {e} (MODEL_ROUTES)"
        ))
    })?;
    let submitted = submit(
        &state,
        NewTask {
            kind: TaskKind::Chat.as_str().to_owned(),
            queue: Some(queue),
            payload: json!({ "completion": req.body }),
            max_attempts: None,
            timeout_ms: None,
            delay_ms: None,
            idempotency_key: None,
            cancel_on_disconnect: false,
            priority: Some(state.cfg.chat_priority().as_str().to_owned()),
        },
        caller.tenant(),
    )
    .await?;
    let policy = if req.detach {
        OnDisconnect::RunOn
    } else {
        OnDisconnect::Cancel
    };
    let answered = if req.stream {
        streamed(&state, &submitted, &model, req.include_usage, policy).await
    } else {
        waited(&state, &submitted, policy).await
    };
    // Errors after the enqueue carry the task id too: the task exists, and can be looked up.
    let mut response = answered.unwrap_or_else(IntoResponse::into_response);
    if let Ok(v) = HeaderValue::from_str(&submitted.id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(response)
}

/// Waits for the task's end and answers the `chat.completion`. A task still unfinished at
/// `WORKER_TIMEOUT_MS` is answered 504 and cancelled (unless detached): a client of `/v1` has
/// no way to come back for it, and its SDK will likely send the request again.
async fn waited(
    state: &AppState,
    submitted: &Submitted,
    policy: OnDisconnect,
) -> Result<Response, V1Error> {
    let mut guard = DisconnectGuard::new(state, &submitted.queue, &submitted.id, policy);
    let task = wait_for(
        state,
        &submitted.queue,
        &submitted.id,
        state.cfg.worker_timeout,
    )
    .await;
    let Some(task) = task? else {
        guard.disarm();
        return Err(V1Error::provider(format!(
            "task {} expired before it was read",
            submitted.id
        )));
    };
    if !task.state.is_terminal() {
        if state.streams.closing().is_cancelled() {
            guard.disarm();
            return Err(V1Error::shutting_down());
        }
        // The guard stays armed: dropped here, it cancels the task.
        return Err(V1Error::timeout(format!(
            "no answer within WORKER_TIMEOUT_MS ({} ms); the request was cancelled",
            state.cfg.worker_timeout.as_millis()
        )));
    }
    guard.disarm();
    let r = answer::result(&task)?;
    Ok(Json(answer::completion(&task.id, &r)).into_response())
}

/// The chunk stream of the task. It gives up with a timeout error (and cancels the task) when
/// no content began within `WORKER_TIMEOUT_MS`.
async fn streamed(
    state: &AppState,
    submitted: &Submitted,
    model: &str,
    include_usage: bool,
    policy: OnDisconnect,
) -> Result<Response, V1Error> {
    let chunks = Chunks::new(&submitted.id, model, include_usage);
    let role = chunks.role();
    let answer = Answer::Completion(Box::new(chunks));
    let mut s = stream::open_submitted(state, submitted, answer, policy).await?;
    s.pending.push_back(role.event());
    s.deadline = Some(tokio::time::Instant::now() + state.cfg.worker_timeout);
    Ok(stream::respond(s))
}
