//! The end-to-end test fixture: real `redis-server` processes on free loopback ports, the real
//! `dispatcher` and `worker` binaries as child processes with their logs captured, per-test key
//! prefixes so tests share one Redis without `FLUSHDB`, and deadline-bound polling so no test
//! sleeps to let a loop run.
//!
//! # Layout
//! - [`redis_server`]: [`RedisServer`] per test, or [`shared_redis`] per test process.
//! - [`process`]: [`Proc`], a child with a clean environment and a log file, killed on drop.
//! - [`binaries`]: [`bin_path`], the workspace binaries, rebuilt when stale.
//! - [`provider_server`]: [`ProviderServer`], a local OpenAI / Anthropic API with scripted
//!   (streamed) answers that records what it received; [`provider_reply`]: the scripts
//!   ([`Reply`]: text, tool calls, failures); [`provider_wire`]: the bytes of both formats;
//!   [`provider_load`]: calls in flight at once and tokens per rolling window, per model.
//! - [`services`]: [`spawn_dispatcher`] / [`Dispatcher`], [`spawn_worker`] / [`Worker`], started
//!   and waited for until `/health` answers, and the task and stream requests tests repeat.
//! - [`cli`]: the `sy` binary run as a process ([`cli::sy`], [`cli::sy_spawn`]).
//! - [`tls_files`]: [`tls_files::TlsFiles`], a private CA made with openssl, for TLS nodes.
//! - [`redis_nodes`]: `redis-server` / `redis-sentinel` children and `redis-cli`, the blocks of
//!   [`tls_redis`] ([`TlsRedis`]: TLS only, a CA the test makes) and [`sentinel_redis`]
//!   ([`sentinel_redis::SentinelSet`]: a primary, two replicas, three sentinels) and
//!   [`cluster_redis`] ([`cluster_redis::ClusterSet`]: three primaries, with replicas and over TLS if asked,
//!   `redis-cli --cluster create`).
//! - [`failover`]: a primary killed while clients submit tasks: seconds refused, tasks lost.
//! - [`sse`]: an SSE client: parse event streams, read a live one event by event.
//! - [`raw_http`]: HTTP/1.1 over a bare socket, for bytes no client library sends.
//! - [`bad_requests`]: a seeded generator of bad requests over every route and field of the API.
//! - [`tenants`]: requests with tenant keys, tenants created with the admin secret.
//! - [`python`]: the official OpenAI Python SDK as a client ([`python::run_scenario`]).
//! - [`console`]: the web console over plain HTTP (login, cookie, CSRF token).
//! - [`webdriver`]: headless Chromium through chromedriver ([`webdriver::Browser`]), for the
//!   web console's test.
//! - here: [`poll_until`], [`unique_prefix`], [`connection`], [`free_port`],
//!   [`queued_tool_task`], [`new_tool_record`], [`group_consumers`], [`output_entries`], [`TempDir`].

pub mod bad_requests;
pub mod binaries;
pub mod cli;
pub mod cluster_redis;
pub mod console;
pub mod failover;
pub mod process;
pub mod provider_load;
pub mod provider_reply;
pub mod provider_server;
pub mod provider_wire;
pub mod python;
pub mod raw_http;
pub mod redis_nodes;
pub mod redis_server;
pub mod sentinel_redis;
pub mod services;
pub mod sse;
pub mod tenants;
pub mod tls_files;
pub mod tls_redis;
pub mod webdriver;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoConsumer, StreamInfoConsumersReply, StreamRangeReply};
use switchyard_shared::keys::GROUP;
use switchyard_shared::output::{self, Entry};
use switchyard_shared::record::QueuedTask;
use switchyard_shared::task::TaskKind;

pub use binaries::bin_path;
pub use process::Proc;
pub use provider_server::{Failure, ProviderServer, Reply, ScriptedCall, Served};
pub use redis_server::{REDIS_URL_ENV, RedisServer, shared_redis};
pub use services::{Dispatcher, Response, Worker, env_pairs, spawn_dispatcher, spawn_worker};
pub use tls_redis::TlsRedis;

