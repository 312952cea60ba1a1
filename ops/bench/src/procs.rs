//! The run's children as the bench sees them, around the harness's
//! [`Proc`](switchyard_harness::Proc): the run's temp dir holding their logs, how they are
//! spawned here (which variables reach them), the error of one that died, and their memory and
//! CPU from `/proc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_harness::{Log, Proc, Spawn, log_tail};

use crate::error::BenchError;

/// Lines of a child's log printed when the run fails.
const LOG_TAIL_LINES: usize = 40;

/// Variables of the bench that reach its children: PATH, and the allocator and runtime knobs,
/// so they can be compared in one rig.
const INHERITED: &[&str] = &["PATH", "MIMALLOC_*", "RUNTIME_THREADS"];

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

    /// How the bench starts child `name`: a fresh log in this dir, [`INHERITED`] passed through.
    pub fn spawn(&self, name: &str, program: &Path) -> Spawn {
        Spawn::new(name, program, Log::Kept(self.log_for(name))).inherit(INHERITED)
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
                log_tail(path, LOG_TAIL_LINES)
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

/// The error of a child that exited while the run needed it.
pub fn exited(proc: &Proc) -> BenchError {
    BenchError::Process {
        name: proc.name().to_owned(),
        message: format!(
            "exited during the run; its log:\n{}",
            proc.log_tail(LOG_TAIL_LINES)
        ),
    }
}

/// Resolves with an error as soon as one of `procs` has exited; raced against a phase, it
/// turns a crashed child into a prompt failure instead of a phase timeout.
pub async fn first_exit(procs: &[&Proc]) -> BenchError {
    loop {
        if let Some(p) = procs.iter().find(|p| !p.is_running()) {
            return exited(p);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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

/// CPU time (user + system, all threads) process `pid` has used so far, in seconds.
pub fn cpu_s(pid: u32) -> Result<f64, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
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
