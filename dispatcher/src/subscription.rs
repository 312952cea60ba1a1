//! One streaming client: the events of one task, in order, from its output stream (first from
//! Redis, then from the fan-out of [`crate::streams`]), until the terminal event when the task
//! ends. Memory per client stays bounded: history and catch-up are read a page at a time as the
//! client takes events, and live entries arrive through a bounded channel.

use std::collections::VecDeque;
use std::time::Duration;

use axum::response::sse::Event;
use redis::streams::StreamRangeReply;
use serde_json::{Value, json};
use switchyard_shared::output::{self, Stored};
use switchyard_shared::store::{self, StoreError};
use switchyard_shared::task::{Task, TaskKind, TaskState};
use tracing::{debug, warn};

use crate::disconnect::DisconnectGuard;
use crate::http::chat;
use crate::http::error::ApiError;
use crate::http::v1::chunks::{Chunks, Flow, Piece};
use crate::replay::{EventId, OutputEvent, Replay};
use crate::state::AppState;
use crate::streams::Subscriber;
use crate::waiter::Registration;

/// Entries read per `XRANGE` page.
pub const PAGE: usize = 256;

/// How the terminal `done` event renders the task.
#[derive(Debug, Clone)]
pub enum Answer {
    /// As `POST /api/chat` answers, with `latency_ms` from the record (enqueue to end), so
    /// that every dispatcher sends the same `done`.
    Chat {
        /// The session.
        session_id: Option<String>,
    },
    /// The task record, as `GET /api/tasks/{id}` answers.
    Record,
    /// OpenAI's `chat.completion.chunk`s (`POST /v1/chat/completions` with `stream: true`):
    /// the whole stream renders in its own shape, see [`Chunks`].
    Completion(Box<Chunks>),
}

impl Answer {
    /// The answer shape for `task`, as a stream opened later than its request shows it.
    pub fn for_task(task: &Task) -> Self {
        match task.kind {
            TaskKind::Chat => Self::Chat {
                session_id: task.session_id.clone(),
            },
            TaskKind::Tool => Self::Record,
        }
    }
}

/// Where the next events come from.
#[derive(Debug)]
pub enum Feed {
    /// Reading the output stream from Redis a page at a time, then subscribing.
    CatchUp,
    /// Subscribed; first reading what the fan-out had read before, up to the id given.
    Gap(Subscriber, String),
    /// Subscribed: live entries from the fan-out.
    Live(Subscriber),
    /// A task without output (a tool task): only its end is awaited.
    NoOutput,
    /// The task ended: read the rest of the output, then the terminal event.
    Ending,
}

/// A page of an output stream.
#[derive(Debug, Default)]
pub struct Page {
    /// The decoded entries.
    pub entries: Vec<Stored>,
    /// The id of the last entry read, decodable or not.
    pub last: Option<String>,
    /// Entries read.
    pub read: usize,
}

/// Reads up to [`PAGE`] entries of `key` after `after` (exclusive), up to `to` (inclusive).
pub async fn read_page(
    state: &AppState,
    key: &str,
    after: &str,
    to: &str,
) -> Result<Page, StoreError> {
    let mut con = state.pool.get().await?;
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg(format!("({after}"))
        .arg(to)
        .arg("COUNT")
        .arg(PAGE)
        .query_async(&mut *con)
        .await?;
    let mut page = Page {
        read: reply.ids.len(),
        last: reply.ids.last().map(|e| e.id.clone()),
        entries: Vec::with_capacity(reply.ids.len()),
    };
    for e in &reply.ids {
        match output::decode(e) {
            Ok(s) => page.entries.push(s),
            Err(err) => debug!(component = "stream", error = %err, "skipped an output entry"),
        }
    }
    Ok(page)
}

