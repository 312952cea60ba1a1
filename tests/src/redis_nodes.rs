//! Building blocks of the multi-process Redis fixtures (TLS, Sentinel, Cluster): a
//! `redis-server` / `redis-sentinel` child on a free loopback port, waited for with `redis-cli`,
//! and `redis-cli` itself. Every child is a [`Proc`]: killed by pid (its process group) on drop
//! or when the test process dies.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{POLL_INTERVAL, Proc, free_port};

/// How long a node may take to answer PING after start.
const NODE_START_DEADLINE: Duration = Duration::from_secs(15);

/// `redis-cli -p port [tls…] args…`: its stdout, trimmed, or the error text.
pub fn cli(port: u16, tls: &[&str], args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(tls)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !text.starts_with("ERR") && !text.contains("Could not connect") {
        Ok(text)
    } else {
        Err(format!(
            "{text}{}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Starts `program` (redis-server or redis-sentinel) with `args` on a fresh port chosen by
/// `args_for(port)`, and polls `PING` (over `tls` options) until it answers; a few ports are
/// tried when one was taken in the meantime.
pub fn start_node(
    label: &str,
    program: &str,
    tls: &[&str],
    args_for: impl Fn(u16) -> Vec<String>,
) -> (Proc, u16) {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let args = args_for(port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = Proc::spawn(label, Path::new(program), &args, &[]);
        match wait_ping(&proc, port, tls) {
            Ok(()) => return (proc, port),
            Err(e) => last = e,
        }
    }
    panic!("{label} did not start: {last}");
}

fn wait_ping(proc: &Proc, port: u16, tls: &[&str]) -> Result<(), String> {
    let deadline = Instant::now() + NODE_START_DEADLINE;
    loop {
        if cli(port, tls, &["PING"]).is_ok_and(|r| r == "PONG") {
            return Ok(());
        }
        if !proc.is_running() {
            return Err(format!("exited at start; its log:\n{}", proc.log_text()));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no PONG on port {port} within {NODE_START_DEADLINE:?}; log:\n{}",
                proc.log_tail(30)
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The arguments every test node shares: loopback, no persistence, data in `dir`.
pub fn base_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.to_string_lossy(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Polls `check` until it answers `Some`, panicking after `within` with `what`.
pub fn poll_sync<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}
