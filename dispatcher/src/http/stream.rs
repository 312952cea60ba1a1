//! Streaming answers over SSE: `GET /api/tasks/{id}/stream` for any task (with `Last-Event-ID`
//! to resume after an event, on any dispatcher) and the answer of `POST /api/chat` with
//! `"stream": true`. Events: `start`, `delta`, `restart`, then `done` or `error`; ids as in
//! [`crate::replay`]. Everything that can be refused (unknown task, bad `Last-Event-ID`, a queue
//! this dispatcher does not serve) is answered as JSON before the first SSE byte.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use redis::streams::StreamRangeReply;
use serde_json::json;
use switchyard_shared::store;
use switchyard_shared::task::{Task, TaskKind};

use super::access::Caller;
use super::error::ApiError;
use super::tasks::queue_of;
use crate::disconnect::{self, DisconnectGuard, OnDisconnect};
use crate::replay::{EntryId, EventId, Replay, Step};
use crate::state::AppState;
use crate::submit::Submitted;
use crate::subscription::{Answer, Feed, PAGE, Subscription, event, read_page};
use crate::waiter::Registration;

/// The header a reconnecting SSE client sends.
const LAST_EVENT_ID: &str = "last-event-id";

/// Turns a subscription into the SSE response.
pub(crate) fn respond(sub: Subscription) -> Response {
    let keepalive = sub.state.cfg.stream_keepalive;
    let events = futures::stream::unfold(sub, |mut s| async move {
        s.next().await.map(|e| (Ok::<_, Infallible>(e), s))
    });
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keepalive))
        .into_response();
    // Proxies such as nginx would otherwise buffer the stream.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

fn subscription(state: &AppState, task: &Task, registration: Registration) -> Subscription {
    Subscription {
        state: state.clone(),
        task_id: task.id.clone(),
        queue: task.queue.clone(),
        key: state.keys.output(&task.queue, &task.id),
        answer: Answer::for_task(task),
        replay: Replay::default(),
        read_to: "0-0".to_owned(),
        after: None,
        pending: VecDeque::new(),
        feed: if task.state.is_terminal() {
            Feed::Ending
        } else if task.kind == TaskKind::Tool {
            Feed::NoOutput
        } else {
            Feed::CatchUp
        },
        registration,
        guard: None,
        deadline: None,
        finished: false,
    }
}

fn start_data(task_id: &str, session_id: Option<&str>) -> serde_json::Value {
    match session_id {
        Some(s) => json!({ "task_id": task_id, "session_id": s }),
        None => json!({ "task_id": task_id }),
    }
}

/// The SSE answer of `POST /api/chat` with `"stream": true`, for the task just submitted.
pub async fn open_chat(
    state: &AppState,
    submitted: &Submitted,
    session_id: &str,
    policy: OnDisconnect,
) -> Result<Response, ApiError> {
    let answer = Answer::Chat {
        session_id: Some(session_id.to_owned()),
    };
    let mut s = open_submitted(state, submitted, answer, policy).await?;
    s.pending.push_back(event(
        EventId::START,
        "start",
        &start_data(&submitted.id, Some(session_id)),
    ));
    Ok(respond(s))
}

/// A subscription to the task just submitted, from the first entry of its output, rendered as
/// `answer`; `policy` applies when the client leaves before the end.
pub(crate) async fn open_submitted(
    state: &AppState,
    submitted: &Submitted,
    answer: Answer,
    policy: OnDisconnect,
) -> Result<Subscription, ApiError> {
    let (queue, id) = (&submitted.queue, &submitted.id);
    // Armed first: a failure below leaves no task behind for a client that got an error.
    let guard = DisconnectGuard::new(state, queue, id, policy);
    let registration = state.waiter.register(id);
    let key = state.keys.output(queue, id);
    // The task is new: the fan-out reads its output from the start, so nothing is missed
    // however fast the worker writes.
    let (sub, gap) = state.streams.subscribe(&key, "0-0");
    let mut con = state.pool.get().await?;
    // It may have ended before the registration above.
    let ended = store::load_task(&mut *con, &state.keys, queue, id)
        .await?
        .is_none_or(|t| t.state.is_terminal());
    drop(con);
    Ok(Subscription {
        state: state.clone(),
        task_id: id.clone(),
        queue: queue.clone(),
        key,
        answer,
        replay: Replay::default(),
        read_to: "0-0".to_owned(),
        after: None,
        pending: VecDeque::new(),
        feed: match gap {
            _ if ended => Feed::Ending,
            Some(to) => Feed::Gap(sub, to),
            None => Feed::Live(sub),
        },
        registration,
        guard: Some(guard),
        deadline: None,
        finished: false,
    })
}

