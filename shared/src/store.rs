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

use redis::RedisError;
use redis::aio::ConnectionLike;

use crate::config::{RedisConfig, RedisMode};
pub use crate::connect::Conn;
use crate::connect::Connector;
use crate::keys::{GROUP, Keys};
use crate::record::{DecodeError, Task};

/// A failed Redis interaction.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or the connection failed or timed out.
    #[error("redis: {0}")]
    Redis(RedisError),
    /// The TLS handshake with Redis failed: a configuration error, not an outage.
    #[error(
        "TLS handshake with Redis failed (check REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE/KEY_FILE \
         and the host name in REDIS_URL): {0}"
    )]
    Tls(RedisError),
    /// The Redis settings cannot be used (a file that cannot be read, a bad URL).
    #[error("configuration: {0}")]
    Config(String),
    /// Fewer replicas than `REDIS_WAIT_REPLICAS` acknowledged a write within
    /// `REDIS_WAIT_TIMEOUT_MS`: the write may be lost if the primary fails now.
    #[error("only {acked} of {wanted} replicas acknowledged the write in time")]
    NotReplicated {
        /// Replicas that acknowledged.
        acked: u32,
        /// `REDIS_WAIT_REPLICAS`.
        wanted: u32,
    },
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

impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        if is_tls_failure(&e) {
            Self::Tls(e)
        } else {
            Self::Redis(e)
        }
    }
}

/// A failover in progress: the sentinels name no reachable primary yet, the node reached was
/// demoted or is loading, or the cluster is re-forming. It passes by itself like an outage.
fn is_topology_change(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::NoValidReplicasFoundBySentinel
            | ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::TryAgain
            )
    )
}

/// rustls reports a certificate it cannot verify as an I/O error; retrying cannot fix it, so it
/// must not count as "Redis unavailable" (start-up would wait for ever instead of failing).
fn is_tls_failure(e: &RedisError) -> bool {
    let text = e.to_string();
    e.is_io_error() && (text.contains("certificate") || text.contains("CertificateRequired"))
}

impl StoreError {
    /// Whether the error means Redis is unreachable or slow (as opposed to a logic error).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::GaveUp(_) | Self::NotReplicated { .. } => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || is_topology_change(e)
            }
            _ => false,
        }
    }

    /// Whether Redis said the consumer group (or its stream) does not exist.
    pub fn is_nogroup(&self) -> bool {
        matches!(self, Self::Redis(e) if e.code() == Some("NOGROUP"))
    }
}

/// The connections ordinary (non-blocking) calls share: `REDIS_POOL_SIZE` connections of the
/// configured `REDIS_MODE` (see [`crate::connect`]), handed out round-robin. Each connects on
/// first use and reconnects by itself after a failure (one attempt per call, bounded by
/// `REDIS_TIMEOUT_MS`), so a Redis that is down shows up as an unavailable [`StoreError`] on use,
/// never as a hang.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    connections: Vec<Conn>,
    next: AtomicUsize,
    mode: RedisMode,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.connections.len())
            .field("mode", &self.inner.mode)
            .finish()
    }
}

/// One of the [`Pool`]'s connections, for the caller's exclusive `&mut` use (a cheap handle on
/// the shared socket).
pub struct PooledConnection(Conn);

impl std::ops::Deref for PooledConnection {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}

impl Pool {
    /// A connection to use now. Never waits: connecting happens on the first command.
    pub async fn get(&self) -> Result<PooledConnection, StoreError> {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.connections.len();
        Ok(PooledConnection(self.inner.connections[i].clone()))
    }

    /// A connection held to one socket, for a write followed by [`wait_replicas`].
    pub async fn pinned(&self) -> Result<PooledConnection, StoreError> {
        Ok(PooledConnection(self.get().await?.0.pinned().await?))
    }

    /// The `REDIS_MODE` the pool connects in (readers of several queues issue one call per queue
    /// in cluster mode).
    pub fn mode(&self) -> RedisMode {
        self.inner.mode
    }
}

/// The shared connections. Creation reads the TLS files but does not connect.
pub fn create_pool(cfg: &RedisConfig) -> Result<Pool, StoreError> {
    let connector = Connector::new(cfg)?;
    let connections = (0..cfg.redis_pool_size.max(1))
        .map(|_| connector.shared())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pool {
        inner: Arc::new(PoolInner {
            connections,
            next: AtomicUsize::new(0),
            mode: cfg.redis_mode,
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
pub async fn blocking_connection(cfg: &RedisConfig, block: Duration) -> Result<Conn, StoreError> {
    Connector::new(cfg)?.dedicated(block).await
}

/// A client for pub/sub (`SUBSCRIBE`): the Redis, the current primary, or a cluster seed node.
pub async fn pubsub_client(cfg: &RedisConfig) -> Result<redis::Client, StoreError> {
    Connector::new(cfg)?.pubsub_client().await
}

/// With `REDIS_WAIT_REPLICAS` = N > 0: `WAIT N REDIS_WAIT_TIMEOUT_MS` on `con`, which must be
/// the connection that wrote (see [`Pool::pinned`]); fewer than N acknowledgements is
/// [`StoreError::NotReplicated`]. Without it, does nothing.
pub async fn wait_replicas<C: ConnectionLike>(
    con: &mut C,
    cfg: &RedisConfig,
) -> Result<(), StoreError> {
    let wanted = cfg.redis_wait_replicas;
    if wanted == 0 {
        return Ok(());
    }
    let acked: u32 = redis::cmd("WAIT")
        .arg(wanted)
        .arg(cfg.redis_wait_timeout.as_millis() as u64)
        .query_async(con)
        .await?;
    if acked < wanted {
        return Err(StoreError::NotReplicated { acked, wanted });
    }
    Ok(())
}

/// [`wait_replicas`] again (same socket: its offset still covers the write) while too few
/// replicas acknowledge, until `give_up`; any other error is returned, so the caller redoes
/// the write on a new connection.
pub async fn wait_replicated<C: ConnectionLike>(
    con: &mut C,
    cfg: &RedisConfig,
    give_up: &tokio_util::sync::CancellationToken,
) -> Result<(), StoreError> {
    let mut pause = Duration::from_millis(50);
    loop {
        match wait_replicas(con, cfg).await {
            Err(e @ StoreError::NotReplicated { .. }) => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "write not replicated yet; waiting again");
                tokio::select! {
                    () = give_up.cancelled() => return Err(e),
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
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
