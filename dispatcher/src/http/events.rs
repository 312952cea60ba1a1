//! `GET /api/events`: the live events of finished tasks over SSE (what `sy tail` shows), one
//! `finished` event `{id, queue, state, entry}` per task that reaches a terminal state from the
//! moment the client connects, read from the queues' events streams.
//!
//! An operator's tool, not a client path: each watcher holds one blocking Redis connection of its
//! own for the life of the stream (one `XREAD BLOCK` over the events streams of its queues), so a
//! few watchers cost a few connections and nothing per event beyond the read.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use redis::streams::{StreamRangeReply, StreamReadReply};
use serde::Deserialize;
use serde_json::json;
use switchyard_shared::events;
use switchyard_shared::store::{self, StoreError};

use super::error::ApiError;
use super::extract::ApiQuery;
use crate::state::AppState;

/// How long one read blocks before it is sent again.
const BLOCK: Duration = Duration::from_secs(1);
/// Most entries one read takes per stream.
const READ_COUNT: usize = 256;

/// Query of `GET /api/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this queue.
    #[serde(default)]
    pub queue: Option<String>,
}

/// `GET /api/events`.
pub async fn events(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let queues = match q.queue {
        Some(queue) if state.knows_queue(&queue) => vec![queue],
        Some(queue) => {
            return Err(ApiError::Unprocessable {
                code: "unknown_queue",
                message: format!("queue: unknown queue {queue:?}"),
            });
        }
        None => state.cfg.queues.clone(),
    };
    let events = tail(&state, queues).await?.map(Ok::<_, Infallible>);
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.cfg.stream_keepalive))
        .into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

/// The `finished` events of `queues` from now on, over a blocking connection of its own; the
/// stream ends when Redis fails (the client reconnects). Also the web console's live feed.
pub async fn tail(
    state: &AppState,
    queues: Vec<String>,
) -> Result<impl futures::Stream<Item = Event> + Send + 'static, ApiError> {
    let mut conn = store::blocking_connection(&state.redis, BLOCK).await?;
    // Start after the newest event of each stream, before answering: nothing finished after the
    // answer is missed.
    let mut cursors = Vec::with_capacity(queues.len());
    for queue in queues {
        let stream = state.keys.events(&queue);
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(StoreError::from)?;
        let cursor = last
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
        cursors.push(Cursor {
            queue,
            stream,
            last: cursor,
        });
    }
    let tail = Tail {
        conn,
        cursors,
        ready: VecDeque::new(),
    };
    Ok(futures::stream::unfold(tail, |mut t| async move {
        t.next().await.map(|e| (e, t))
    }))
}

struct Cursor {
    queue: String,
    stream: String,
    last: String,
}

struct Tail {
    conn: store::Conn,
    cursors: Vec<Cursor>,
    ready: VecDeque<Event>,
}

impl Tail {
    /// The next event; `None` ends the stream (Redis failed: the client reconnects).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if let Err(e) = self.read().await {
                tracing::warn!(component = "events", error = %e, "event tail ended");
                return None;
            }
        }
    }

    async fn read(&mut self) -> Result<(), StoreError> {
        let streams = self
            .cursors
            .iter()
            .map(|c| (c.stream.as_str(), c.last.as_str()));
        let reply: Option<StreamReadReply> = store::xread(READ_COUNT, BLOCK, streams)
            .query_async(&mut self.conn)
            .await?;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(cursor) = self.cursors.iter_mut().find(|c| c.stream == key.key) else {
                continue;
            };
            for entry in key.ids {
                if let Ok(event) = events::decode(&entry) {
                    for id in event.ids {
                        let data = json!({
                            "id": id, "queue": cursor.queue, "state": event.state, "entry": entry.id,
                        });
                        self.ready
                            .push_back(Event::default().event("finished").data(data.to_string()));
                    }
                }
                cursor.last = entry.id;
            }
        }
        Ok(())
    }
}
