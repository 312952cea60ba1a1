//! The queue page: its numbers and state (paused or running, with the action to change it),
//! and its tasks by state, one page at a time ([`super::listing`]); and the pause and resume
//! actions, which are the API's handlers.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use switchyard_shared::task::Task;

use super::html::{self, esc, query_value};
use super::listing::{self, TABS};
use super::session::UiSession;
use crate::http::access::Need;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::pause;
use crate::state::AppState;

/// Default rows per page.
const PAGE: usize = 25;
/// Most rows per page.
const MAX_PAGE: usize = 100;

/// Query of the queue page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// The tab ([`TABS`]).
    #[serde(default)]
    pub state: Option<String>,
    /// Cursor of the page.
    #[serde(default)]
    pub after: Option<String>,
    /// Rows per page.
    #[serde(default)]
    pub n: Option<usize>,
    /// What the last action did.
    #[serde(default)]
    pub done: Option<String>,
}

/// `GET /ui/queues/{q}`.
pub async fn page(
    s: UiSession,
    State(state): State<AppState>,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Response, ApiError> {
    let tab = q.state.as_deref().unwrap_or("stream");
    if !TABS.contains(&tab) {
        return Err(ApiError::BadRequest(format!(
            "state: must be one of {}",
            TABS.join(", ")
        )));
    }
    let n = q.n.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&n) {
        return Err(ApiError::BadRequest(format!(
            "n: must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = q.after.as_deref().filter(|c| !c.is_empty());
    if let Some(c) = cursor
        && !valid_cursor(tab, c)
    {
        return Err(ApiError::BadRequest(format!(
            "after: {c:?} is not a cursor of this list"
        )));
    }
    // The API's `GET /api/queues/{q}`: the same checks (400 / 404) and numbers.
    let axum::Json(numbers) = pause::one(
        State(state.clone()),
        s.caller.clone(),
        ApiPath(queue.clone()),
    )
    .await?;
    let mut con = state.pool.get().await?;
    let found = listing::page(&mut *con, &state, &queue, tab, cursor, n).await?;
    drop(con);
    let mut body = html::flash(q.done.as_deref());
    if s.caller.admits(Need::Read) {
        body.push_str(&summary(&s, &queue, &numbers));
    }
    body.push_str(r#"<nav class="tabs">"#);
    for t in TABS {
        let class = if t == tab { "active" } else { "" };
        let _ = write!(
            body,
            r#"<a class="{class}" id="tab-{t}" href="/ui/queues/{queue}?state={t}">{t}</a>"#
        );
    }
    body.push_str("</nav>");
    let rows: Vec<String> = found
        .tasks
        .iter()
        .filter(|(_, t)| {
            t.as_ref()
                .is_none_or(|t| s.caller.may_read(t.tenant.as_deref()))
        })
        .map(|(id, t)| row(id, t.as_ref()))
        .collect();
    body.push_str(&html::table(
        "tasks",
        &[
            "task", "state", "kind", "attempts", "created", "finished", "error",
        ],
        &rows,
        "nothing here",
    ));
    if let Some(next) = found.next {
        let _ = write!(
            body,
            r#"<p><a id="next" href="/ui/queues/{queue}?state={tab}&amp;n={n}&amp;after={}">next page →</a></p>"#,
            query_value(&next)
        );
    }
    Ok(html::page(&s, "", &format!("Queue {queue}"), &body))
}

fn valid_cursor(tab: &str, c: &str) -> bool {
    let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    match tab {
        "delayed" => digits(c) && c.parse::<u32>().is_ok(),
        "finished" => match c.split_once('~') {
            Some((entry, k)) => valid_cursor("stream", entry) && k.parse::<u32>().is_ok(),
            None => valid_cursor("stream", c),
        },
        _ => c
            .split_once('-')
            .is_some_and(|(a, b)| digits(a) && digits(b)),
    }
}

fn summary(s: &UiSession, queue: &str, v: &Value) -> String {
    let paused = v["paused"].as_bool().unwrap_or(false);
    let state = if paused { "paused" } else { "running" };
    let action = if paused {
        html::button(
            s,
            Need::Admin,
            &format!("/ui/queues/{queue}/resume"),
            "resume",
            "resume",
        )
    } else {
        html::button(
            s,
            Need::Admin,
            &format!("/ui/queues/{queue}/pause"),
            "pause",
            "pause",
        )
    };
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    format!(
        r#"<div class="numbers">state <strong id="queue-state" class="{state}">{state}</strong> {action} · waiting <b>{}</b> · running <b>{}</b> · delayed <b>{}</b> · dead <b>{}</b> · succeeded <b>{}</b> · oldest pending {} ms</div>"#,
        n("waiting"),
        n("pending"),
        n("delayed"),
        n("dead"),
        v["counts"]["succeeded"].as_i64().unwrap_or(0),
        n("oldest_pending_ms"),
    )
}

fn row(id: &str, t: Option<&Task>) -> String {
    let Some(t) = t else {
        return format!(
            r#"<tr><td>{}</td><td colspan="6">expired</td></tr>"#,
            esc(id)
        );
    };
    let error: String = t.error.as_deref().unwrap_or("").chars().take(120).collect();
    format!(
        r#"<tr><td>{}</td><td class="state {s}">{s}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
        html::task_link(id),
        t.kind.as_str(),
        t.attempts,
        t.max_attempts,
        esc(&t.created_at),
        esc(t.finished_at.as_deref().unwrap_or("")),
        esc(&error),
        s = t.state.as_str(),
    )
}

/// `POST /ui/queues/{q}/pause`: the API's pause, then back to the queue.
pub async fn pause_action(
    State(state): State<AppState>,
    ApiPath(queue): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _changed = pause::pause(State(state), ApiPath(queue.clone())).await?;
    Ok(html::see_other(&format!("/ui/queues/{queue}?done=paused")))
}

/// `POST /ui/queues/{q}/resume`: the API's resume, then back to the queue.
pub async fn resume_action(
    State(state): State<AppState>,
    ApiPath(queue): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _changed = pause::resume(State(state), ApiPath(queue.clone())).await?;
    Ok(html::see_other(&format!("/ui/queues/{queue}?done=resumed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_an_entry_id_or_for_the_delayed_tab_an_index() {
        assert!(valid_cursor("stream", "1733250000000-0"));
        assert!(valid_cursor("finished", "1-12"));
        assert!(!valid_cursor("stream", "12"));
        assert!(!valid_cursor("dead", "1-x"));
        assert!(!valid_cursor("running", "-1"));
        assert!(!valid_cursor("stream", &format!("{}-0", "9".repeat(21))));
        assert!(valid_cursor("delayed", "50"));
        assert!(!valid_cursor("delayed", "-1"));
        assert!(!valid_cursor("delayed", "1-0"));
        assert!(!valid_cursor("delayed", "99999999999"));
        assert!(valid_cursor("finished", "5-0~25"));
        assert!(!valid_cursor("finished", "5-0~x"));
        assert!(!valid_cursor("stream", "5-0~25"));
    }
}
