//! The `dispatcher` and `worker` binaries as the bench runs them: only their real variables in a
//! clean environment, free loopback ports, and started only once `/health` answers 200.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_harness::{Proc, Readiness, free_port, http_ok, start_ready};

use crate::config::WORKER_CONCURRENCY;
use crate::error::BenchError;
use crate::procs::RunDir;

/// A binary gets 30 s to answer `/health`, asked every 20 ms; 3 starts when the free port was
/// taken before it bound it.
const READINESS: Readiness = Readiness {
    attempts: 3,
    deadline: Duration::from_secs(30),
    poll: Duration::from_millis(20),
};

/// What every child of one run shares.
#[derive(Debug)]
pub struct Launcher<'a> {
    dir: &'a RunDir,
    bin_dir: PathBuf,
    redis_url: String,
    log_level: String,
    secret: String,
    health: reqwest::Client,
    /// Variables every child gets on top of (or instead of) its own: `REDIS_MODE`, TLS files.
    extra_env: Vec<(String, String)>,
}

/// A dispatcher answering on a loopback port.
#[derive(Debug)]
pub struct Dispatcher {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Time from spawn to the first 200 of `/health`.
    pub startup: Duration,
}

/// A worker with its health server on a loopback port.
#[derive(Debug)]
pub struct Worker {
    /// The process.
    pub proc: Proc,
    /// Time from spawn to the first 200 of `/health`.
    pub startup: Duration,
}

/// Fails, naming the path, when `dispatcher` or `worker` is not in `bin_dir`.
pub fn check_binaries(bin_dir: &Path) -> Result<(), BenchError> {
    for bin in ["dispatcher", "worker"] {
        let path = bin_dir.join(bin);
        if !path.is_file() {
            return Err(BenchError::BinaryMissing(path.display().to_string()));
        }
    }
    Ok(())
}

impl<'a> Launcher<'a> {
    /// A launcher of the binaries in `bin_dir`, all on `redis_url`; fails when one is missing.
    pub fn new(
        dir: &'a RunDir,
        bin_dir: &Path,
        redis_url: &str,
        log_level: &str,
    ) -> Result<Self, BenchError> {
        check_binaries(bin_dir)?;
        Ok(Self {
            dir,
            bin_dir: bin_dir.to_path_buf(),
            redis_url: redis_url.to_owned(),
            log_level: log_level.to_owned(),
            secret: format!("bench-{:032x}", rand::random::<u128>()),
            health: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()?,
            extra_env: Vec::new(),
        })
    }

    /// This launcher with `env` added to (or overriding) every child's variables.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.extra_env = env;
        self
    }

    /// The bearer token every dispatcher of this run requires.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Starts a dispatcher with keys under `prefix`.
    pub async fn dispatcher(&self, prefix: &str) -> Result<Dispatcher, BenchError> {
        let base = vec![
            ("REDIS_URL".to_owned(), self.redis_url.clone()),
            ("QUEUE_PREFIX".to_owned(), prefix.to_owned()),
            ("ROOT_NODE_SECRET".to_owned(), self.secret.clone()),
            ("LOG_LEVEL".to_owned(), self.log_level.clone()),
        ];
        let (proc, port, startup) = self
            .start("dispatcher", base, "DISPATCHER_ADDR", |p| {
                format!("127.0.0.1:{p}")
            })
            .await?;
        Ok(Dispatcher {
            proc,
            base_url: format!("http://127.0.0.1:{port}"),
            startup,
        })
    }

    /// Starts a worker named `id` on queue `tool` with keys under `prefix`.
    pub async fn worker(&self, prefix: &str, id: &str) -> Result<Worker, BenchError> {
        self.worker_with(prefix, id, &[]).await
    }

    /// Starts a worker like [`Launcher::worker`], with `extra` variables added or overriding.
    pub async fn worker_with(
        &self,
        prefix: &str,
        id: &str,
        extra: &[(&str, &str)],
    ) -> Result<Worker, BenchError> {
        let mut base = vec![
            ("REDIS_URL".to_owned(), self.redis_url.clone()),
            ("QUEUE_PREFIX".to_owned(), prefix.to_owned()),
            ("WORKER_ID".to_owned(), id.to_owned()),
            ("WORKER_BIND".to_owned(), "127.0.0.1".to_owned()),
            ("WORKER_QUEUES".to_owned(), "tool".to_owned()),
            (
                "WORKER_CONCURRENCY".to_owned(),
                WORKER_CONCURRENCY.to_string(),
            ),
            ("LLM_PROVIDER".to_owned(), "echo".to_owned()),
            ("LOG_LEVEL".to_owned(), self.log_level.clone()),
        ];
        for (k, v) in extra {
            base.retain(|(name, _)| name != k);
            base.push(((*k).to_owned(), (*v).to_owned()));
        }
        let (proc, _, startup) = self
            .start("worker", base, "WORKER_PORT", |p| p.to_string())
            .await?;
        Ok(Worker { proc, startup })
    }

    /// Spawns `bin` with `env` plus `port_var` on a free port and waits for its `/health`.
    async fn start(
        &self,
        bin: &str,
        env: Vec<(String, String)>,
        port_var: &str,
        port_value: impl Fn(u16) -> String,
    ) -> Result<(Proc, u16, Duration), BenchError> {
        let program = self.bin_dir.join(bin);
        let launch = || {
            let port = free_port()?;
            let mut env = env.clone();
            env.retain(|(k, _)| !self.extra_env.iter().any(|(e, _)| e == k));
            env.extend(self.extra_env.iter().cloned());
            env.push((port_var.to_owned(), port_value(port)));
            let proc = self.dir.spawn(bin, &program).envs(env).start()?;
            Ok((proc, format!("http://127.0.0.1:{port}/health"), port))
        };
        let health = async |url: &str| http_ok(&self.health, url).await;
        let started = start_ready(&READINESS, launch, health).await?;
        Ok((started.proc, started.value, started.startup))
    }
}
