//! Redis access shared by both binaries: the shared connections, dedicated connections for
//! blocking reads, consumer-group setup, and typed reads of task records.
//!
//! Ordinary calls share a few multiplexed, self-reconnecting connections (redis'
//! `ConnectionManager`): concurrent callers pipeline onto one socket and a checkout costs nothing.
//! A checkout from deadpool-redis, used before, sent `UNWATCH` + `PING` first, one extra round
//! trip in front of every start, completion and enqueue.
//!
//! redis 1.x times out a response after 500 ms by default; ordinary calls use `REDIS_TIMEOUT_MS`
//! and blocking reads get their own connection whose timeout exceeds the block.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::config::RedisConfig;
use crate::keys::{GROUP, Keys};
use crate::record::{DecodeError, Task};

/// A failed Redis interaction.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or the connection failed or timed out.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// A script answered something its wrapper cannot decode.
    #[error("script {script} answered unexpectedly: {message}")]
    Reply {
        /// The script.
        script: &'static str,
        /// Details.
        message: String,
    },
    /// Redis stayed unreachable until the caller gave up (shutdown).
    #[error("gave up on {0}: redis unreachable until shutdown")]
    GaveUp(String),
    /// A stored task record is malformed.
    #[error("task {id}: {source}")]
    Record {
        /// Task id.
        id: String,
        /// What is wrong.
        source: DecodeError,
    },
}

impl StoreError {
    /// Whether the error means Redis is unreachable or slow (as opposed to a logic error).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::GaveUp(_) => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// Whether Redis said the consumer group (or its stream) does not exist.
    pub fn is_nogroup(&self) -> bool {
        matches!(self, Self::Redis(e) if e.code() == Some("NOGROUP"))
    }
}

fn connection_config(connect: Duration, response: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
}

/// The connections ordinary (non-blocking) calls share: `REDIS_POOL_SIZE` multiplexed
/// connections, handed out round-robin. Each connects on first use and reconnects by itself after
/// a failure (one attempt per call, bounded by `REDIS_TIMEOUT_MS`), so a Redis that is down shows
/// up as an unavailable [`StoreError`] on use, never as a hang.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.connections.len())
            .finish()
    }
}

/// One of the [`Pool`]'s connections, for the caller's exclusive `&mut` use (a cheap handle on
/// the shared socket).
pub struct PooledConnection(ConnectionManager);

impl std::ops::Deref for PooledConnection {
    type Target = ConnectionManager;
    fn deref(&self) -> &ConnectionManager {
        &self.0
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut ConnectionManager {
        &mut self.0
    }
}

impl Pool {
    /// A connection to use now. Never waits: connecting happens on the first command.
    pub async fn get(&self) -> Result<PooledConnection, StoreError> {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.connections.len();
        Ok(PooledConnection(self.inner.connections[i].clone()))
    }
}

/// The shared connections. Creation does not connect.
pub fn create_pool(cfg: &RedisConfig) -> Result<Pool, StoreError> {
    let t = cfg.redis_timeout;
    let client = Client::open(cfg.redis_url.as_str())?;
    // No retries inside a call: callers decide (503 to a client, `while_unavailable` in the
    // worker), and a call must not outlive REDIS_TIMEOUT_MS by a backoff schedule.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(t))
        .set_response_timeout(Some(t))
        .set_number_of_retries(0);
    let connections = (0..cfg.redis_pool_size.max(1))
        .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pool {
        inner: Arc::new(PoolInner {
            connections,
            next: AtomicUsize::new(0),
        }),
    })
}

/// `XREAD COUNT count BLOCK block STREAMS …`: a blocking read of each `(stream, cursor)` after
/// its cursor, for a [`blocking_connection`].
pub fn xread<'a>(
    count: usize,
    block: Duration,
    streams: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block.as_millis() as u64)
        .arg("STREAMS");
    for (stream, _) in streams.clone() {
        cmd.arg(stream);
    }
    for (_, cursor) in streams {
        cmd.arg(cursor);
    }
    cmd
}

/// A dedicated connection for blocking reads (`XREADGROUP`/`XREAD … BLOCK`), whose response
/// timeout covers the block. Blocking on a pooled multiplexed connection would stall every other
/// caller sharing it.
pub async fn blocking_connection(
    cfg: &RedisConfig,
    block: Duration,
) -> Result<MultiplexedConnection, StoreError> {
    let client = Client::open(cfg.redis_url.as_str())?;
    let conn = client
        .get_multiplexed_async_connection_with_config(&connection_config(
            cfg.redis_timeout,
            block + cfg.redis_timeout,
        ))
        .await?;
    Ok(conn)
}

/// Creates the `workers` group on each queue's stream (and the stream), starting from the
/// stream's beginning so tasks enqueued before any worker existed are delivered. Idempotent.
pub async fn ensure_groups<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queues: &[String],
) -> Result<(), StoreError> {
    for q in queues {
        let r: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys.stream(q))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(con)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads a task in any state; `None` when it does not exist (never did, or expired). One atomic
/// script call: see [`crate::scripts::lookup`].
pub async fn load_task<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<Option<Task>, StoreError> {
    crate::scripts::lookup(con, keys, queue, id).await
}
