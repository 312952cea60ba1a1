//! Typo detection: a variable with one of the project's prefixes that no configuration struct
//! reads is refused, naming the closest known variable.

use std::collections::BTreeSet;

use serde::Deserializer;
use serde::de::{self, DeserializeOwned, Visitor};

use super::{
    ConfigError, DispatcherConfig, HttpConfig, LimitsConfig, LlmConfig, LogConfig, RedisConfig,
    RuntimeConfig, ToolsConfig, WorkerConfig,
};

/// Prefixes of the variables this project reads; any other variable with one of them is refused
/// as a probable typo.
const OWNED_PREFIXES: &[&str] = &[
    "REDIS_",
    "QUEUE_",
    "RESULT_",
    "EVENTS_",
    "LOG_",
    "RUNTIME_",
    "DISPATCHER_",
    "ROOT_NODE_",
    "MAX_",
    "WORKER_",
    "HEARTBEAT_",
    "LEASE_",
    "RETRY_",
    "SHUTDOWN_",
    "PROMOTE_",
    "IDEMPOTENCY_",
    "RESUME_",
    "STREAM_",
    "LLM_",
    "SESSION_",
    "OPENAI_",
    "ANTHROPIC_",
    "ENABLE_",
    "WEB_FETCH_",
    "TOOL_",
    "EXEC_",
    "ECHO_",
    "OUTPUT_",
    // Not all of `HTTP_`: `HTTP_PROXY` and friends belong to HTTP clients.
    "HTTP_HEADER",
    "MODEL_",
    "TENANT_",
];

/// Variables with an owned prefix that are read elsewhere (scripts, compose) and not by a binary.
const FOREIGN_VARS: &[&str] = &["WORKER_COUNT", "WORKER_REPLICAS"];

/// Refuses variables that look like ours but that no configuration struct reads.
///
/// Kubernetes service links (`REDIS_PORT=tcp://…`, `DISPATCHER_SERVICE_HOST`) are let through.
pub fn check_unknown(vars: &[(String, String)]) -> Result<(), ConfigError> {
    let known = known_vars();
    for (name, value) in vars {
        if !OWNED_PREFIXES.iter().any(|p| name.starts_with(p))
            || known.contains(name)
            || FOREIGN_VARS.contains(&name.as_str())
            || name.contains("_SERVICE_")
            || value.starts_with("tcp://")
            || value.starts_with("udp://")
        {
            continue;
        }
        let hint = known
            .iter()
            .map(|k| (edit_distance(k, name), k))
            .filter(|(d, _)| *d <= 3)
            .min()
            .map(|(_, k)| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(ConfigError::Unknown {
            var: name.clone(),
            hint,
        });
    }
    Ok(())
}

/// Every variable some configuration struct reads.
fn known_vars() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    for fields in [
        field_names::<RedisConfig>(),
        field_names::<LogConfig>(),
        field_names::<RuntimeConfig>(),
        field_names::<HttpConfig>(),
        field_names::<DispatcherConfig>(),
        field_names::<WorkerConfig>(),
        field_names::<LlmConfig>(),
        field_names::<ToolsConfig>(),
        field_names::<LimitsConfig>(),
    ] {
        known.extend(fields.iter().map(|f| f.to_ascii_uppercase()));
    }
    known
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The field names of a struct, taken from its `Deserialize` impl so the list cannot drift.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Capture {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut capture = Capture(None);
    let _ = T::deserialize(&mut capture);
    capture.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::super::vars;
    use super::*;

    #[test]
    fn misspelt_variable_is_refused_with_a_hint() {
        let e = check_unknown(&vars(&[("WORKER_CONCURENCY", "4")])).expect_err("typo");
        let msg = e.to_string();
        assert!(msg.contains("WORKER_CONCURENCY"), "{msg}");
        assert!(msg.contains("did you mean WORKER_CONCURRENCY"), "{msg}");
    }

    #[test]
    fn known_and_foreign_variables_pass() {
        check_unknown(&vars(&[
            ("WORKER_CONCURRENCY", "4"),
            ("REDIS_URL", "redis://x"),
            ("ROOT_NODE_SECRET", "s"),
            ("REDIS_PORT", "tcp://10.0.0.1:6379"),
            ("DISPATCHER_SERVICE_HOST", "10.0.0.2"),
            ("PATH", "/bin"),
        ]))
        .expect("all known");
    }

    #[test]
    fn every_duration_variable_keeps_its_name() {
        // The fields are named without their unit; the variables still carry it.
        let durations = [
            "REDIS_TIMEOUT_MS",
            "RESULT_TTL_S",
            "MAX_WAIT_MS",
            "WORKER_TIMEOUT_MS",
            "PROMOTE_INTERVAL_MS",
            "IDEMPOTENCY_TTL_S",
            "WORKER_BLOCK_MS",
            "HEARTBEAT_INTERVAL_MS",
            "LEASE_TIMEOUT_MS",
            "RETRY_BASE_MS",
            "RETRY_MAX_MS",
            "SHUTDOWN_GRACE_MS",
            "SESSION_TTL_S",
            "LLM_TIMEOUT_MS",
            "LLM_CONNECT_TIMEOUT_MS",
            "LLM_RETRY_BASE_MS",
            "LLM_RETRY_MAX_MS",
            "WEB_FETCH_TIMEOUT_MS",
            "EXEC_TIMEOUT_MS",
            "HTTP_HEADER_TIMEOUT_MS",
            "LLM_LIMIT_WINDOW_MS",
        ];
        for var in durations {
            check_unknown(&vars(&[(var, "1000")])).expect(var);
        }
        for var in ["HEARTBEAT_INTERVAL", "WORKER_BLOCK", "EXEC_TIMEOUT"] {
            check_unknown(&vars(&[(var, "1")])).expect_err(var);
        }
    }
}
