//! Child processes of a run: each in its own process group with a clean environment and a log
//! file in the run's temp dir, killed (group and all) when its guard drops, and killed by a
//! watchdog if the bench itself dies without running destructors.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::error::BenchError;

/// Lines of a child's log printed when the run fails.
const LOG_TAIL_LINES: usize = 40;

/// Shell wrapper of every child: a watchdog SIGKILLs the group if the bench (`$1`) is gone, then
/// `exec` runs the program, so it keeps the pid (`$$`) the watchdog watches and that
/// `/proc/<pid>/status` describes. The watchdog wakes twice a second: negligible CPU.
const WRAPPER: &str = r#"
parent=$1; shift
(
  while kill -0 "$parent" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 0.5; done
  kill -0 "$parent" 2>/dev/null || kill -KILL -$$ 2>/dev/null
) >/dev/null 2>&1 </dev/null &
exec "$@"
"#;

/// The run's temp dir holding every child's log (and Redis's working dir); removed on drop
/// unless [`keep`](Self::keep) was called, so a failed run leaves its logs to read.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    keep: bool,
    logs: Mutex<Vec<(String, PathBuf)>>,
}

impl RunDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn create() -> Result<Self, BenchError> {
        let path = std::env::temp_dir().join(format!(
            "switchyard-bench-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&path)
            .map_err(BenchError::io(format!("creating {}", path.display())))?;
        Ok(Self {
            path,
            keep: false,
            logs: Mutex::new(Vec::new()),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh log file path for child `name`, remembered for [`print_log_tails`](Self::print_log_tails).
    pub fn log_for(&self, name: &str) -> PathBuf {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path.join(format!("{:02}-{name}.log", logs.len()));
        logs.push((name.to_owned(), path.clone()));
        path
    }

    /// Prints the last lines of every child's log to stderr and keeps the directory (if any
    /// child was started).
    pub fn print_log_tails(&mut self) {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if logs.is_empty() {
            return;
        }
        self.keep = true;
        for (name, path) in logs.iter() {
            eprintln!(
                "---- last lines of {name} ({}) ----\n{}",
                path.display(),
                tail(path, LOG_TAIL_LINES)
            );
        }
        eprintln!("(logs kept in {})", self.path.display());
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The last `n` lines of a file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound to port 0 and released; a start that loses a race for
/// it is retried by the caller).
pub fn free_port() -> Result<u16, BenchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BenchError::io("finding a free port"))
}

/// A running child: its own process group, stdout and stderr in its log file, SIGKILLed with
/// its group on drop.
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
    /// Set once reaped: from then on its pid may belong to someone else.
    reaped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the child handle intact: keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proc {
    /// Starts `program args` with exactly `env` plus PATH, output appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: PathBuf,
    ) -> Result<Self, BenchError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(BenchError::io(format!("creating {}", log.display())))?;
        let err_file = file
            .try_clone()
            .map_err(BenchError::io("cloning a log file handle"))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file))
            // Own group: a terminal's Ctrl-C reaches only the bench, which then kills the
            // children itself, in order, instead of racing their graceful shutdowns.
            .process_group(0);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        // Allocator and runtime knobs reach the services, so they can be compared in one rig.
        for (k, v) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MIMALLOC_") || k == "RUNTIME_THREADS" {
                cmd.env(k, v);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().map_err(|e| BenchError::Process {
            name: name.to_owned(),
            message: format!("cannot start {}: {e}", program.display()),
        })?;
        Ok(Self {
            name: name.to_owned(),
            pid: child.id(),
            child: Mutex::new(ChildState {
                child,
                reaped: false,
            }),
            log,
        })
    }

