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

/// Connection to Redis and the key prefix: read by both binaries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[user:pass@]host:port[/db]`.
    pub redis_url: String,
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
        if c.queue_prefix.contains(['{', '}']) {
            return Err(invalid(
                "QUEUE_PREFIX",
                "must not contain '{' or '}' (they delimit the queue's hash tag)",
            ));
        }
        Ok(c)
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
    fn bad_values_name_the_variable() {
        for (pairs, var) in [
            (vec![("REDIS_POOL_SIZE", "0")], "REDIS_POOL_SIZE"),
            (vec![("REDIS_TIMEOUT_MS", "0")], "REDIS_TIMEOUT_MS"),
            (vec![("QUEUE_PREFIX", "a{b}")], "QUEUE_PREFIX"),
        ] {
            let e = RedisConfig::from_vars(&vars(&pairs)).expect_err("invalid");
            assert!(e.to_string().contains(var), "{pairs:?}: {e}");
        }
    }
}
