//! The workers page: every worker the registry lists (`GET /api/workers`), with its status,
//! current tasks, counters and last heartbeat.

use axum::extract::State;
use axum::response::Response;
use serde_json::Value;
use switchyard_shared::clock;

use super::html::{self, esc};
use super::session::UiSession;
use crate::http::error::ApiError;
use crate::http::workers;
use crate::state::AppState;

/// `GET /ui/workers`.
pub async fn page(s: UiSession, State(state): State<AppState>) -> Result<Response, ApiError> {
    let axum::Json(v) = workers::workers(State(state)).await?;
    let now = clock::now_ms();
    let rows: Vec<String> = v["workers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|w| row(w, now))
        .collect();
    let summary = &v["summary"];
    let body = format!(
        r#"<p class="numbers">{} workers · idle {} · busy {} · draining {} · offline {} · running tasks {}</p>{}"#,
        summary["total"],
        summary["idle"],
        summary["busy"],
        summary["draining"],
        summary["offline"],
        summary["running_tasks"],
        html::table(
            "workers",
            &[
                "worker",
                "status",
                "queues",
                "current tasks",
                "processed",
                "failed",
                "last heartbeat"
            ],
            &rows,
            "no worker seen lately"
        )
    );
    Ok(html::page(&s, "workers", "Workers", &body))
}

fn row(w: &Value, now: u64) -> String {
    let list = |k: &str| -> Vec<String> {
        w[k].as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    let current: Vec<String> = list("current_tasks")
        .iter()
        .map(|t| html::task_link(t))
        .collect();
    let beat = w["last_heartbeat_ms"].as_u64().unwrap_or(0);
    let status = w["status"].as_str().unwrap_or("");
    format!(
        r#"<tr><td>{}</td><td class="status {status}">{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} s ago</td></tr>"#,
        esc(w["id"].as_str().unwrap_or("")),
        esc(&list("queues").join(", ")),
        current.join(" "),
        w["processed"]
            .as_u64()
            .map_or("—".into(), |n| n.to_string()),
        w["failed"].as_u64().map_or("—".into(), |n| n.to_string()),
        now.saturating_sub(beat) / 1000,
    )
}
