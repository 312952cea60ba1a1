//! Configuration read once from the environment (SPEC §8): one struct per concern, parsed with
//! `envy`; a missing, malformed or misspelt variable is an error that names the variable.
//!
//! Durations are whole milliseconds in the environment (`*_MS`) or seconds (`*_S`) and typed as
//! [`Duration`](std::time::Duration) here, under a field name without the unit (serde renames it back to the
//! variable). Every default is a `DEFAULT_*` constant so the README and `compose/.env.example`
//! can be checked against one place; each struct has one `Default` built from them.
//!
//! # Layout
//! - `redis`: [`RedisConfig`], the connection and key prefix both binaries share.
//! - `process`: [`LogConfig`], [`RuntimeConfig`] and [`HttpConfig`], the process set-up both
//!   binaries share.
//! - `dispatcher`: [`DispatcherConfig`].
//! - `routes`: [`ModelRoutes`], the dispatcher's `MODEL_ROUTES` (model → queue).
//! - `worker`: [`WorkerConfig`], which holds the three below.
//! - `llm`: [`LlmConfig`], the chat providers and sessions.
//! - `limits`: [`LimitsConfig`], the provider limits all workers share.
//! - `tools`: [`ToolsConfig`], the tools and their limits.
//! - `unknown`: [`check_unknown`], refusing misspelt variables.
//! - this file: [`ConfigError`], [`Secret`], reading the environment, parse helpers.

mod dispatcher;
mod limits;
mod llm;
mod process;
mod redis;
mod routes;
mod tools;
mod unknown;
mod worker;

pub use self::dispatcher::*;
pub use self::limits::*;
pub use self::llm::*;
pub use self::process::*;
pub use self::redis::*;
pub use self::routes::*;
pub use self::tools::*;
pub use self::unknown::check_unknown;
pub use self::worker::*;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::task::is_valid_queue_name;

/// A configuration error; its message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// envy could not read or parse a variable.
    #[error("configuration: {0}")]
    Env(String),
    /// A variable parsed but its value is out of range or inconsistent.
    #[error("configuration: {var}: {message}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A variable with one of the project's prefixes that no component reads: most likely a typo.
    #[error("configuration: unknown variable {var}{hint}")]
    Unknown {
        /// The unknown variable.
        var: String,
        /// " (did you mean X?)" when a known variable is close.
        hint: String,
    },
}

/// A secret read from the environment (an API key). `Debug` never shows it; [`Secret::expose`]
/// is the one way to the value, used where it goes into a request header.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The process environment as pairs, for the `from_vars` constructors.
pub fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn parse<T: DeserializeOwned>(vars: &[(String, String)]) -> Result<T, ConfigError> {
    envy::from_iter::<_, T>(vars.iter().cloned()).map_err(|e| match e {
        envy::Error::MissingValue(field) => {
            ConfigError::Env(format!("{} is required", field.to_ascii_uppercase()))
        }
        envy::Error::Custom(msg) => ConfigError::Env(msg),
    })
}

fn invalid(var: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        message: message.to_owned(),
    }
}

fn check_queues(var: &'static str, queues: &[String]) -> Result<(), ConfigError> {
    if queues.is_empty() {
        return Err(invalid(var, "must name at least one queue"));
    }
    if let Some(bad) = queues.iter().find(|q| !is_valid_queue_name(q)) {
        return Err(ConfigError::Invalid {
            var,
            message: format!(
                "queue name {bad:?} is invalid: use 1–48 of a-z, 0-9, '_' and '-', starting with a letter or digit"
            ),
        });
    }
    Ok(())
}

/// A comma-separated default, as envy would read it from the environment.
fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::to_owned).collect()
}

/// `*_MS` variables: whole milliseconds.
mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `*_S` variables: whole seconds.
mod seconds {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Test input: `(name, value)` pairs as [`env_vars`] returns them.
#[cfg(test)]
fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let w = WorkerConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(w.worker_port, DEFAULT_WORKER_PORT);
        assert_eq!(w.worker_queues, vec!["chat", "tool"]);
        assert_eq!(
            w.heartbeat_interval,
            Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS)
        );
        let r = RedisConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(r.queue_prefix, "sy:");
        let d = DispatcherConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(d.max_body_bytes, 1 << 20);
        assert!(d.root_node_secret.is_none());
    }

    #[test]
    fn bad_value_names_the_variable() {
        let e = WorkerConfig::from_vars(&vars(&[("WORKER_CONCURRENCY", "lots")]))
            .expect_err("not a number");
        assert!(e.to_string().contains("WORKER_CONCURRENCY"), "{e}");
        let e = WorkerConfig::from_vars(&vars(&[("WORKER_CONCURRENCY", "0")])).expect_err("zero");
        assert!(e.to_string().contains("WORKER_CONCURRENCY"), "{e}");
        let e = DispatcherConfig::from_vars(&vars(&[("QUEUES", "chat,Bad Queue")]))
            .expect_err("bad queue");
        assert!(e.to_string().contains("QUEUES"), "{e}");
        let e = LogConfig::from_vars(&vars(&[("LOG_FORMAT", "xml")])).expect_err("bad format");
        assert!(e.to_string().contains("LOG_FORMAT"), "{e}");
        let e = RuntimeConfig::from_vars(&vars(&[("RUNTIME_THREADS", "many")]))
            .expect_err("not a number");
        assert!(e.to_string().contains("RUNTIME_THREADS"), "{e}");
    }
}
