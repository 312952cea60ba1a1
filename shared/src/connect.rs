//! How both binaries reach Redis in each `REDIS_MODE`: one connection type, [`Conn`], over a
//! standalone self-reconnecting connection, a dedicated connection, a Sentinel-resolved primary
//! or a Redis Cluster, with TLS from `REDIS_TLS_*` for `rediss://` URLs.
//!
//! Callers see one `ConnectionLike`; what differs per mode is only how a connection is made and
//! remade: the cluster client follows `MOVED`/`ASK` and a failover inside the cluster itself, the
//! Sentinel connection asks the sentinels again after its primary went away (see [`sentinel`]).

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture,
    TlsCertificates, Value,
};

use crate::config::{RedisConfig, RedisMode};
use crate::sentinel::SentinelConnection;
use crate::store::StoreError;

/// A connection in any `REDIS_MODE`. Cheap to clone: every variant is a handle on shared sockets.
#[derive(Clone)]
pub enum Conn {
    /// Standalone, shared: reconnects by itself after a failure.
    Manager(ConnectionManager),
    /// Standalone, dedicated (blocking reads): its owner drops it after an error.
    Direct(MultiplexedConnection),
    /// The primary the sentinels name, asked again after it fails.
    Sentinel(SentinelConnection),
    /// A Redis Cluster: routes each command to its slot's node.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Manager(_) => "Conn::Manager",
            Self::Direct(_) => "Conn::Direct",
            Self::Sentinel(_) => "Conn::Sentinel",
            Self::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl Conn {
    /// This connection held to the socket it uses now. A Sentinel connection otherwise moves
    /// to the new primary between two calls; `WAIT` must run on the socket that wrote, or it
    /// would vouch for a write it never saw.
    pub async fn pinned(&self) -> Result<Conn, StoreError> {
        match self {
            Self::Sentinel(s) => Ok(Self::Direct(s.current_connection().await?)),
            other => Ok(other.clone()),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Direct(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => Box::pin(crate::cluster::command(c, cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => Box::pin(crate::cluster::pipeline(c, pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Direct(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Everything needed to open connections in the configured mode; built once per process (it
/// reads the TLS files, so a missing file fails start-up, not the first call).
#[derive(Clone)]
pub struct Connector {
    mode: RedisMode,
    urls: Vec<String>,
    tls: Option<TlsCertificates>,
    cfg: RedisConfig,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("mode", &self.mode)
            .field("nodes", &self.urls.len())
            .finish()
    }
}

impl Connector {
    /// Reads the TLS files and checks the URLs. Does not connect.
    pub fn new(cfg: &RedisConfig) -> Result<Self, StoreError> {
        install_crypto_provider();
        let urls: Vec<String> = cfg.urls().into_iter().map(str::to_owned).collect();
        for u in &urls {
            u.as_str()
                .into_connection_info()
                .map_err(|e| StoreError::Config(format!("REDIS_URL: {e}")))?;
        }
        Ok(Self {
            mode: cfg.redis_mode,
            urls,
            tls: tls_certificates(cfg)?,
            cfg: cfg.clone(),
        })
    }

    /// The mode this connector connects in.
    pub fn mode(&self) -> RedisMode {
        self.mode
    }

    /// A shared connection with the ordinary timeouts (`REDIS_TIMEOUT_MS`). Does not connect:
    /// connecting happens on the first command.
    pub fn shared(&self) -> Result<Conn, StoreError> {
        let t = self.cfg.redis_timeout;
        match self.mode {
            RedisMode::Standalone => {
                // No retries inside a call: callers decide (503 to a client,
                // `while_unavailable` in the worker).
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(t))
                    .set_response_timeout(Some(t))
                    .set_number_of_retries(0);
                let c = ConnectionManager::new_lazy_with_config(self.client()?, config)?;
                Ok(Conn::Manager(c))
            }
            RedisMode::Sentinel => Ok(Conn::Sentinel(self.sentinel(t)?)),
            RedisMode::Cluster => Ok(Conn::Cluster(self.cluster(t)?)),
        }
    }

    /// A dedicated connection for blocking reads, whose response timeout covers `block`.
    /// Standalone and Sentinel connect now (the primary of the moment); cluster connects lazily.
    pub async fn dedicated(&self, block: Duration) -> Result<Conn, StoreError> {
        let t = self.cfg.redis_timeout;
        match self.mode {
            RedisMode::Standalone => {
                let config = connection_config(t, block + t);
                let c = self
                    .client()?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::Direct(c))
            }
            RedisMode::Sentinel => {
                let s = self.sentinel(block + t)?;
                Ok(Conn::Direct(s.connect().await?))
            }
            RedisMode::Cluster => Ok(Conn::Cluster(self.cluster(block + t)?)),
        }
    }

    /// A client for the node to subscribe to (pub/sub): the standalone Redis, the current
    /// primary, or the first seed node (a cluster forwards `PUBLISH` to every node).
    pub async fn pubsub_client(&self) -> Result<redis::Client, StoreError> {
        match self.mode {
            RedisMode::Standalone | RedisMode::Cluster => self.client_for(&self.urls[0]),
            RedisMode::Sentinel => Ok(self.sentinel(self.cfg.redis_timeout)?.resolve().await?),
        }
    }

    fn client(&self) -> Result<redis::Client, StoreError> {
        self.client_for(&self.urls[0])
    }

    fn client_for(&self, url: &str) -> Result<redis::Client, StoreError> {
        let client = match &self.tls {
            Some(tls) => redis::Client::build_with_tls(url, tls.clone())?,
            None => redis::Client::open(url)?,
        };
        Ok(client)
    }

    fn cluster(&self, response: Duration) -> Result<ClusterConnection, StoreError> {
        let mut b = ClusterClientBuilder::new(self.urls.iter().map(String::as_str));
        if let Some(tls) = &self.tls {
            b = b.certs(tls.clone());
        }
        let client = b.build()?;
        let config = ClusterConfig::new()
            .set_connection_timeout(self.cfg.redis_timeout)
            .set_response_timeout(response);
        Ok(client.get_pending_async_connection_with_config(config))
    }

    fn sentinel(&self, response: Duration) -> Result<SentinelConnection, StoreError> {
        SentinelConnection::new(
            &self.urls,
            &self.cfg,
            self.tls.clone(),
            connection_config(self.cfg.redis_timeout, response),
        )
    }
}

pub(crate) fn connection_config(connect: Duration, response: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
}

/// rustls needs one process-wide crypto provider; aws-lc is the one reqwest already uses.
fn install_crypto_provider() {
    // Err only means a provider is installed already, which is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// `REDIS_TLS_*` → the certificates of `rediss://` connections; `None` when no file is set
/// (then the system's roots verify the server).
fn tls_certificates(cfg: &RedisConfig) -> Result<Option<TlsCertificates>, StoreError> {
    let read = |var: &'static str, path: &Option<String>| -> Result<Option<Vec<u8>>, StoreError> {
        path.as_deref()
            .map(|p| std::fs::read(p).map_err(|e| StoreError::Config(format!("{var}: {p}: {e}"))))
            .transpose()
    };
    let root_cert = read("REDIS_TLS_CA_FILE", &cfg.redis_tls_ca_file)?;
    let cert = read("REDIS_TLS_CERT_FILE", &cfg.redis_tls_cert_file)?;
    let key = read("REDIS_TLS_KEY_FILE", &cfg.redis_tls_key_file)?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}