/// A streaming client's position and what it waits for.
#[derive(Debug)]
pub struct Subscription {
    /// Shared state.
    pub state: AppState,
    /// The task.
    pub task_id: String,
    /// Its queue.
    pub queue: String,
    /// Its output stream.
    pub key: String,
    /// How `done` renders.
    pub answer: Answer,
    /// Derives events from entries.
    pub replay: Replay,
    /// Last output entry read (`0-0`: none), decodable or not.
    pub read_to: String,
    /// Events up to this id were sent on an earlier connection (`Last-Event-ID`).
    pub after: Option<EventId>,
    /// Events ready to send.
    pub pending: VecDeque<Event>,
    /// Where the next events come from.
    pub feed: Feed,
    /// Wakes when the task reaches a terminal state.
    pub registration: Registration,
    /// Cancels the task if the client leaves before the end.
    pub guard: Option<DisconnectGuard>,
    /// When set, the stream gives up at this instant unless the answer began by then (`/v1`:
    /// no worker answered in time).
    pub deadline: Option<tokio::time::Instant>,
    /// No more events.
    pub finished: bool,
}

enum Wake {
    Chunk(Option<crate::streams::Chunk>),
    Ended(bool),
    Closing,
    Deadline,
}

impl Subscription {
    /// The next event, or `None` when the stream is over. Redis failures are retried with
    /// backoff while the connection stays open (keep-alive comments flow meanwhile).
    pub async fn next(&mut self) -> Option<Event> {
        let mut failures = 0u32;
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            if let Err(e) = self.step().await {
                failures += 1;
                let pause = (Duration::from_millis(50) * 2u32.pow(failures.min(5)))
                    .min(Duration::from_secs(2));
                warn!(component = "stream", task_id = %self.task_id, error = %e, "reading a task's output failed; retrying");
                tokio::select! {
                    () = self.state.streams.closing().cancelled() => self.close_quietly(),
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// The dispatcher ends the stream (shutdown): the client resumes elsewhere, so its task is
    /// not cancelled.
    fn close_quietly(&mut self) {
        self.finished = true;
        if let Some(g) = self.guard.as_mut() {
            g.disarm();
        }
    }

    /// Applies entries and queues the events after `after`. Answers whether `after` itself
    /// was among the events they yield.
    pub fn apply(&mut self, entries: &[Stored]) -> bool {
        let mut out = Vec::new();
        for e in entries {
            self.replay.apply(e, &mut out);
        }
        if let Answer::Completion(chunks) = &mut self.answer {
            let mut pieces = Vec::new();
            for (_, ev) in out {
                if chunks.output(ev, &mut pieces) == Flow::Stop {
                    // The guard stays armed: dropped with the stream, it cancels the task.
                    self.finished = true;
                    break;
                }
            }
            self.pending.extend(pieces.into_iter().map(Piece::event));
            if chunks.content_sent() {
                self.deadline = None;
            }
            return false;
        }
        let mut found = false;
        for (id, ev) in out {
            if let Some(a) = self.after
                && id <= a
            {
                found |= id == a;
                continue;
            }
            let (name, data) = match ev {
                OutputEvent::Restart { attempt } => ("restart", json!({ "attempt": attempt })),
                OutputEvent::Delta { attempt, text } => {
                    ("delta", json!({ "text": text, "attempt": attempt }))
                }
                OutputEvent::ToolCalls { attempt, calls } => {
                    let calls: Vec<Value> = calls.iter().map(|c| c.to_openai()).collect();
                    (
                        "tool_calls",
                        json!({ "tool_calls": calls, "attempt": attempt }),
                    )
                }
            };
            self.pending.push_back(event(id, name, &data));
        }
        found
    }

    fn advance(&mut self, page: &Page) {
        if let Some(last) = &page.last {
            self.read_to.clone_from(last);
        }
    }

    async fn step(&mut self) -> Result<(), StoreError> {
        let wake = match &mut self.feed {
            Feed::CatchUp => {
                let page = read_page(&self.state, &self.key, &self.read_to, "+").await?;
                self.apply(&page.entries);
                self.advance(&page);
                if page.read < PAGE {
                    let (sub, gap) = self.state.streams.subscribe(&self.key, &self.read_to);
                    self.feed = match gap {
                        Some(to) => Feed::Gap(sub, to),
                        None => Feed::Live(sub),
                    };
                }
                return Ok(());
            }
            Feed::Gap(_, to) => {
                let to = to.clone();
                let page = read_page(&self.state, &self.key, &self.read_to, &to).await?;
                self.apply(&page.entries);
                self.advance(&page);
                if page.read < PAGE
                    && let Feed::Gap(sub, _) = std::mem::replace(&mut self.feed, Feed::Ending)
                {
                    self.feed = Feed::Live(sub);
                }
                return Ok(());
            }
            Feed::Ending => return self.finish().await,
            Feed::Live(sub) => tokio::select! {
                () = self.state.streams.closing().cancelled() => Wake::Closing,
                c = sub.rx.recv() => Wake::Chunk(c),
                fired = self.registration.wait(Duration::MAX) => Wake::Ended(fired),
                () = until(self.deadline) => Wake::Deadline,
            },
            Feed::NoOutput => tokio::select! {
                () = self.state.streams.closing().cancelled() => Wake::Closing,
                fired = self.registration.wait(Duration::MAX) => Wake::Ended(fired),
                () = until(self.deadline) => Wake::Deadline,
            },
        };
        match wake {
            Wake::Chunk(Some(chunk)) => {
                self.apply(&chunk);
                if let Some(last) = chunk.last() {
                    self.read_to.clone_from(&last.id);
                }
            }
            // Dropped from the fan-out for reading slowly: catch up from Redis.
            Wake::Chunk(None) => self.feed = Feed::CatchUp,
            Wake::Ended(true) => self.feed = Feed::Ending,
            // The waiter closes only on shutdown.
            Wake::Ended(false) | Wake::Closing => self.close_quietly(),
            Wake::Deadline => {
                self.deadline = None;
                if let Answer::Completion(chunks) = &self.answer {
                    self.pending.push_back(chunks.timed_out().event());
                }
                // The guard stays armed: dropped with the stream, it cancels the task.
                self.finished = true;
            }
        }
        Ok(())
    }

    /// The task ended. Its worker wrote the attempt's end entry before committing, so reading
    /// on from the last entry gets all of its output; then the terminal event.
    async fn finish(&mut self) -> Result<(), StoreError> {
        if !matches!(self.answer, Answer::Record) {
            loop {
                let page = read_page(&self.state, &self.key, &self.read_to, "+").await?;
                self.apply(&page.entries);
                self.advance(&page);
                if page.read < PAGE {
                    break;
                }
            }
        }
        let mut con = self.state.pool.get().await?;
        let task =
            store::load_task(&mut *con, &self.state.keys, &self.queue, &self.task_id).await?;
        drop(con);
        let id = self.replay.terminal_id();
        if let Answer::Completion(chunks) = &mut self.answer {
            let mut pieces = Vec::new();
            chunks.end(task.as_ref(), &self.task_id, &mut pieces);
            self.pending.extend(pieces.into_iter().map(Piece::event));
        } else if self.after.is_none_or(|a| id > a) {
            let (name, data) = terminal(task.as_ref(), &self.task_id, &self.answer);
            self.pending.push_back(event(id, name, &data));
        }
        self.finished = true;
        if let Some(g) = self.guard.as_mut() {
            g.disarm();
        }
        Ok(())
    }
}

/// An SSE event with its id and JSON data.
pub fn event(id: EventId, name: &str, data: &Value) -> Event {
    Event::default()
        .id(id.to_string())
        .event(name)
        .data(data.to_string())
}

/// The terminal event of `task`: `done` with the answer, or `error`.
pub fn terminal(task: Option<&Task>, id: &str, answer: &Answer) -> (&'static str, Value) {
    let Some(task) = task else {
        let e = ApiError::NotFound(format!("task {id} expired before its end was read"));
        return ("error", e.body());
    };
    let done = match answer {
        Answer::Chat { session_id } => {
            chat::answer(task, session_id.as_deref(), record_latency_ms(task))
        }
        Answer::Record if task.state == TaskState::Succeeded => {
            Ok(serde_json::to_value(task).unwrap_or(Value::Null))
        }
        Answer::Record | Answer::Completion(_) => Err(chat::ended_without_result(task)),
    };
    match done {
        Ok(v) => ("done", v),
        Err(e) => ("error", e.body()),
    }
}

/// Waits until `deadline`, forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Enqueue to end, from the record: the same on every dispatcher.
fn record_latency_ms(task: &Task) -> u64 {
    let created = switchyard_shared::task::created_ms(&task.id);
    let finished = task
        .finished_at
        .as_deref()
        .and_then(|f| chrono::DateTime::parse_from_rfc3339(f).ok())
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok());
    match (created, finished) {
        (Some(c), Some(f)) => f.saturating_sub(c),
        _ => 0,
    }
}
