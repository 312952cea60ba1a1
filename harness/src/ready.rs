//! Starting a child that must answer before it is used: launch it (on a free port), poll a
//! probe until it answers, and launch it again on another port when it exited because someone
//! took the first one between [`free_port`](crate::free_port) and its bind.

use std::time::{Duration, Instant};

use crate::{HarnessError, Proc};

/// How long and how often a child is asked, and how many launches a lost port race gets.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// Launches in all; 1 when the caller fixed the port (no other port to try).
    pub attempts: u32,
    /// How long one launch may take to answer.
    pub deadline: Duration,
    /// Interval of the probes.
    pub poll: Duration,
}

/// A child that answered.
#[derive(Debug)]
pub struct Started<T> {
    /// The process.
    pub proc: Proc,
    /// What the launch returned besides it (its port, its environment).
    pub value: T,
    /// From the successful launch to its first answer.
    pub startup: Duration,
}

/// Calls `launch` (which picks a port, starts the child and says the target `probe` asks,
/// a URL) and polls `probe` every `policy.poll` until it answers `true`. A child that exits
/// after losing its port is launched again, up to `policy.attempts` times in all; any other
/// exit, or no answer within `policy.deadline`, is an error with the child's log (kept on
/// disk).
pub async fn start_ready<T>(
    policy: &Readiness,
    mut launch: impl FnMut() -> Result<(Proc, String, T), HarnessError>,
    mut probe: impl AsyncFnMut(&str) -> bool,
) -> Result<Started<T>, HarnessError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let (proc, target, value) = launch()?;
        let deadline = started + policy.deadline;
        loop {
            if probe(&target).await {
                return Ok(Started {
                    proc,
                    value,
                    startup: started.elapsed(),
                });
            }
            if !proc.is_running() {
                if proc.lost_port_race() && attempt < policy.attempts {
                    break;
                }
                proc.keep_log();
                return Err(HarnessError::Exited {
                    name: proc.name().to_owned(),
                    target,
                    log_path: proc.log_path().to_path_buf(),
                    log: proc.log_text(),
                });
            }
            if Instant::now() >= deadline {
                proc.keep_log();
                return Err(HarnessError::NotReady {
                    name: proc.name().to_owned(),
                    target,
                    deadline: policy.deadline,
                    log_path: proc.log_path().to_path_buf(),
                    log: proc.log_text(),
                });
            }
            tokio::time::sleep(policy.poll).await;
        }
    }
}

/// Whether `GET url` answers 200: the `/health` probe of the `dispatcher` and the `worker`.
pub async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}