/// `GET /api/tasks/{id}/stream`: the task's events, from the start or after `Last-Event-ID`.
pub async fn task_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let queue = queue_of(&id)?;
    if !state.knows_queue(queue) {
        return Err(ApiError::Unprocessable {
            code: "unknown_queue",
            message: format!(
                "task {id} belongs to queue {queue:?}, which this dispatcher does not serve (QUEUES: {})",
                state.cfg.queues.join(", ")
            ),
        });
    }
    let after = match headers.get(LAST_EVENT_ID) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID: not printable text".into()))?
                .parse::<EventId>()
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        ),
    };
    // Registered before the record is read: an end in between still wakes it.
    let registration = state.waiter.register(&id);
    let mut con = state.pool.get().await?;
    let task = store::load_task(&mut *con, &state.keys, queue, &id)
        .await?
        .filter(|t| caller.may_read(t.tenant.as_deref()))
        .ok_or_else(|| super::tasks::no_task(&id))?;
    drop(con);
    disconnect::count_resume(&state, queue, &id).await?;
    let mut s = subscription(&state, &task, registration);
    match after {
        None => {
            let session = (task.kind == TaskKind::Chat)
                .then_some(task.session_id.as_deref())
                .flatten();
            s.pending
                .push_back(event(EventId::START, "start", &start_data(&id, session)));
        }
        Some(a) => resume_after(&mut s, &task, a).await?,
    }
    Ok(respond(s))
}

/// Positions `s` just after event `after`, or refuses it as not an event of this task.
async fn resume_after(s: &mut Subscription, task: &Task, after: EventId) -> Result<(), ApiError> {
    s.after = Some(after);
    let refuse = || {
        ApiError::BadRequest(format!(
            "Last-Event-ID: {after} is not an event id of task {}",
            task.id
        ))
    };
    if after == EventId::START {
        return Ok(());
    }
    if after.step == Step::Close {
        // The terminal event was sent: nothing follows it.
        if !task.state.is_terminal() || !entry_exists(s, after.entry).await? {
            return Err(refuse());
        }
        s.finished = true;
        return Ok(());
    }
    if task.kind == TaskKind::Tool {
        return Err(refuse());
    }
    // Replay the history up to that event: the restart/delta decisions depend on all of it.
    loop {
        let page = read_page(&s.state, &s.key, &s.read_to, "+").await?;
        let found = s.apply(&page.entries);
        if let Some(last) = &page.last {
            s.read_to.clone_from(last);
        }
        if found {
            return Ok(());
        }
        if page.read < PAGE || s.replay.last() > after.entry {
            return Err(refuse());
        }
    }
}

/// Whether the output stream holds entry `id` (`0-0`: the virtual entry before the first).
async fn entry_exists(s: &Subscription, id: EntryId) -> Result<bool, ApiError> {
    if id == EntryId::default() {
        return Ok(true);
    }
    let mut con = s.state.pool.get().await?;
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&s.key)
        .arg(id.to_string())
        .arg(id.to_string())
        .query_async(&mut *con)
        .await
        .map_err(|e| ApiError::from(store::StoreError::from(e)))?;
    Ok(!reply.ids.is_empty())
}
