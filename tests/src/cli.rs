//! The `sy` binary as a test client: run once to completion with `SWITCHYARD_URL` and
//! `SWITCHYARD_TOKEN` of a test dispatcher, or kept running (`sy tail`) with its output read
//! line by line.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::{Dispatcher, bin_path};

/// How long one `sy` run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// What one `sy` run left.
#[derive(Debug)]
pub struct SyOutput {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl SyOutput {
    /// Stdout as one JSON value; panics naming the output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("sy printed no JSON ({e}): {self:?}"))
    }

    /// Stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"))
            })
            .collect()
    }
}

fn command(d: &Dispatcher, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_path("sy"));
    cmd.args(args)
        .env_clear()
        .env("SWITCHYARD_URL", d.base_url())
        .env("SWITCHYARD_TOKEN", d.secret())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `sy ARGS` against `d` with `stdin` as its input (none: an empty stdin).
pub async fn sy_with_input(d: &Dispatcher, args: &[&str], stdin: Option<&str>) -> SyOutput {
    let mut cmd = command(d, args);
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sy: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("writing sy's stdin: {e}"));
        }
        drop(pipe);
    }
    let out = tokio::time::timeout(RUN_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("sy {args:?} did not end within {RUN_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("sy {args:?} failed to run: {e}"));
    SyOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `sy ARGS` against `d` with an empty stdin.
pub async fn sy(d: &Dispatcher, args: &[&str]) -> SyOutput {
    sy_with_input(d, args, None).await
}

/// A `sy` left running, its output read line by line.
#[derive(Debug)]
pub struct SyChild {
    /// The process (killed on drop).
    pub child: Child,
    /// Its stdout lines.
    pub stdout: Lines<BufReader<ChildStdout>>,
    /// Its stderr lines.
    pub stderr: Lines<BufReader<ChildStderr>>,
}

/// Starts `sy ARGS` against `d` and leaves it running.
pub fn sy_spawn(d: &Dispatcher, args: &[&str]) -> SyChild {
    let mut cmd = command(d, args);
    cmd.stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sy: {e}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    SyChild {
        child,
        stdout: BufReader::new(stdout).lines(),
        stderr: BufReader::new(stderr).lines(),
    }
}

/// The next line of `lines` within `within`; panics naming `what` otherwise.
pub async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    what: &str,
    within: Duration,
) -> String {
    match tokio::time::timeout(within, lines.next_line()).await {
        Ok(Ok(Some(l))) => l,
        Ok(Ok(None)) => panic!("{what}: the output ended"),
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: nothing within {within:?}"),
    }
}
