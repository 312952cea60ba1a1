//! `sy workers`.

use serde_json::Value;

use crate::client::{CliError, Client};
use crate::output;

/// `sy workers`: `GET /api/workers`.
pub async fn list(client: &Client, json: bool) -> Result<(), CliError> {
    let v = client.get("/api/workers").await?;
    if json {
        output::json(&v);
        return Ok(());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let rows: Vec<Vec<String>> = v["workers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|w| {
            let seen = w["last_heartbeat_ms"]
                .as_u64()
                .map_or("-".to_owned(), |ms| {
                    format!("{:.1}s ago", now_ms.saturating_sub(ms) as f64 / 1000.0)
                });
            vec![
                output::cell(&w["id"]),
                output::cell(&w["status"]),
                output::cell(&w["queues"]),
                w["current_tasks"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string(),
                output::cell(&w["concurrency"]),
                output::cell(&w["processed"]),
                output::cell(&w["failed"]),
                seen,
            ]
        })
        .collect();
    output::table(
        &[
            "WORKER",
            "STATUS",
            "QUEUES",
            "RUNNING",
            "CONCURRENCY",
            "PROCESSED",
            "FAILED",
            "LAST HEARTBEAT",
        ],
        &rows,
        "no workers",
    );
    let s = &v["summary"];
    if s != &Value::Null {
        println!(
            "{} workers: {} idle, {} busy, {} draining, {} offline; {} tasks running",
            output::cell(&s["total"]),
            output::cell(&s["idle"]),
            output::cell(&s["busy"]),
            output::cell(&s["draining"]),
            output::cell(&s["offline"]),
            output::cell(&s["running_tasks"]),
        );
    }
    Ok(())
}
