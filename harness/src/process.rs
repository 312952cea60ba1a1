//! Child processes: each in its own process group with a clean environment, stdout and stderr
//! in a log file, SIGKILLed with its group on drop, and killed by a watchdog if the parent (a
//! test or the bench) dies without running destructors.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// Log lines printed when a child with an owned log is dropped during a panic.
const PANIC_TAIL_LINES: usize = 60;

/// Shell wrapper of every child: a watchdog SIGKILLs the program and its group if the parent
/// (`$1`) is gone, after removing the directory `$2` (if not empty) that no destructor will
/// remove then; `exec` runs the program, so it keeps the pid (`$$`) the watchdog watches and that
/// [`Proc::pid`] reports. The watchdog wakes twice a second: negligible CPU.
const WRAPPER: &str = r#"
parent=$1; orphan_dir=$2; shift 2
(
  while kill -0 "$parent" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 0.5; done
  if ! kill -0 "$parent" 2>/dev/null; then
    kill -KILL $$ 2>/dev/null
    if [ -n "$orphan_dir" ]; then
      # Until the program is reaped (bounded), so none of its writes lands after the removal.
      n=0
      while kill -0 $$ 2>/dev/null && [ "$n" -lt 20 ]; do sleep 0.1; n=$((n+1)); done
      rm -rf "$orphan_dir"
    fi
    kill -KILL -$$ 2>/dev/null
  fi
) >/dev/null 2>&1 </dev/null &
exec "$@"
"#;

/// Where a child's output goes, and who removes the file.
#[derive(Debug, Clone)]
pub enum Log {
    /// The child's own file: removed when the [`Proc`] drops, unless a panic is under way (its
    /// tail is then printed and the file kept) or [`Proc::keep_log`] was called.
    Owned(PathBuf),
    /// A file the caller keeps (the bench's run dir): left in place.
    Kept(PathBuf),
}

/// How to start one child: program, arguments, exactly the environment given plus the
/// variables inherited by name, and its log.
#[derive(Debug)]
pub struct Spawn {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    inherit: Vec<String>,
    log: Log,
    orphan_dir: Option<PathBuf>,
    /// The process whose death the watchdog waits for: this one, except in the harness's tests.
    parent: u32,
}

impl Spawn {
    /// `program` labelled `name` (in logs and errors), with no arguments and an empty
    /// environment.
    pub fn new(name: &str, program: &Path, log: Log) -> Self {
        Self {
            name: name.to_owned(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            inherit: Vec::new(),
            log,
            orphan_dir: None,
            parent: std::process::id(),
        }
    }

    /// Adds arguments.
    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets variables; they win over inherited ones.
    pub fn envs<K: Into<OsString>, V: Into<OsString>>(
        mut self,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Passes these variables of the parent's environment through: exact names, or prefixes
    /// ending in `*` (`MIMALLOC_*`).
    pub fn inherit(mut self, names: &[&str]) -> Self {
        self.inherit.extend(names.iter().map(|n| (*n).to_owned()));
        self
    }

    /// Has the watchdog remove `dir` when it kills the child because the parent died: a
    /// server's data dir, when the server lives in a static no destructor drops.
    pub fn remove_if_orphaned(mut self, dir: &Path) -> Self {
        self.orphan_dir = Some(dir.to_path_buf());
        self
    }

    fn inherits(&self, key: &str) -> bool {
        self.inherit.iter().any(|n| match n.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == n,
        })
    }

    /// Starts the child.
    pub fn start(self) -> Result<Proc, HarnessError> {
        let (Log::Owned(log) | Log::Kept(log)) = &self.log;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(HarnessError::io(format!("creating {}", log.display())))?;
        let err_file = file
            .try_clone()
            .map_err(HarnessError::io("cloning a log file handle"))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(self.parent.to_string())
            .arg(self.orphan_dir.as_deref().unwrap_or(Path::new("")))
            .arg(&self.program)
            .args(&self.args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file))
            // Own group: a kill takes its children too, and a terminal's Ctrl-C reaches only
            // the parent, which then stops its children itself (the watchdog if it dies).
            .process_group(0);
        for (k, v) in std::env::vars_os() {
            if self.inherits(&k.to_string_lossy()) {
                cmd.env(k, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            name: self.name.clone(),
            program: self.program.clone(),
            source,
        })?;
        let (log, owned) = match self.log {
            Log::Owned(p) => (p, true),
            Log::Kept(p) => (p, false),
        };
        Ok(Proc {
            name: self.name,
            pid: child.id(),
            child: Mutex::new(ChildState {
                child,
                status: None,
            }),
            log,
            owns_log: AtomicBool::new(owned),
        })
    }
}

/// A running child; see [`Spawn`]. SIGKILLed with its group on drop if it still runs.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Mutex<ChildState>,
    pid: u32,
    log: PathBuf,
    owns_log: AtomicBool,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the child handle intact: keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proc {
    /// Its label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid (the program's, the wrapper having exec'd it).
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

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// Leaves an [`Log::Owned`] file in place on drop, for a caller that reports its path.
    pub fn keep_log(&self) {
        self.owns_log.store(false, Ordering::Relaxed);
    }

    /// Whether its log mentions an address already in use (a lost race for a free port).
    pub fn lost_port_race(&self) -> bool {
        self.log_text().to_ascii_lowercase().contains("in use")
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

    /// Sends SIGKILL to its whole process group and reaps it, so it is gone (and its port
    /// free) when this returns.
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
        if !self.owns_log.load(Ordering::Relaxed) {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "---- last log lines of {} (pid {}, full log: {}) ----\n{}\n---- end of {} ----",
                self.name,
                self.pid,
                self.log.display(),
                self.log_tail(PANIC_TAIL_LINES),
                self.name
            );
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// The last `n` lines of a file (empty when unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    last_lines(&fs::read_to_string(path).unwrap_or_default(), n)
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it (a start that loses
/// a race for it is retried by [`start_ready`](crate::start_ready)).
pub fn free_port() -> Result<u16, HarnessError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(HarnessError::io("finding a free port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_names_match_exactly_or_by_prefix() {
        let s = Spawn::new("x", Path::new("/bin/true"), Log::Kept(PathBuf::new()))
            .inherit(&["PATH", "MIMALLOC_*"]);
        assert!(s.inherits("PATH"));
        assert!(!s.inherits("PATHX"));
        assert!(s.inherits("MIMALLOC_ARENA_EAGER_COMMIT"));
        assert!(!s.inherits("HOME"));
    }

    /// Polls `done` every 20 ms for up to 10 s.
    fn within_10s(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn the_watchdog_kills_the_child_and_removes_its_dir_when_the_parent_dies() {
        let base = std::env::temp_dir().join(format!(
            "switchyard-harness-watchdog-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let dir = base.join("data");
        fs::create_dir_all(&dir).expect("temp dir");
        // A stand-in parent: the watchdog cannot watch this test process die.
        let mut parent = Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let mut spawn = Spawn::new("orphan", Path::new("/bin/sh"), Log::Kept(base.join("log")))
            .args(["-c", "echo up; sleep 30"])
            .inherit(&["PATH"])
            .remove_if_orphaned(&dir);
        spawn.parent = parent.id();
        let proc = spawn.start().expect("starts");
        assert!(within_10s(|| proc.log_text().contains("up")));
        assert!(proc.is_running() && dir.is_dir());

        let _ = parent.kill();
        let _ = parent.wait();
        assert!(
            within_10s(|| !proc.is_running() && !dir.exists()),
            "the orphan still runs or its dir is left"
        );
        drop(proc);
        let _ = fs::remove_dir_all(&base);
    }
}
