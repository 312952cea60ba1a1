//! The run's own `redis-server`: found on PATH, started without persistence on a free loopback
//! port, ready once it answers PING; and the connections the bench opens to it.

use std::path::PathBuf;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::error::BenchError;
use crate::procs::{Proc, RunDir, free_port};

/// How long `redis-server` may take to answer PING.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// Response timeout of the bench's connections: longer than any `BLOCK` it sends.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// The process.
    pub proc: Proc,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

/// The `redis-server` on PATH.
fn find_on_path() -> Result<PathBuf, BenchError> {
    let path = std::env::var_os("PATH").ok_or(BenchError::RedisServerMissing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or(BenchError::RedisServerMissing)
}

impl RedisServer {
    /// Starts `redis-server --save "" --appendonly no` on a free port, its files in `dir`.
    pub async fn start(dir: &RunDir) -> Result<Self, BenchError> {
        let program = find_on_path()?;
        let workdir = dir.path().to_string_lossy().into_owned();
        let mut last = String::new();
        // A free port can be taken before redis binds it: try a few.
        for _ in 0..3 {
            let port = free_port()?.to_string();
            let args = [
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &workdir,
            ];
            let proc = Proc::spawn(
                "redis-server",
                &program,
                &args,
                &[],
                dir.log_for("redis-server"),
            )?;
            let url = format!("redis://127.0.0.1:{port}");
            let deadline = Instant::now() + START_DEADLINE;
            loop {
                if let Ok(mut con) = connect(&url).await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut con)
                        .await
                        .is_ok_and(|p| p == "PONG")
                {
                    return Ok(Self { proc, url });
                }
                if !proc.is_running() || Instant::now() >= deadline {
                    last = proc.log_tail();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Err(BenchError::Process {
            name: "redis-server".to_owned(),
            message: format!("did not answer PING; its log:\n{last}"),
        })
    }
}

/// A connection of its own (one TCP connection per call) to `url`.
pub async fn connect(url: &str) -> Result<MultiplexedConnection, BenchError> {
    let client = redis::Client::open(url)?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}
