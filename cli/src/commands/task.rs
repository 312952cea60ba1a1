//! `sy task ID` and `sy enqueue tool|chat`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::segment;
use crate::args::{Enqueue, EnqueueWhat};
use crate::client::{CliError, Client, DEFAULT_TIMEOUT};
use crate::output;

/// `sy task ID`: `GET /api/tasks/{id}`.
pub async fn show(client: &Client, id: &str, json: bool) -> Result<(), CliError> {
    let v = client.get(&format!("/api/tasks/{}", segment(id))).await?;
    if json {
        output::json(&v);
    } else {
        output::fields(&v);
    }
    Ok(())
}

/// The body of `POST /api/tasks` for `e`.
fn body(e: &Enqueue) -> Result<Value, CliError> {
    let mut task = Map::new();
    match &e.what {
        EnqueueWhat::Tool { tool, args } => {
            let args: Value = serde_json::from_str(args)
                .map_err(|err| CliError::Usage(format!("--args: not JSON: {err}")))?;
            if !args.is_object() {
                return Err(CliError::Usage("--args: must be a JSON object".to_owned()));
            }
            task.insert("kind".into(), json!("tool"));
            task.insert("payload".into(), json!({"tool": tool, "args": args}));
        }
        EnqueueWhat::Chat {
            message,
            session,
            model,
        } => {
            let mut payload = json!({"message": message});
            if let Some(s) = session {
                payload["session_id"] = json!(s);
            }
            if let Some(m) = model {
                payload["model"] = json!(m);
            }
            task.insert("kind".into(), json!("chat"));
            task.insert("payload".into(), payload);
        }
    }
    let optional = [
        ("queue", e.queue.as_ref().map(|q| json!(q))),
        ("max_attempts", e.max_attempts.map(|n| json!(n))),
        ("timeout_ms", e.timeout_ms.map(|n| json!(n))),
        ("delay_ms", e.delay_ms.map(|n| json!(n))),
        (
            "idempotency_key",
            e.idempotency_key.as_ref().map(|k| json!(k)),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            task.insert(k.into(), v);
        }
    }
    Ok(Value::Object(task))
}

/// `sy enqueue …`: `POST /api/tasks`, with `?wait_ms=` under `--wait`.
pub async fn enqueue(client: &Client, e: Enqueue, json: bool) -> Result<(), CliError> {
    let body = body(&e)?;
    let wait = e.wait.then_some(e.wait_secs);
    let (path, timeout) = match wait {
        Some(secs) => (
            format!("/api/tasks?wait_ms={}", secs.saturating_mul(1000)),
            Duration::from_secs(secs) + DEFAULT_TIMEOUT,
        ),
        None => ("/api/tasks".to_owned(), DEFAULT_TIMEOUT),
    };
    let (status, v) = client
        .call(Method::POST, &path, Some(&body), timeout)
        .await?;
    if json {
        output::json(&v);
    }
    let id = output::cell(&v["id"]);
    if wait.is_none() {
        if !json {
            let dup = if v["duplicate"] == Value::Bool(true) {
                " (duplicate of an earlier task with this idempotency key)"
            } else {
                ""
            };
            println!(
                "{id} {} on queue {}{dup}",
                output::cell(&v["state"]),
                output::cell(&v["queue"])
            );
        }
        return Ok(());
    }
    if status == StatusCode::ACCEPTED {
        return Err(CliError::TaskFailed(format!(
            "task {id} did not finish within the wait; see `sy task {id}`"
        )));
    }
    if !json {
        output::fields(&v);
    }
    match v["state"].as_str() {
        Some("succeeded") => Ok(()),
        other => Err(CliError::TaskFailed(format!(
            "task {id} ended {}: {}",
            other.unwrap_or("in an unknown state"),
            output::cell(&v["error"])
        ))),
    }
}
