//! Redis access shared by both binaries: the connection pool, dedicated connections for blocking
//! reads, consumer-group setup, and typed reads of task records.
//!
//! redis 1.x times out a response after 500 ms by default; ordinary calls use `REDIS_TIMEOUT_MS`
//! and blocking reads get their own connection whose timeout exceeds the block.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_redis::{Manager, Pool, PoolError, Runtime};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::config::RedisConfig;
use crate::keys::{GROUP, Keys};
use crate::task::{DecodeError, Task};

/// A failed Redis interaction.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or the connection failed or timed out.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// No pooled connection could be had in time.
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError),
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
            Self::Pool(_) | Self::GaveUp(_) => true,
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

/// The shared pool of multiplexed connections for ordinary (non-blocking) calls. Creation does
/// not connect; a Redis that is down shows up as [`StoreError::Pool`] on use.
pub fn create_pool(cfg: &RedisConfig) -> Result<Pool, StoreError> {
    let t = cfg.redis_timeout_ms;
    let manager = Manager::new_with_config(cfg.redis_url.as_str(), connection_config(t, t))?;
    Pool::builder(manager)
        .max_size(cfg.redis_pool_size)
        .wait_timeout(Some(t))
        .create_timeout(Some(t))
        .recycle_timeout(Some(t))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Reply {
            script: "pool",
            message: e.to_string(),
        })
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
            cfg.redis_timeout_ms,
            block + cfg.redis_timeout_ms,
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

/// Reads a task record; `None` when it does not exist (never did, or expired).
pub async fn load_task<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<Option<Task>, StoreError> {
    let h: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.task(queue, id))
        .query_async(con)
        .await?;
    if h.is_empty() {
        return Ok(None);
    }
    Task::from_hash(h)
        .map(Some)
        .map_err(|source| StoreError::Record {
            id: id.to_owned(),
            source,
        })
}
