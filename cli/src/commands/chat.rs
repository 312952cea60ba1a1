//! `sy chat`: streamed turns of one session (`POST /api/chat` with `"stream": true`), the
//! answer printed as its pieces arrive.

use std::io::{BufRead, Write};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::client::{CliError, Client};
use crate::output;

/// Settings of every turn.
#[derive(Debug)]
pub struct Options {
    /// Session to continue; after the first turn, the one the dispatcher made.
    pub session: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// System prompt.
    pub system: Option<String>,
}

/// One turn with `message`, or one per stdin line when it is absent, all in one session.
pub async fn run(
    client: &Client,
    message: Option<String>,
    mut opts: Options,
    json: bool,
) -> Result<(), CliError> {
    if let Some(m) = message {
        return turn(client, &m, &mut opts, json).await;
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        turn(client, &line, &mut opts, json).await?;
    }
    Ok(())
}

async fn turn(
    client: &Client,
    message: &str,
    opts: &mut Options,
    json: bool,
) -> Result<(), CliError> {
    let mut body = json!({"message": message, "stream": true});
    for (k, v) in [
        ("session_id", &opts.session),
        ("model", &opts.model),
        ("system", &opts.system),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    let mut events = Box::pin(client.events("/api/chat", Some(&body)).await?);
    let mut out = std::io::stdout();
    while let Some(ev) = events.next().await {
        let ev = ev?;
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        if json {
            output::json_line(&json!({"event": ev.event, "id": ev.id, "data": data}));
        }
        match ev.event.as_str() {
            "start" => {
                if let Some(s) = data["session_id"].as_str() {
                    if opts.session.is_none() && !json {
                        eprintln!("session {s} (continue it with --session {s})");
                    }
                    opts.session = Some(s.to_owned());
                }
            }
            "delta" if !json => {
                print!("{}", data["text"].as_str().unwrap_or_default());
                let _ = out.flush();
            }
            "restart" if !json => println!(
                "\n[the answer restarts: attempt {}]",
                output::cell(&data["attempt"])
            ),
            "done" => {
                if !json {
                    println!();
                }
                return Ok(());
            }
            "error" => {
                if !json {
                    println!();
                }
                return Err(CliError::TaskFailed(format!(
                    "the chat failed ({}): {}",
                    output::cell(&data["error"]["code"]),
                    output::cell(&data["error"]["message"])
                )));
            }
            _ => {}
        }
    }
    Err(CliError::TaskFailed(
        "the stream ended before the answer did (the dispatcher went away?)".to_owned(),
    ))
}
