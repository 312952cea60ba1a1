//! The task page: the record (the API's `GET /api/tasks/{id}`, so a tenant sees only its own),
//! attempts, error, a timeline from its times, and for a chat task the live output, which the
//! page's script reads from `GET /ui/tasks/{id}/stream` (the API's task stream, resumable).

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use switchyard_shared::task::{Task, TaskKind};

use super::html::{self, esc, query_value};
use super::session::UiSession;
use crate::http::access::{Caller, Need};
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::http::{stream, tasks};
use crate::state::AppState;

/// `GET /ui/tasks/{id}`.
pub async fn page(
    s: UiSession,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let axum::Json(t) = tasks::get(State(state), s.caller.clone(), ApiPath(id)).await?;
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<p class="numbers">state <strong id="task-state" class="{st}">{st}</strong> · queue <a href="/ui/queues/{q}">{q}</a> · {kind} · attempt {a} of {m} · worker {w}</p>"#,
        st = t.state.as_str(),
        q = esc(&t.queue),
        kind = t.kind.as_str(),
        a = t.attempts,
        m = t.max_attempts,
        w = esc(t.worker.as_deref().unwrap_or("—")),
    );
    if let Some(e) = &t.error {
        let _ = write!(body, r#"<p class="error" id="task-error">{}</p>"#, esc(e));
    }
    if t.state.as_str() == "dead" {
        body.push_str(&html::button(
            &s,
            Need::Submit,
            &format!("/ui/dead/{}/retry", query_value(&t.id)),
            "retry",
            "retry",
        ));
    }
    body.push_str(&timeline(&t));
    if t.kind == TaskKind::Chat {
        let _ = write!(
            body,
            r#"<h2>Output</h2><pre id="output" data-stream="/ui/tasks/{}/stream"></pre><p id="output-state" class="note">waiting for output…</p>"#,
            query_value(&t.id)
        );
    }
    let record = serde_json::to_string_pretty(&t).unwrap_or_default();
    let _ = write!(
        body,
        r#"<h2>Record</h2><pre id="record">{}</pre>"#,
        esc(&record)
    );
    Ok(html::page(&s, "", &format!("Task {}", t.id), &body))
}

fn timeline(t: &Task) -> String {
    let mut steps = vec![("created", Some(t.created_at.as_str()))];
    steps.push(("started (latest attempt)", t.started_at.as_deref()));
    steps.push(("finished", t.finished_at.as_deref()));
    let mut out = String::from(r#"<h2>Timeline</h2><ol class="timeline">"#);
    for (what, when) in steps {
        if let Some(when) = when {
            let _ = write!(out, "<li><b>{}</b> {}</li>", esc(what), esc(when));
        }
    }
    if let Some(due) = t.run_at_ms {
        let _ = write!(out, "<li><b>due</b> {due} ms</li>");
    }
    out.push_str("</ol>");
    out
}

/// `GET /ui/tasks/{id}/stream`: the API's task stream for the session's caller.
pub async fn output(
    State(state): State<AppState>,
    caller: Caller,
    path: Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    stream::task_stream(State(state), caller, path, headers).await
}