    /// The child's label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid (the program's, the wrapper having exec'd it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it has not exited yet.
    pub fn is_running(&self) -> bool {
        let mut state = lock(&self.child);
        if !state.reaped && matches!(state.child.try_wait(), Ok(Some(_))) {
            state.reaped = true;
        }
        !state.reaped
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, LOG_TAIL_LINES)
    }

    /// Whether its log mentions an address already in use (a lost race for a free port).
    pub fn lost_port_race(&self) -> bool {
        fs::read_to_string(&self.log)
            .map(|t| t.to_ascii_lowercase().contains("in use"))
            .unwrap_or(false)
    }

    /// SIGKILLs its group and reaps it, so its port is free when this returns.
    pub fn kill(&self) {
        let mut state = lock(&self.child);
        if state.reaped {
            return;
        }
        // Not reaped yet, so the group id is still ours even if the process just exited.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .stderr(Stdio::null())
            .status();
        let _ = state.child.kill();
        let _ = state.child.wait();
        state.reaped = true;
    }

    /// The error of a child that exited while the run needed it.
    pub fn exited(&self) -> BenchError {
        BenchError::Process {
            name: self.name.clone(),
            message: format!("exited during the run; its log:\n{}", self.log_tail()),
        }
    }
}

/// Resolves with an error as soon as one of `procs` has exited; raced against a phase, it
/// turns a crashed child into a prompt failure instead of a phase timeout.
pub async fn first_exit(procs: &[&Proc]) -> BenchError {
    loop {
        if let Some(p) = procs.iter().find(|p| !p.is_running()) {
            return p.exited();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Rss {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident, in KiB.
    pub peak_kib: u64,
}

impl Rss {
    /// Reads the figures of `pid`.
    pub fn of(pid: u32) -> Result<Self, BenchError> {
        let path = format!("/proc/{pid}/status");
        let text = fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
        Self::parse(&text)
    }

    /// Decodes the text of `/proc/<pid>/status`.
    pub fn parse(text: &str) -> Result<Self, BenchError> {
        let field = |name: &str| -> Result<u64, BenchError> {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .ok_or_else(|| BenchError::Reply(format!("/proc status without {name}")))?;
            let kib = line.trim().strip_suffix("kB").unwrap_or(line).trim();
            kib.parse()
                .map_err(|_| BenchError::Reply(format!("/proc status {name}: {line:?}")))
        };
        Ok(Self {
            rss_kib: field("VmRSS")?,
            peak_kib: field("VmHWM")?,
        })
    }
}

/// Kernel clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system, all threads) this process has used so far, in seconds, so the
/// report can show what the bench itself took from the machine it shares.
pub fn own_cpu_s() -> Result<f64, BenchError> {
    let text =
        fs::read_to_string("/proc/self/stat").map_err(BenchError::io("reading /proc/self/stat"))?;
    cpu_s_of_stat(&text)
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds.
fn cpu_s_of_stat(text: &str) -> Result<f64, BenchError> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| BenchError::Reply(format!("/proc stat without a command: {text:?}")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let tick = |i: usize| -> Result<f64, BenchError> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64 / USER_HZ)
            .ok_or_else(|| BenchError::Reply(format!("/proc stat field {}: {text:?}", i + 3)))
    };
    Ok(tick(11)? + tick(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_memory_lines_decode() {
        let text =
            "Name:\tworker\nVmPeak:\t  900000 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    5432 kB\n";
        assert_eq!(
            Rss::parse(text).expect("decodes"),
            Rss {
                rss_kib: 5432,
                peak_kib: 9876
            }
        );
        assert!(Rss::parse("Name:\tx\nVmRSS:\tlots kB\nVmHWM:\t1 kB\n").is_err());
    }

    #[test]
    fn proc_stat_cpu_times_decode_past_a_command_with_spaces() {
        let line = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        let cpu = cpu_s_of_stat(line).expect("decodes");
        assert!((cpu - 3.0).abs() < 1e-9, "{cpu}");
        assert!(cpu_s_of_stat("42 (x) S 1").is_err());
        assert!(own_cpu_s().is_ok());
    }
}
