//! The dead letters page: newest first per queue, one page at a time (`XREVRANGE` from a
//! cursor); retry one (the API's retry), delete one (`delete_dead.lua`), and retry all with a
//! confirmation page that shows how many there are.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use switchyard_shared::scripts::{self, DeleteStatus};

use super::html::{self, esc, query_value};
use super::session::UiSession;
use crate::http::access::{Caller, Need};
use crate::http::dead::{DeadLetter, read_dead, retry};
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::tasks::queue_of;
use crate::state::AppState;

/// Letters per queue per page.
const PAGE: usize = 25;
/// Most letters one "retry all" replays (the rest stay for the next one).
pub const RETRY_ALL_MAX: usize = 10_000;

/// Query of the dead letters page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// Only this queue (and then a cursor may follow).
    #[serde(default)]
    pub queue: Option<String>,
    /// The entry to continue before.
    #[serde(default)]
    pub before: Option<String>,
    /// What the last action did.
    #[serde(default)]
    pub done: Option<String>,
}

/// `GET /ui/dead`.
pub async fn page(
    s: UiSession,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeadQuery>,
) -> Result<Response, ApiError> {
    let queues = match &q.queue {
        Some(queue) if state.knows_queue(queue) => vec![queue.clone()],
        Some(queue) => return Err(ApiError::NotFound(format!("no queue {queue:?}"))),
        None => state.cfg.queues.clone(),
    };
    let before = q.before.as_deref().filter(|b| !b.is_empty());
    if let Some(b) = before
        && !b.split_once('-').is_some_and(|(x, y)| {
            !x.is_empty()
                && !y.is_empty()
                && x.len() <= 20
                && y.len() <= 20
                && x.bytes().chain(y.bytes()).all(|c| c.is_ascii_digit())
        })
    {
        return Err(ApiError::BadRequest(format!(
            "before: {b:?} is not an entry id"
        )));
    }
    let mut body = html::flash(q.done.as_deref());
    let total = dead_total(&state).await?;
    let _ = write!(
        body,
        r#"<p class="numbers">dead letters in all queues: <b id="dead-count">{total}</b></p>"#
    );
    if s.caller.admits(Need::Admin) && total > 0 {
        let _ = write!(
            body,
            r#"<form method="post" action="/ui/dead/retry-all" class="inline">{}<button id="retry-all" type="submit">retry all…</button></form>"#,
            html::csrf_field(&s)
        );
    }
    let mut con = state.pool.get().await?;
    for queue in queues {
        let letters = read_dead(&mut *con, &state, &queue, before, PAGE).await?;
        let rows: Vec<String> = letters.iter().map(|l| row(&s, l)).collect();
        let _ = write!(body, "<h2>{}</h2>", esc(&queue));
        body.push_str(&html::table(
            &format!("dead-{queue}"),
            &["task", "error", "attempts", "dead since", ""],
            &rows,
            "no dead letters",
        ));
        if letters.len() == PAGE
            && let Some(last) = letters.last()
        {
            let _ = write!(
                body,
                r#"<p><a href="/ui/dead?queue={queue}&amp;before={}">older →</a></p>"#,
                query_value(&last.entry)
            );
        }
    }
    Ok(html::page(&s, "dead letters", "Dead letters", &body))
}

/// One dead letter's row, with the actions the session may take.
fn row(s: &UiSession, l: &DeadLetter) -> String {
    let id = query_value(&l.id);
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
        html::task_link(&l.id),
        esc(&l.error.chars().take(160).collect::<String>()),
        l.attempts.map_or("—".into(), |a| a.to_string()),
        esc(&l.at),
        html::button(
            s,
            Need::Submit,
            &format!("/ui/dead/{id}/retry"),
            "retry",
            "retry"
        ),
        html::button(
            s,
            Need::Admin,
            &format!("/ui/dead/{id}/delete"),
            "delete",
            "delete"
        ),
    )
}

/// Dead letters in every queue: one `XLEN` per dead-letter stream, in one pipeline.
async fn dead_total(state: &AppState) -> Result<u64, ApiError> {
    let mut pipe = redis::pipe();
    for q in &state.cfg.queues {
        pipe.cmd("XLEN").arg(state.keys.dead(q));
    }
    let mut con = state.pool.get().await?;
    let lens: Vec<u64> = pipe
        .query_async(&mut *con)
        .await
        .map_err(switchyard_shared::store::StoreError::from)?;
    Ok(lens.iter().sum())
}

/// `POST /ui/dead/{id}/retry`: the API's retry (scope and ownership checks included).
pub async fn retry_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _accepted = retry(State(state), caller, ApiPath(id.clone())).await?;
    Ok(html::see_other(&format!("/ui/tasks/{}", query_value(&id))))
}

/// `POST /ui/dead/{id}/delete`.
pub async fn delete_one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let queue = queue_of(&id)?;
    let mut con = state.pool.get().await?;
    let reply = scripts::delete_dead(&mut *con, &state.keys, queue, &id).await?;
    match reply.status {
        DeleteStatus::Deleted => {
            tracing::info!(task_id = %id, queue, "dead letter deleted");
            Ok(html::see_other("/ui/dead?done=deleted"))
        }
        DeleteStatus::NotDead => Err(ApiError::Conflict(format!(
            "task {id} is {}, not dead; only dead letters can be deleted",
            reply.state
        ))),
        // No hash: the task may still live only in its stream entry (queued or running).
        DeleteStatus::Missing => {
            match switchyard_shared::store::load_task(&mut *con, &state.keys, queue, &id).await? {
                Some(t) => Err(ApiError::Conflict(format!(
                    "task {id} is {}, not dead; only dead letters can be deleted",
                    t.state.as_str()
                ))),
                None => Err(ApiError::NotFound(format!("no task {id:?}"))),
            }
        }
    }
}

/// `POST /ui/dead/retry-all`: without `confirm`, a page asking to confirm with the count; with
/// `confirm=<count>`, replays up to [`RETRY_ALL_MAX`] letters, newest first (a letter that
/// cannot be replayed is passed over, not retried).
pub async fn retry_all(
    s: UiSession,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let total = dead_total(&state).await?;
    if html::form(&body).remove("confirm").is_none() {
        let page = format!(
            r#"<p>Queue <b id="confirm-count">{total}</b> dead letters again (at most {RETRY_ALL_MAX} at once)?</p><form method="post" action="/ui/dead/retry-all">{}<input type="hidden" name="confirm" value="{total}"><button id="confirm" type="submit">yes, retry {total}</button></form> <a href="/ui/dead">cancel</a>"#,
            html::csrf_field(&s)
        );
        return Ok(html::page(
            &s,
            "dead letters",
            "Retry all dead letters?",
            &page,
        ));
    }
    let mut con = state.pool.get().await?;
    let mut replayed = 0usize;
    for queue in &state.cfg.queues {
        let mut cursor: Option<String> = None;
        while replayed < RETRY_ALL_MAX {
            let letters = read_dead(&mut *con, &state, queue, cursor.as_deref(), 100).await?;
            let Some(last) = letters.last() else {
                break;
            };
            cursor = Some(last.entry.clone());
            for l in &letters {
                let r = scripts::replay_dead(&mut *con, &state.keys, queue, &l.id).await?;
                replayed += usize::from(r.status == scripts::ReplayStatus::Queued);
            }
        }
    }
    tracing::info!(replayed, "dead letters replayed from the console");
    Ok(html::see_other(&format!(
        "/ui/dead?done={}",
        query_value(&format!("{replayed} dead letters queued again"))
    )))
}
