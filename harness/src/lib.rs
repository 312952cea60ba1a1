//! The process harness shared by the end-to-end tests (`switchyard-tests`) and the bench
//! (`switchyard-bench`): how a real binary or `redis-server` is started as a child, watched,
//! waited for until it answers, and killed. Errors are returned, never panicked: the tests turn
//! them into panics, the bench into its report's error.
//!
//! # Layout
//! - [`process`]: [`Spawn`] → [`Proc`], a child in its own process group with a clean
//!   environment and a [`Log`] file, killed with its group on drop and by a watchdog if its parent
//!   dies first; [`free_port`], [`log_tail`] / [`last_lines`].
//! - [`ready`]: [`start_ready`], start on a free port and poll until the child answers, again on
//!   another port when it lost the race for the first; [`http_ok`], the `/health` probe.
//! - here: [`HarnessError`].

pub mod process;
pub mod ready;

use std::path::PathBuf;
use std::time::Duration;

pub use process::{Log, Proc, Spawn, free_port, last_lines, log_tail};
pub use ready::{Readiness, Started, http_ok, start_ready};

/// Why a child could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file or socket operation of the harness failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The program could not be executed.
    #[error("cannot start {name} ({}): {source}", program.display())]
    Spawn {
        /// The child's label.
        name: String,
        /// The program.
        program: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The child exited before it answered.
    #[error("{name} exited before answering {target}; its log ({}):\n{log}", log_path.display())]
    Exited {
        /// The child's label.
        name: String,
        /// What it was asked on (a URL).
        target: String,
        /// Its log file, kept for reading.
        log_path: PathBuf,
        /// Its whole log.
        log: String,
    },
    /// The child did not answer before the deadline.
    #[error(
        "{name} did not answer on {target} within {deadline:?}; its log ({}):\n{log}",
        log_path.display()
    )]
    NotReady {
        /// The child's label.
        name: String,
        /// What it was asked on (a URL).
        target: String,
        /// How long it was given.
        deadline: Duration,
        /// Its log file, kept for reading.
        log_path: PathBuf,
        /// Its whole log.
        log: String,
    },
}

impl HarnessError {
    /// A [`HarnessError::Io`] naming `what` failed.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
