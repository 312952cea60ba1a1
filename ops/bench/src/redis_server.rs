//! The run's own `redis-server`: found on PATH, started without persistence on a free loopback
//! port with the `stream-node-max-entries` asked for, ready once it answers PING; and the
//! connections the bench opens to it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use switchyard_harness::{Proc, Readiness, free_port, start_ready};

use crate::error::BenchError;
use crate::procs::RunDir;

/// `redis-server` gets 10 s to answer PING, asked every 20 ms; 3 starts when the free port was
/// taken before it bound it.
const READINESS: Readiness = Readiness {
    attempts: 3,
    deadline: Duration::from_secs(10),
    poll: Duration::from_millis(20),
};
/// Response timeout of the bench's connections: longer than any `BLOCK` it sends.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// The process.
    pub proc: Proc,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// Its `stream-node-max-entries`, as `CONFIG GET` reports it.
    pub stream_node_max_entries: u64,
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
    /// Starts `redis-server --save "" --appendonly no --stream-node-max-entries N` on a free
    /// port, its files in `dir`, and checks that it reports that N.
    pub async fn start(dir: &RunDir, stream_node_max_entries: u64) -> Result<Self, BenchError> {
        let program = find_on_path()?;
        let workdir = dir.path().to_string_lossy().into_owned();
        let node_entries = stream_node_max_entries.to_string();
        let launch = || {
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
                "--stream-node-max-entries",
                &node_entries,
            ];
            let proc = dir.spawn("redis-server", &program).args(args).start()?;
            let url = format!("redis://127.0.0.1:{port}");
            Ok((proc, url.clone(), url))
        };
        let pong = async |url: &str| match connect(url).await {
            Ok(mut con) => redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .is_ok_and(|p| p == "PONG"),
            Err(_) => false,
        };
        let started = start_ready(&READINESS, launch, pong).await?;
        let url = started.value;
        let reported = node_max_entries(&mut connect(&url).await?).await?;
        if reported != stream_node_max_entries {
            return Err(BenchError::Process {
                name: "redis-server".to_owned(),
                message: format!(
                    "started with --stream-node-max-entries \
                     {stream_node_max_entries} but reports {reported}"
                ),
            });
        }
        Ok(Self {
            proc: started.proc,
            url,
            stream_node_max_entries: reported,
        })
    }
}

/// `CONFIG GET stream-node-max-entries`.
async fn node_max_entries(con: &mut MultiplexedConnection) -> Result<u64, BenchError> {
    let reply: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("stream-node-max-entries")
        .query_async(con)
        .await?;
    reply
        .get("stream-node-max-entries")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            BenchError::Reply(format!(
                "CONFIG GET stream-node-max-entries answered {reply:?}"
            ))
        })
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
