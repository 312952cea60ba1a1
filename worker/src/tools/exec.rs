//! `exec`: runs an argument vector (no shell) in the sandbox directory with an empty environment
//! apart from `PATH` and `HOME`, so the worker's secrets never reach it. The command is killed at
//! its time limit (and when the task is cancelled or timed out, by dropping it); stdout and
//! stderr are kept up to a byte limit each and drained beyond it so the command never blocks.
//! This bounds time and output; it is not a security boundary: run workers with `exec` on as an
//! unprivileged user in a container.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::WorkerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{ToolError, args};

/// The `exec` tool.
#[derive(Debug, Clone)]
pub struct Exec {
    dir: PathBuf,
    timeout: Duration,
    max_output: usize,
    path_env: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecArgs {
    argv: Vec<String>,
    #[serde(default)]
    stdin: Option<String>,
    /// Lower than `EXEC_TIMEOUT_MS` only.
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Bytes read from a stream, up to a limit.
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Exec {
    /// `exec` working in `dir` with the `EXEC_*` limits.
    pub fn from_config(dir: &Path, cfg: &WorkerConfig) -> Self {
        Self::new(
            dir,
            cfg.tools.exec_timeout,
            cfg.tools.exec_max_output_bytes,
            &cfg.tools.exec_path,
        )
    }

    /// `exec` working in `dir`, killing commands after `timeout`, keeping `max_output` bytes of
    /// each stream, with `PATH=path_env`.
    pub fn new(dir: &Path, timeout: Duration, max_output: usize, path_env: &str) -> Self {
        Self {
            dir: dir.to_owned(),
            timeout,
            max_output,
            path_env: path_env.to_owned(),
        }
    }

    /// `{"argv": [program, args…], "stdin"?, "timeout_ms"?}` →
    /// `{exit_code, signal, stdout, stderr, stdout_truncated, stderr_truncated}`. A non-zero
    /// exit is output; a command that cannot start or is killed at its time limit fails
    /// permanently.
    pub async fn run(&self, v: &Value) -> Result<Value, ToolError> {
        let a: ExecArgs = args("exec", v)?;
        let Some((program, rest)) = a.argv.split_first() else {
            return Err(ToolError::Permanent(
                "exec: args.argv: must name a program".into(),
            ));
        };
        let limit = a.timeout_ms.map_or(self.timeout, |ms| {
            Duration::from_millis(ms).min(self.timeout)
        });
        let mut child = Command::new(program)
            .args(rest)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.dir)
            .stdin(if a.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the future (cancel, task timeout, shutdown) kills the command.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ToolError::Permanent(format!("exec: cannot start {program:?}: {e}")))?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let (Some(mut pipe), Some(text)) = (stdin, a.stdin) {
                // A command that exits without reading its input is not an error.
                let _ = pipe.write_all(text.as_bytes()).await;
            }
        };
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let max = self.max_output;
        let ran = tokio::time::timeout(limit, async {
            let ((), out, err, status) =
                tokio::join!(feed, capture(out, max), capture(err, max), child.wait());
            (out, err, status)
        })
        .await;
        let (out, err, status) = match ran {
            Ok(r) => r,
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ToolError::Permanent(format!(
                    "exec: {program:?} killed after {} ms (time limit)",
                    limit.as_millis()
                )));
            }
        };
        let status = status
            .map_err(|e| ToolError::Retryable(format!("exec: waiting for {program:?}: {e}")))?;
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal: Option<i32> = None;
        Ok(json!({
            "exit_code": status.code(),
            "signal": signal,
            "stdout": String::from_utf8_lossy(&out.bytes),
            "stderr": String::from_utf8_lossy(&err.bytes),
            "stdout_truncated": out.truncated,
            "stderr_truncated": err.truncated,
        }))
    }
}

/// Reads `stream` to its end, keeping the first `max` bytes.
async fn capture(stream: Option<impl AsyncRead + Unpin>, max: usize) -> Captured {
    let mut kept = Captured {
        bytes: Vec::new(),
        truncated: false,
    };
    let Some(mut stream) = stream else {
        return kept;
    };
    let mut buf = vec![0u8; 8 << 10];
    // A read error ends the capture; the exit status still tells how the command ended.
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = max - kept.bytes.len();
        if n > room {
            kept.truncated = true;
        }
        kept.bytes.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}
