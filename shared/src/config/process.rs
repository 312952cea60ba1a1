//! Process set-up read by both binaries: logging, the async runtime and their HTTP servers.

use std::time::Duration;

use serde::de;
use serde::{Deserialize, Deserializer};

use super::{ConfigError, invalid, millis, parse};

/// Default `RUNTIME_THREADS`: one thread runs the whole async runtime.
pub const DEFAULT_RUNTIME_THREADS: usize = 1;
/// Most `RUNTIME_THREADS` accepted: beyond this a value is a typo, not a machine.
pub const MAX_RUNTIME_THREADS: usize = 1024;
/// Default `LOG_LEVEL` (a `tracing` filter directive).
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `HTTP_HEADER_TIMEOUT_MS`: ample for any client that means to send a request, short
/// enough that half-sent request heads cannot pile up.
pub const DEFAULT_HTTP_HEADER_TIMEOUT_MS: u64 = 10_000;

/// Logging: read by both binaries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `LOG_LEVEL`: a `tracing` filter (`info`, `debug`, `switchyard_worker=debug,info`, …).
    pub log_level: String,
    /// `LOG_FORMAT`: `pretty` for terminals, `json` for containers.
    pub log_format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            log_format: LogFormat::default(),
        }
    }
}

/// The async runtime: read by both binaries.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// `RUNTIME_THREADS`: 1 runs everything on one thread; N > 1 a pool of N threads; 0 a pool
    /// of one thread per core.
    pub runtime_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            runtime_threads: DEFAULT_RUNTIME_THREADS,
        }
    }
}

/// The HTTP servers (the dispatcher's API, a worker's health port): read by both binaries.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// `HTTP_HEADER_TIMEOUT_MS`: a connection that has not sent a whole request head this long
    /// after it opened (or after its previous answer) is closed.
    #[serde(rename = "http_header_timeout_ms", with = "millis")]
    pub header_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_millis(DEFAULT_HTTP_HEADER_TIMEOUT_MS),
        }
    }
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    // By hand, because envy's message for an unknown variant does not name the variable.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err(de::Error::custom(format!(
                "LOG_FORMAT must be `pretty` or `json`, not {s:?}"
            ))),
        }
    }
}

impl LogConfig {
    /// Reads `LOG_LEVEL` and `LOG_FORMAT` from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        parse(vars)
    }
}

impl RuntimeConfig {
    /// Reads `RUNTIME_THREADS` from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let c: Self = parse(vars)?;
        if c.runtime_threads > MAX_RUNTIME_THREADS {
            return Err(invalid(
                "RUNTIME_THREADS",
                "must be at most 1024 (0 = one thread per core)",
            ));
        }
        Ok(c)
    }
}

impl HttpConfig {
    /// Reads `HTTP_HEADER_TIMEOUT_MS` from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let c: Self = parse(vars)?;
        if c.header_timeout.is_zero() {
            return Err(invalid("HTTP_HEADER_TIMEOUT_MS", "must be above 0"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check_unknown, vars};
    use super::*;

    #[test]
    fn log_defaults_apply_and_format_is_read() {
        let l = LogConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(l.log_level, "info");
        assert_eq!(l.log_format, LogFormat::Pretty);
        let l = LogConfig::from_vars(&vars(&[("LOG_FORMAT", "json")])).expect("valid");
        assert_eq!(l.log_format, LogFormat::Json);
    }

    #[test]
    fn runtime_threads_default_to_one_and_are_read() {
        let r = RuntimeConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(r.runtime_threads, 1);
        let r = RuntimeConfig::from_vars(&vars(&[("RUNTIME_THREADS", "4")])).expect("valid");
        assert_eq!(r.runtime_threads, 4);
        let e = RuntimeConfig::from_vars(&vars(&[("RUNTIME_THREADS", "1000000")]))
            .expect_err("too many");
        assert!(e.to_string().contains("RUNTIME_THREADS"), "{e}");
        let e = check_unknown(&vars(&[("RUNTIME_THREAD", "2")])).expect_err("misspelt");
        assert!(e.to_string().contains("RUNTIME_THREADS"), "{e}");
    }

    #[test]
    fn header_timeout_defaults_to_ten_seconds_and_must_be_positive() {
        let h = HttpConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(h.header_timeout, Duration::from_secs(10));
        let h = HttpConfig::from_vars(&vars(&[("HTTP_HEADER_TIMEOUT_MS", "300")])).expect("valid");
        assert_eq!(h.header_timeout, Duration::from_millis(300));
        let e = HttpConfig::from_vars(&vars(&[("HTTP_HEADER_TIMEOUT_MS", "0")])).expect_err("zero");
        assert!(e.to_string().contains("HTTP_HEADER_TIMEOUT_MS"), "{e}");
        let e = check_unknown(&vars(&[("HTTP_HEADER_TIMEOUT", "300")])).expect_err("no unit");
        assert!(e.to_string().contains("HTTP_HEADER_TIMEOUT_MS"), "{e}");
        // Proxies are configured through HTTP_PROXY; it is not ours to refuse.
        check_unknown(&vars(&[("HTTP_PROXY", "http://proxy:3128")])).expect("foreign");
    }
}