/// A new `tool` task's record as the dispatcher builds it, for tests that enqueue through
/// `switchyard_shared::scripts` directly. Its id (`{queue}-{ULID}`) is used only if it is
/// delayed; a task queued now is named by its stream entry.
pub fn queued_tool_task(
    queue: &str,
    payload: &str,
    max_attempts: u32,
    timeout_ms: &str,
) -> QueuedTask {
    QueuedTask {
        id: switchyard_shared::task::new_task_id(queue),
        kind: TaskKind::Tool,
        queue: queue.to_owned(),
        payload: payload.to_owned(),
        max_attempts,
        timeout_ms: timeout_ms
            .parse()
            .expect("a test timeout is a number of ms"),
        created_at: switchyard_shared::clock::now_rfc3339(),
        idempotency_key: None,
        session_id: None,
        tenant: None,
    }
}

/// [`queued_tool_task`] to be queued now: what `scripts::enqueue_many` takes.
pub fn new_tool_record(
    queue: &str,
    payload: &str,
    max_attempts: u32,
    timeout_ms: &str,
) -> switchyard_shared::scripts::NewRecord {
    switchyard_shared::scripts::NewRecord {
        task: queued_tool_task(queue, payload, max_attempts, timeout_ms),
        due_ms: None,
        idempotency_ttl: std::time::Duration::from_secs(600),
        priority: switchyard_shared::lane::Priority::Normal,
    }
}

/// The tasks `ids` of `queue` as every reader sees them (`lookup.lua`: hash, entry, pending
/// list), each as its JSON fields in text (an absent task is an empty map): the lean layout
/// writes no hash while a task is queued or running, so tests read through the reader.
pub async fn task_fields(
    con: &mut redis::aio::MultiplexedConnection,
    keys: &switchyard_shared::keys::Keys,
    queue: &str,
    ids: &[String],
) -> Vec<std::collections::HashMap<String, String>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let task = switchyard_shared::store::load_task(con, keys, queue, id)
            .await
            .expect("task readable");
        let json = task.map(|t| serde_json::to_value(t).expect("a task serialises"));
        let fields = match json {
            Some(serde_json::Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
            _ => std::collections::HashMap::new(),
        };
        out.push(fields);
    }
    out
}

/// Interval of every polling loop of the fixture.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique within this machine for a while: test pid, a process-wide counter, randomness.
pub(crate) fn unique_name(kind: &str) -> String {
    format!(
        "switchyard-test-{kind}-{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a directory whose name carries `tag`.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", p.display()));
        Self(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
        .port()
}

/// A random key prefix for one test, like `t3f9a1c2b7d0e:`, so tests share a Redis safely.
pub fn unique_prefix() -> String {
    format!("t{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A multiplexed connection to `url` whose response timeout suits a loaded test machine.
pub async fn connection(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("invalid Redis URL in a test");
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test Redis at {url}: {e}"))
}

/// The consumers of the `workers` group of `stream` (`XINFO CONSUMERS`): names, pending counts,
/// idle times.
pub async fn group_consumers(
    con: &mut MultiplexedConnection,
    stream: &str,
) -> Vec<StreamInfoConsumer> {
    let reply: StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(GROUP)
        .query_async(con)
        .await
        .unwrap_or_else(|e| panic!("XINFO CONSUMERS {stream}: {e}"));
    reply.consumers
}

/// The entries of output stream `key`, decoded (each must be valid), with the millisecond part
/// of their stream ids.
pub async fn output_entries(con: &mut MultiplexedConnection, key: &str) -> Vec<(u64, Entry)> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(con)
        .await
        .unwrap_or_else(|e| panic!("XRANGE {key}: {e}"));
    reply
        .ids
        .iter()
        .map(|e| {
            let s = output::decode(e).expect("a valid output entry");
            let ms = s.id.split('-').next().and_then(|m| m.parse().ok());
            (ms.expect("a stream id"), s.entry)
        })
        .collect()
}

/// Polls `f` every ~50 ms until it answers `Some`, and panics naming `what` after `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_free_of_hash_tag_braces() {
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        assert!(a.starts_with('t') && a.ends_with(':'), "{a}");
        assert!(!a.contains(['{', '}']), "{a}");
    }
}
