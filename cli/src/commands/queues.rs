//! `sy queues`, `sy pause Q`, `sy resume Q`.

use serde_json::Value;

use super::segment;
use crate::client::{CliError, Client};
use crate::output;

/// `sy queues`: `GET /api/queues`.
pub async fn list(client: &Client, json: bool) -> Result<(), CliError> {
    let v = client.get("/api/queues").await?;
    if json {
        output::json(&v);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v["queues"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|q| {
            let state = if q["paused"] == Value::Bool(true) {
                "paused"
            } else {
                "active"
            };
            vec![
                output::cell(&q["queue"]),
                state.to_owned(),
                output::cell(&q["waiting"]),
                output::cell(&q["pending"]),
                output::cell(&q["delayed"]),
                output::cell(&q["dead"]),
                output::cell(&q["counts"]["succeeded"]),
                output::cell(&q["counts"]["failed"]),
                output::cell(&q["consumers"]),
            ]
        })
        .collect();
    output::table(
        &[
            "QUEUE",
            "STATE",
            "WAITING",
            "RUNNING",
            "DELAYED",
            "DEAD",
            "SUCCEEDED",
            "FAILED",
            "CONSUMERS",
        ],
        &rows,
        "no queues",
    );
    Ok(())
}

/// `sy pause Q` / `sy resume Q`: `POST /api/queues/{q}/pause|resume`.
pub async fn set_paused(
    client: &Client,
    queue: &str,
    pause: bool,
    json: bool,
) -> Result<(), CliError> {
    let action = if pause { "pause" } else { "resume" };
    let v = client
        .post(&format!("/api/queues/{}/{action}", segment(queue)), None)
        .await?;
    if json {
        output::json(&v);
        return Ok(());
    }
    let state = if pause { "paused" } else { "resumed" };
    if v["changed"] == Value::Bool(true) {
        println!("queue {queue} {state}");
    } else {
        println!("queue {queue} was already {state}; nothing changed");
    }
    Ok(())
}
