//! Connection to Redis and the key prefix, read by both binaries.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid, millis, parse, seconds};

/// Default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default `QUEUE_PREFIX`.
pub const DEFAULT_QUEUE_PREFIX: &str = "sy:";
/// Default `REDIS_TIMEOUT_MS`: connect and response timeout of non-blocking Redis calls.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2_000;
/// Default `REDIS_POOL_SIZE`.
pub const DEFAULT_REDIS_POOL_SIZE: usize = 4;
/// Default `RESULT_TTL_S`: how long a finished task record is kept (one day).
pub const DEFAULT_RESULT_TTL_S: u64 = 86_400;
/// Default `EVENTS_MAXLEN`: approximate cap of each queue's events stream.
pub const DEFAULT_EVENTS_MAXLEN: u64 = 100_000;
/// Default `REDIS_WAIT_TIMEOUT_MS`: how long `WAIT` waits for `REDIS_WAIT_REPLICAS` replicas.
pub const DEFAULT_REDIS_WAIT_TIMEOUT_MS: u64 = 1_000;

/// `REDIS_MODE`: how the binaries reach Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One Redis at `REDIS_URL` (the default).
    #[default]
    Standalone,
    /// `REDIS_URL` lists the sentinels; the primary of `REDIS_SENTINEL_MASTER` is asked from them
    /// and asked again after a failover.
    Sentinel,
    /// `REDIS_URL` lists seed nodes of a Redis Cluster.
    Cluster,
}

/// Connection to Redis and the key prefix: read by both binaries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis[s]://[user:pass@]host:port[/db]`; in sentinel and cluster modes a
    /// comma-separated list (the sentinels, or the cluster's seed nodes).
    pub redis_url: String,
    /// `REDIS_MODE`: `standalone` (default), `sentinel` or `cluster`.
    pub redis_mode: RedisMode,
    /// `REDIS_SENTINEL_MASTER`: the master name the sentinels monitor (sentinel mode).
    pub redis_sentinel_master: Option<String>,
    /// `REDIS_SENTINEL_PASSWORD`: the sentinels' own password, if they have one.
    pub redis_sentinel_password: Option<String>,
    /// `REDIS_PASSWORD`: the primary's password in sentinel mode when the URLs carry none.
    pub redis_password: Option<String>,
    /// `REDIS_TLS_CA_FILE`: PEM file of the CA that signed Redis' certificate (`rediss://`);
    /// unset: the system's roots.
    pub redis_tls_ca_file: Option<String>,
    /// `REDIS_TLS_CERT_FILE`: PEM client certificate, for Redis servers that ask for one.
    pub redis_tls_cert_file: Option<String>,
    /// `REDIS_TLS_KEY_FILE`: PEM key of `REDIS_TLS_CERT_FILE`.
    pub redis_tls_key_file: Option<String>,
    /// `REDIS_WAIT_REPLICAS`: replicas that must acknowledge an enqueue or a completion (`WAIT`)
    /// before it is answered; 0 (default) does not wait.
    pub redis_wait_replicas: u32,
    /// `REDIS_WAIT_TIMEOUT_MS`: how long that `WAIT` waits.
    #[serde(rename = "redis_wait_timeout_ms", with = "millis")]
    pub redis_wait_timeout: Duration,
    /// `QUEUE_PREFIX`: prefix of every key, so deployments can share one Redis.
    pub queue_prefix: String,
    /// `REDIS_TIMEOUT_MS`: connect and response timeout of ordinary calls.
    #[serde(rename = "redis_timeout_ms", with = "millis")]
    pub redis_timeout: Duration,
    /// `REDIS_POOL_SIZE`: shared multiplexed connections, handed out round-robin.
    pub redis_pool_size: usize,
    /// `RESULT_TTL_S`: how long a finished task record is kept, in seconds.
    #[serde(rename = "result_ttl_s", with = "seconds")]
    pub result_ttl: Duration,
    /// `EVENTS_MAXLEN`: approximate cap of each queue's events stream.
    pub events_maxlen: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            redis_mode: RedisMode::Standalone,
            redis_sentinel_master: None,
            redis_sentinel_password: None,
            redis_password: None,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            redis_wait_replicas: 0,
            redis_wait_timeout: Duration::from_millis(DEFAULT_REDIS_WAIT_TIMEOUT_MS),
            queue_prefix: DEFAULT_QUEUE_PREFIX.to_owned(),
            redis_timeout: Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
            redis_pool_size: DEFAULT_REDIS_POOL_SIZE,
            result_ttl: Duration::from_secs(DEFAULT_RESULT_TTL_S),
            events_maxlen: DEFAULT_EVENTS_MAXLEN,
        }
    }
}

impl RedisConfig {
    /// Reads `REDIS_*`, `QUEUE_PREFIX`, `RESULT_TTL_S`, `EVENTS_MAXLEN` from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let c: Self = parse(vars)?;
        if c.redis_pool_size == 0 {
            return Err(invalid("REDIS_POOL_SIZE", "must be at least 1"));
        }
        if c.redis_timeout.is_zero() {
            return Err(invalid("REDIS_TIMEOUT_MS", "must be above 0"));
        }
        c.check_topology()?;
        if c.queue_prefix.contains(['{', '}']) {
            return Err(invalid(
                "QUEUE_PREFIX",
                "must not contain '{' or '}' (they delimit the queue's hash tag)",
            ));
        }
        Ok(c)
    }
}

