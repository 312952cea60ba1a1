//! `sy dead ls|retry ID|retry-all`.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};

use serde_json::{Value, json};

use super::{query_value, segment};
use crate::args::Dead;
use crate::client::{CliError, Client};
use crate::output;

/// Most dead letters one listing returns per queue (the API's limit).
const PAGE: usize = 1000;

/// Runs one `sy dead` action.
pub async fn run(client: &Client, action: Dead, json: bool) -> Result<(), CliError> {
    match action {
        Dead::Ls { queue, limit } => ls(client, queue.as_deref(), limit, json).await,
        Dead::Retry { id } => {
            let v = client
                .post(&format!("/api/dead/{}/retry", segment(&id)), None)
                .await?;
            if json {
                output::json(&v);
            } else {
                println!("{id} queued again");
            }
            Ok(())
        }
        Dead::RetryAll { queue, yes } => retry_all(client, queue.as_deref(), yes, json).await,
    }
}

fn list_path(queue: Option<&str>, limit: usize) -> String {
    match queue {
        Some(q) => format!("/api/dead?limit={limit}&queue={}", query_value(q)),
        None => format!("/api/dead?limit={limit}"),
    }
}

async fn ls(
    client: &Client,
    queue: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<(), CliError> {
    let v = client.get(&list_path(queue, limit)).await?;
    if json {
        output::json(&v);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = letters(&v)
        .iter()
        .map(|d| {
            vec![
                output::cell(&d["id"]),
                output::cell(&d["queue"]),
                output::cell(&d["attempts"]),
                output::cell(&d["at"]),
                output::short(&output::cell(&d["error"]), 60),
            ]
        })
        .collect();
    output::table(
        &["ID", "QUEUE", "ATTEMPTS", "DEAD SINCE", "LAST ERROR"],
        &rows,
        "no dead letters",
    );
    Ok(())
}

fn letters(v: &Value) -> &[Value] {
    v["dead"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Lists the dead letters and replays each, page after page until a listing holds nothing
/// new (a replayed task that dies again is not replayed twice in one run).
async fn retry_all(
    client: &Client,
    queue: Option<&str>,
    yes: bool,
    json: bool,
) -> Result<(), CliError> {
    let first = client.get(&list_path(queue, PAGE)).await?;
    let count = letters(&first).len();
    if count == 0 {
        if json {
            output::json(&json!({"retried": 0, "skipped": 0}));
        } else {
            println!("no dead letters");
        }
        return Ok(());
    }
    if !yes && !confirm(count)? {
        return Err(CliError::Usage("not confirmed; nothing retried".to_owned()));
    }
    let (mut retried, mut skipped) = (0u64, 0u64);
    let mut seen: HashSet<String> = HashSet::new();
    let mut listing = first;
    loop {
        let fresh: Vec<String> = letters(&listing)
            .iter()
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .filter(|id| seen.insert(id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for id in fresh {
            match client
                .post(&format!("/api/dead/{}/retry", segment(&id)), None)
                .await
            {
                Ok(_) => retried += 1,
                // Replayed or expired since the listing: not an error of this run.
                Err(CliError::NotFound(_) | CliError::Refused { status: 409, .. }) => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        listing = client.get(&list_path(queue, PAGE)).await?;
    }
    if json {
        output::json(&json!({"retried": retried, "skipped": skipped}));
    } else {
        println!("{retried} dead letters queued again ({skipped} skipped: no longer dead)");
    }
    Ok(())
}

/// Asks on the terminal; without one the caller must pass `--yes`.
fn confirm(count: usize) -> Result<bool, CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!(
            "retry-all would queue {count} dead letters again: pass --yes to confirm (stdin is not a terminal)"
        )));
    }
    eprint!("queue {count} dead letters again? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Usage(format!("reading the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
