//! Child processes of a test: a clean environment, output captured in a log file, killed with
//! their process group on drop, and killed by a watchdog if the test process dies first.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::unique_name;

/// Log lines printed when a test panics while a process is alive.
const LOG_TAIL_LINES: usize = 60;

/// Shell wrapper of every [`Proc`]: starts a watchdog that SIGKILLs the process group if the
/// test process (`$1`) dies, then `exec`s the program, which so keeps the pid (`$$`) the watchdog
/// watches and that [`Proc::pid`] reports.
const PROC_WRAPPER: &str = r#"
parent=$1; shift
(
  while kill -0 "$parent" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 0.5; done
  kill -0 "$parent" 2>/dev/null || kill -KILL -$$ 2>/dev/null
) >/dev/null 2>&1 </dev/null &
exec "$@"
"#;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the child handle intact: keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process in its own process group, with a clean environment (PATH and HOME kept),
/// whose stdout and stderr go to a log file; its group is SIGKILLed on drop if it still runs. The
/// log is removed on drop unless the test is panicking, in which case its tail is printed.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Mutex<ChildState>,
    pid: u32,
    log: PathBuf,
}

#[derive(Debug)]
struct ChildState {
    child: Child,
    /// Set once the child is reaped: from then on its pid may belong to someone else.
    status: Option<ExitStatus>,
}

impl ChildState {
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.status = Some(st);
        }
        self.status
    }
}

impl Proc {
    /// Spawns `program` with `args` and exactly the environment `env` plus PATH and HOME; `name`
    /// labels its log. It is SIGKILLed by a watchdog if the test process dies first.
    pub fn spawn(name: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique_name(name)));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("cannot create a process log file under the temp dir");
        let err_file = file.try_clone().expect("cannot clone a log file handle");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(PROC_WRAPPER)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file))
            // Its own group: a kill takes its children too, and a terminal's Ctrl-C does not
            // reach it before the test sees it (the watchdog then cleans up).
            .process_group(0);
        for keep in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", program.display()));
        Self {
            name: name.to_owned(),
            pid: child.id(),
            child: Mutex::new(ChildState {
                child,
                status: None,
            }),
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the file holding its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has not exited yet.
    pub fn is_running(&self) -> bool {
        lock(&self.child).poll().is_none()
    }

    /// Sends SIGTERM (graceful shutdown) to the process alone, if it is still running.
    pub fn sigterm(&self) {
        let mut state = lock(&self.child);
        // Under the lock and before reaping, so the pid cannot have been recycled.
        if state.poll().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Sends SIGKILL to its whole process group and reaps it, so it is gone when this returns.
    pub fn sigkill(&self) {
        let mut state = lock(&self.child);
        if state.status.is_none() {
            // Not reaped yet, so the group id is still ours even if the process just exited.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid)])
                .stderr(Stdio::null())
                .status();
            let _ = state.child.kill();
            state.status = state.child.wait().ok();
        }
    }

    /// Waits up to `timeout` for it to exit; its exit status, or `None` if still running.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = lock(&self.child).poll() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            eprintln!(
                "---- last log lines of {} (pid {}, full log: {}) ----\n{}\n---- end of {} ----",
                self.name,
                self.pid,
                self.log.display(),
                self.log_tail(),
                self.name
            );
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}
