//! The bench's error type: everything that stops a run before its report is complete.

use switchyard_harness::{HarnessError, last_lines};

use crate::info::InfoError;

/// Lines of a child's log quoted in an error.
const LOG_TAIL_LINES: usize = 40;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A bad flag or `SY_BENCH_*` value.
    #[error("usage: {0}")]
    Usage(String),
    /// `redis-server` is not on PATH.
    #[error(
        "redis-server not found on PATH (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"
    )]
    RedisServerMissing,
    /// A binary the bench runs is not where `--bin-dir` points.
    #[error(
        "{0} not found (build it: cargo build --release -p switchyard-dispatcher -p switchyard-worker, or pass --bin-dir)"
    )]
    BinaryMissing(String),
    /// A child process could not be started or did not become ready.
    #[error("{name}: {message}")]
    Process {
        /// The child's label.
        name: String,
        /// What went wrong (log tail included where useful).
        message: String,
    },
    /// A Redis command of the bench failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// An HTTP client could not be built.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// An `INFO` reply could not be decoded.
    #[error(transparent)]
    Info(#[from] InfoError),
    /// A reply of Redis or the dispatcher did not have the expected shape.
    #[error("unexpected reply: {0}")]
    Reply(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A spawned producer or reader panicked or was cancelled.
    #[error("a bench task died: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl BenchError {
    /// An [`BenchError::Io`] naming `what` failed.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

impl From<HarnessError> for BenchError {
    /// A child that would not start names itself with the end of its log, as the run's own
    /// failures do.
    fn from(e: HarnessError) -> Self {
        let tail = |log: &str| last_lines(log, LOG_TAIL_LINES);
        match e {
            HarnessError::Io { what, source } => Self::Io { what, source },
            HarnessError::Spawn {
                name,
                program,
                source,
            } => Self::Process {
                name,
                message: format!("cannot start {}: {source}", program.display()),
            },
            HarnessError::Exited {
                name, target, log, ..
            } => Self::Process {
                name,
                message: format!("exited before answering {target}; its log:\n{}", tail(&log)),
            },
            HarnessError::NotReady {
                name,
                target,
                deadline,
                log,
                ..
            } => Self::Process {
                name,
                message: format!(
                    "no answer from {target} within {deadline:?}; its log:\n{}",
                    tail(&log)
                ),
            },
        }
    }
}