impl RedisConfig {
    /// The URLs of `REDIS_URL`: one in standalone mode, the list otherwise.
    pub fn urls(&self) -> Vec<&str> {
        self.redis_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    fn check_topology(&self) -> Result<(), ConfigError> {
        let urls = self.urls();
        if urls.is_empty() {
            return Err(invalid("REDIS_URL", "must name at least one Redis URL"));
        }
        if self.redis_mode == RedisMode::Standalone && urls.len() > 1 {
            return Err(invalid(
                "REDIS_URL",
                "lists several URLs: set REDIS_MODE=sentinel or cluster, or name one Redis",
            ));
        }
        if self.redis_mode == RedisMode::Sentinel && self.redis_sentinel_master.is_none() {
            return Err(invalid(
                "REDIS_SENTINEL_MASTER",
                "is required with REDIS_MODE=sentinel (the master name the sentinels monitor)",
            ));
        }
        if self.redis_tls_cert_file.is_some() != self.redis_tls_key_file.is_some() {
            return Err(invalid(
                "REDIS_TLS_CERT_FILE",
                "and REDIS_TLS_KEY_FILE go together (a client certificate needs its key)",
            ));
        }
        if self.redis_wait_replicas > 0 {
            self.check_wait()?;
        }
        Ok(())
    }

    fn check_wait(&self) -> Result<(), ConfigError> {
        if self.redis_mode == RedisMode::Cluster {
            // WAIT has no key, so a cluster client would send it to any node, not to the one
            // that took the write.
            return Err(invalid(
                "REDIS_WAIT_REPLICAS",
                "is not supported with REDIS_MODE=cluster",
            ));
        }
        if self.redis_wait_timeout.is_zero() {
            return Err(invalid(
                "REDIS_WAIT_TIMEOUT_MS",
                "must be above 0 with REDIS_WAIT_REPLICAS (0 would make WAIT block forever)",
            ));
        }
        if self.redis_wait_timeout >= self.redis_timeout {
            // WAIT blocks its socket, which ordinary calls share: it must end before their
            // response timeout does.
            return Err(invalid(
                "REDIS_WAIT_TIMEOUT_MS",
                "must be below REDIS_TIMEOUT_MS (WAIT holds the shared connection meanwhile)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::vars;
    use super::*;

    #[test]
    fn defaults_and_durations_are_read_in_their_units() {
        let r = RedisConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(r.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(r.queue_prefix, "sy:");
        assert_eq!(r.redis_timeout, Duration::from_secs(2));
        assert_eq!(r.redis_pool_size, 4);
        assert_eq!(r.result_ttl, Duration::from_secs(86_400));
        assert_eq!(r.events_maxlen, 100_000);
        let r = RedisConfig::from_vars(&vars(&[
            ("REDIS_TIMEOUT_MS", "150"),
            ("RESULT_TTL_S", "60"),
        ]))
        .expect("valid");
        assert_eq!(r.redis_timeout, Duration::from_millis(150));
        assert_eq!(r.result_ttl, Duration::from_secs(60));
    }

    #[test]
    fn sentinel_and_cluster_read_a_list_of_urls() {
        let r = RedisConfig::from_vars(&vars(&[
            ("REDIS_MODE", "sentinel"),
            ("REDIS_URL", "redis://a:26379, redis://b:26379,"),
            ("REDIS_SENTINEL_MASTER", "main"),
            ("REDIS_WAIT_REPLICAS", "1"),
        ]))
        .expect("valid");
        assert_eq!(r.redis_mode, RedisMode::Sentinel);
        assert_eq!(r.urls(), ["redis://a:26379", "redis://b:26379"]);
        assert_eq!(r.redis_wait_timeout, Duration::from_secs(1));
        let r = RedisConfig::from_vars(&vars(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", "rediss://a:7000,rediss://b:7001"),
        ]))
        .expect("valid");
        assert_eq!(r.redis_mode, RedisMode::Cluster);
        assert_eq!(r.urls().len(), 2);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, var) in [
            (vec![("REDIS_POOL_SIZE", "0")], "REDIS_POOL_SIZE"),
            (vec![("REDIS_TIMEOUT_MS", "0")], "REDIS_TIMEOUT_MS"),
            (vec![("QUEUE_PREFIX", "a{b}")], "QUEUE_PREFIX"),
            (vec![("REDIS_URL", "redis://a:1,redis://b:2")], "REDIS_URL"),
            (vec![("REDIS_MODE", "sentinel")], "REDIS_SENTINEL_MASTER"),
            (vec![("REDIS_MODE", "ring")], "ring"),
            (vec![("REDIS_TLS_CERT_FILE", "c.pem")], "REDIS_TLS_KEY_FILE"),
            (
                vec![("REDIS_WAIT_REPLICAS", "1"), ("REDIS_WAIT_TIMEOUT_MS", "0")],
                "REDIS_WAIT_TIMEOUT_MS",
            ),
            (
                vec![
                    ("REDIS_WAIT_REPLICAS", "1"),
                    ("REDIS_WAIT_TIMEOUT_MS", "2000"),
                ],
                "REDIS_TIMEOUT_MS",
            ),
            (
                vec![("REDIS_WAIT_REPLICAS", "1"), ("REDIS_MODE", "cluster")],
                "REDIS_WAIT_REPLICAS",
            ),
        ] {
            let e = RedisConfig::from_vars(&vars(&pairs)).expect_err("invalid");
            assert!(e.to_string().contains(var), "{pairs:?}: {e}");
        }
    }
}
