//! The overview page and its one live feed, `GET /ui/live` (SSE): a `snapshot` event at once
//! and then every second (every queue's numbers and paused state, workers by status and what
//! they run, throughput and latency of the last minute with a per-5-second series for the
//! chart), and a `finished` event per task that ends (the events tail of `GET /api/events`).
//! The page's script draws both; nothing on the page polls.
//!
//! A snapshot is the answers of `GET /api/queues`, `GET /api/workers` and `GET /api/metrics`,
//! read by the same functions: one pipeline over the queues (no scan), one registry range.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_shared::clock;
use switchyard_shared::paused;

use super::html;
use super::session::UiSession;
use crate::http::access::Caller;
use crate::http::error::ApiError;
use crate::http::events;
use crate::http::queues::{all_queue_stats, for_caller, with_paused};
use crate::http::workers;
use crate::state::AppState;

/// How often a snapshot is sent.
const EVERY: Duration = Duration::from_secs(1);
/// Slices of the chart's minute.
const SLICES: usize = 12;

/// `GET /ui`: the overview for a session that may read the queues, else its first queue.
pub async fn landing(s: UiSession, State(state): State<AppState>) -> Response {
    if s.caller.admits(crate::http::access::Need::Read) {
        return html::see_other("/ui/overview");
    }
    let first = state.cfg.queues.first().cloned().unwrap_or_default();
    html::see_other(&format!("/ui/queues/{first}"))
}

/// `GET /ui/overview`: the frame the live feed fills.
pub async fn page(s: UiSession) -> Response {
    let body = r#"<section><h2>Queues</h2><div id="queues" class="live">connecting…</div></section>
<section class="row"><div><h2>Throughput and latency, last minute</h2><div id="chart"></div><p id="rate"></p></div>
<div><h2>Workers</h2><div id="workers"></div><h3>Running now</h3><ul id="running"></ul></div></section>
<section><h2>Finished just now</h2><ul id="finished" class="feed"></ul></section>"#;
    html::page(&s, "overview", "Overview", body)
}

/// One snapshot: the queues, workers and last-minute numbers as JSON.
/// The queues show what `caller` may see of them (a `submit` key: its own backlog).
pub async fn snapshot(state: &AppState, caller: &Caller) -> Result<Value, ApiError> {
    let stats = all_queue_stats(state)
        .await?
        .into_iter()
        .map(|s| for_caller(caller, s))
        .collect();
    let mut con = state.pool.get().await?;
    let paused = paused::read(&mut *con, &state.keys).await?;
    drop(con);
    let axum::Json(workers) = workers::workers(State(state.clone())).await?;
    let now = clock::now_ms();
    Ok(json!({
        "queues": with_paused(stats, &paused),
        "workers": workers,
        "last_minute": state.recent.summary(now),
        "series": state.recent.series(now, SLICES),
    }))
}

/// `GET /ui/live`.
pub async fn live(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let first = snapshot(&state, &caller).await?;
    let finished = events::tail(&state, state.cfg.queues.clone()).await?;
    let ticks = futures::stream::unfold((state.clone(), caller), |(state, caller)| async move {
        tokio::time::sleep(EVERY).await;
        let event = match snapshot(&state, &caller).await {
            Ok(v) => Event::default().event("snapshot").data(v.to_string()),
            Err(e) => Event::default().event("trouble").data(e.to_string()),
        };
        Some((event, (state, caller)))
    });
    let opening =
        futures::stream::once(
            async move { Event::default().event("snapshot").data(first.to_string()) },
        );
    let all = opening
        .chain(futures::stream::select(ticks, finished))
        .map(Ok::<_, Infallible>);
    let mut r = Sse::new(all)
        .keep_alive(KeepAlive::new().interval(state.cfg.stream_keepalive))
        .into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    html::secure_headers(r.headers_mut());
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(r)
}
