//! `sy tail`: the live events of finished tasks (`GET /api/events`, server-sent events).

use futures::StreamExt;
use serde_json::{Value, json};

use super::query_value;
use crate::client::{CliError, Client};
use crate::output;

/// Prints each finished task as it finishes, until the stream ends or `count` were printed.
pub async fn run(
    client: &Client,
    queue: Option<&str>,
    count: Option<u64>,
    json: bool,
) -> Result<(), CliError> {
    let path = match queue {
        Some(q) => format!("/api/events?queue={}", query_value(q)),
        None => "/api/events".to_owned(),
    };
    let mut events = Box::pin(client.events(&path, None).await?);
    // On stderr in both modes: a script (or a test) knows from it that nothing finishing from
    // now on is missed.
    eprintln!("watching finished tasks (Ctrl-C to stop)");
    let mut shown = 0u64;
    if count == Some(0) {
        return Ok(());
    }
    while let Some(ev) = events.next().await {
        let ev = ev?;
        if ev.event != "finished" {
            continue;
        }
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        if json {
            output::json_line(&json!(data));
        } else {
            println!(
                "{}  {:<10}  {:<10}  {}",
                time_of(&data["entry"]),
                output::cell(&data["queue"]),
                output::cell(&data["state"]),
                output::cell(&data["id"])
            );
        }
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
    }
    Err(CliError::Unreachable {
        url: path,
        reason: "the dispatcher ended the event stream".to_owned(),
    })
}

/// The UTC time of day of an events-stream entry id (`<ms>-<seq>`), `HH:MM:SS.mmm`.
fn time_of(entry: &Value) -> String {
    let ms: u64 = entry
        .as_str()
        .and_then(|e| e.split('-').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::time_of;
    use serde_json::json;

    #[test]
    fn an_entry_id_shows_as_its_utc_time_of_day() {
        // 2024-12-03T10:20:30.456Z
        assert_eq!(time_of(&json!("1733221230456-0")), "10:20:30.456");
        assert_eq!(time_of(&json!(null)), "00:00:00.000");
    }
}
