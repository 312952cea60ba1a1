//! `REDIS_MODE=sentinel`: a connection to the primary the sentinels name, asked again after it
//! fails.
//!
//! One multiplexed connection to the current primary is shared by every clone. A call that fails
//! because the primary is gone (I/O, refused, timed out) or is no longer primary (`READONLY`:
//! it was demoted) forgets that connection, so the next call asks the sentinels again and reaches
//! the promoted replica. The failed call itself still fails: the API answers 503 for it and the
//! worker's retry loop tries again, so no process restarts.
//!
//! Scripts survive a failover because every script call is `EVALSHA` falling back to `EVAL` on
//! `NOSCRIPT`; consumer groups are replicated with their streams, and `ensure_groups` runs again
//! where a reader meets `NOGROUP`.

use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use crate::config::RedisConfig;
use crate::store::StoreError;

/// The current primary's connection, shared by clones; see the module doc.
#[derive(Clone)]
pub struct SentinelConnection {
    inner: Arc<Inner>,
}

struct Inner {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The connection in use and its generation, so a late failure of an old connection does
    /// not throw away a newer one.
    current: Mutex<(u64, Option<MultiplexedConnection>)>,
    config: AsyncConnectionConfig,
}

impl SentinelConnection {
    /// Builds the sentinel client from the sentinels' URLs; connects nothing yet.
    pub(crate) fn new(
        urls: &[String],
        cfg: &RedisConfig,
        tls: Option<TlsCertificates>,
        config: AsyncConnectionConfig,
    ) -> Result<Self, StoreError> {
        let bad = |e: RedisError| StoreError::Config(format!("REDIS_URL: {e}"));
        let infos = urls
            .iter()
            .map(|u| u.as_str().into_connection_info().map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        let master = cfg.redis_sentinel_master.as_deref().ok_or_else(|| {
            StoreError::Config("REDIS_SENTINEL_MASTER is required in sentinel mode".into())
        })?;
        let addrs = infos.iter().map(|i| i.addr().clone());
        let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?;
        // The primary's credentials: the URLs' userinfo, else REDIS_PASSWORD.
        let settings = infos[0].redis_settings();
        if let Some(user) = settings.username() {
            b = b.set_client_to_redis_username(user);
        }
        if let Some(pw) = settings.password().or(cfg.redis_password.as_deref()) {
            b = b.set_client_to_redis_password(pw);
        }
        if let Some(pw) = &cfg.redis_sentinel_password {
            b = b.set_client_to_sentinel_password(pw);
        }
        if matches!(infos[0].addr(), ConnectionAddr::TcpTls { .. }) {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        }
        if let Some(tls) = tls {
            b = b
                .set_client_to_redis_certificates(tls.clone())
                .set_client_to_sentinel_certificates(tls);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                sentinels: tokio::sync::Mutex::new(b.build()?),
                current: Mutex::new((0, None)),
                config,
            }),
        })
    }

    /// A client for the primary the sentinels name now (checked with `ROLE`).
    pub(crate) async fn resolve(&self) -> RedisResult<redis::Client> {
        self.inner.sentinels.lock().await.async_get_client().await
    }

    /// A new connection to the primary of the moment, not shared.
    pub(crate) async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        self.resolve()
            .await?
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await
    }

    /// The shared connection to the primary of the moment.
    pub(crate) async fn current_connection(&self) -> RedisResult<MultiplexedConnection> {
        Ok(self.current().await?.1)
    }

    async fn current(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let (generation, Some(c)) = &*lock(&self.inner.current) {
            return Ok((*generation, c.clone()));
        }
        // One caller asks the sentinels; the others wait here and then take its connection.
        let mut sentinels = self.inner.sentinels.lock().await;
        if let (generation, Some(c)) = &*lock(&self.inner.current) {
            return Ok((*generation, c.clone()));
        }
        let c = sentinels
            .async_get_client()
            .await?
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await?;
        let mut current = lock(&self.inner.current);
        current.0 += 1;
        current.1 = Some(c.clone());
        Ok((current.0, c))
    }

    fn forget_if_gone(&self, generation: u64, e: &RedisError) {
        let gone = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"));
        let mut current = lock(&self.inner.current);
        if gone && current.0 == generation {
            current.1 = None;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the slot half-written: recover the value.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut c) = self.current().await?;
            let r = c.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.forget_if_gone(generation, e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut c) = self.current().await?;
            let r = c.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                self.forget_if_gone(generation, e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
