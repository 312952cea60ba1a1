//! The worker's own settings: identity, queues, concurrency, heartbeat, lease, retries and
//! shutdown; its chat and tool settings live in [`LlmConfig`] and [`ToolsConfig`].

use std::time::Duration;

use serde::Deserialize;

use super::{
    ConfigError, DEFAULT_WORKER_TIMEOUT_MS, LimitsConfig, LlmConfig, ToolsConfig, check_queues,
    invalid, millis, parse, split_list,
};

/// Default `WORKER_PORT`.
pub const DEFAULT_WORKER_PORT: u16 = 3001;
/// Default `WORKER_BIND`.
pub const DEFAULT_WORKER_BIND: &str = "0.0.0.0";
/// Default `WORKER_QUEUES`.
pub const DEFAULT_WORKER_QUEUES: &str = "chat,tool";
/// Default `WORKER_CONCURRENCY`: tasks one worker runs at once.
pub const DEFAULT_WORKER_CONCURRENCY: usize = 16;
/// Default `WORKER_BATCH_SIZE`: most entries fetched by one XREADGROUP.
pub const DEFAULT_WORKER_BATCH_SIZE: usize = 64;
/// Default `WORKER_BLOCK_MS`: how long one XREADGROUP blocks when the queues are empty.
pub const DEFAULT_WORKER_BLOCK_MS: u64 = 1_000;
/// Default `HEARTBEAT_INTERVAL_MS`.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// Default `LEASE_TIMEOUT_MS`: an entry idle this long is taken from its (hung) owner.
pub const DEFAULT_LEASE_TIMEOUT_MS: u64 = 30_000;
/// Default `RETRY_BASE_MS`: backoff before the second attempt.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
/// Default `RETRY_MAX_MS`: longest backoff between attempts.
pub const DEFAULT_RETRY_MAX_MS: u64 = 60_000;
/// Default `SHUTDOWN_GRACE_MS`: how long in-flight tasks may finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

/// How many heartbeat intervals a worker's registry record outlives its last refresh. A
/// consumer idle that long without a record counts as dead, and `LEASE_TIMEOUT_MS` may not be
/// shorter, or a live owner that missed a heartbeat or two would lose its entries.
pub const REGISTRY_TTL_HEARTBEATS: u32 = 3;
/// How many times per `LEASE_TIMEOUT_MS` a worker refreshes the idle time of the entries it runs
/// (never more often than once a heartbeat). An entry's idle time then peaks at a third of the
/// lease, and a refresh that fails is retried on the next beat, so the lease backstop could only
/// take an entry from a live worker after two thirds of a lease of failed refreshes; liveness
/// itself is the registry record, refreshed every heartbeat. Each refresh costs Redis about 5 µs
/// per entry (measured: the multi-id `XCLAIM` half of it, Lua the rest), so this is the main cost
/// of a held task.
pub const LEASE_REFRESHES: u32 = 3;
/// Default `OUTPUT_FLUSH_MS`: longest a streamed delta waits in the worker before it is written
/// to the task's output stream (the first delta of an attempt never waits).
pub const DEFAULT_OUTPUT_FLUSH_MS: u64 = 100;
/// Default `OUTPUT_FLUSH_BYTES`: buffered text that is written at once, without waiting.
pub const DEFAULT_OUTPUT_FLUSH_BYTES: usize = 4_096;
/// Largest `OUTPUT_FLUSH_MS`: beyond it a reader would watch a silent stream.
pub const MAX_OUTPUT_FLUSH_MS: u64 = 10_000;
/// Largest `OUTPUT_FLUSH_BYTES` (1 MiB): one stream entry stays small.
pub const MAX_OUTPUT_FLUSH_BYTES: usize = 1 << 20;

/// The worker's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// `WORKER_ID`: consumer name in every group; default hostname-pid. Must be unique.
    pub worker_id: Option<String>,
    /// `WORKER_PORT`: port of the worker's `/health`; 0 picks a free port.
    pub worker_port: u16,
    /// `WORKER_BIND`: address of the worker's health server.
    pub worker_bind: String,
    /// `WORKER_QUEUES`: queues this worker consumes (comma-separated).
    pub worker_queues: Vec<String>,
    /// `WORKER_CONCURRENCY`: tasks run at once.
    pub worker_concurrency: usize,
    /// `WORKER_BATCH_SIZE`: most entries fetched by one XREADGROUP.
    pub worker_batch_size: usize,
    /// `WORKER_BLOCK_MS`: how long one XREADGROUP blocks on empty queues.
    #[serde(rename = "worker_block_ms", with = "millis")]
    pub worker_block: Duration,
    /// `WORKER_TIMEOUT_MS`: attempt timeout of tasks that carry none.
    #[serde(rename = "worker_timeout_ms", with = "millis")]
    pub worker_timeout: Duration,
    /// `HEARTBEAT_INTERVAL_MS`: period of the registry refresh; the record lives
    /// [`REGISTRY_TTL_HEARTBEATS`] periods.
    #[serde(rename = "heartbeat_interval_ms", with = "millis")]
    pub heartbeat_interval: Duration,
    /// `LEASE_TIMEOUT_MS`: entries idle this long are reclaimed even from a live owner.
    #[serde(rename = "lease_timeout_ms", with = "millis")]
    pub lease_timeout: Duration,
    /// `RETRY_BASE_MS`: backoff before the second attempt; doubles each attempt.
    #[serde(rename = "retry_base_ms", with = "millis")]
    pub retry_base: Duration,
    /// `RETRY_MAX_MS`: cap of the backoff.
    #[serde(rename = "retry_max_ms", with = "millis")]
    pub retry_max: Duration,
    /// `SHUTDOWN_GRACE_MS`: how long in-flight tasks may finish after SIGTERM.
    #[serde(rename = "shutdown_grace_ms", with = "millis")]
    pub shutdown_grace: Duration,
    /// `OUTPUT_FLUSH_MS`: longest a streamed delta waits before it is written to the task's output
    /// stream, 1–10000; the first delta of each attempt is written at once.
    #[serde(rename = "output_flush_ms", with = "millis")]
    pub output_flush: Duration,
    /// `OUTPUT_FLUSH_BYTES`: buffered text written at once without waiting for `OUTPUT_FLUSH_MS`,
    /// 1–1048576 bytes.
    pub output_flush_bytes: usize,
    /// `TENANT_CACHE_MS`: how long a worker keeps what it read about a tenant's `tpm` and
    /// `max_running` (the dispatcher's setting of the same name, same default and bound).
    #[serde(rename = "tenant_cache_ms", with = "millis")]
    pub tenant_cache: Duration,
    /// The chat settings (`LLM_*`, `OPENAI_*`, `ANTHROPIC_*`, `SESSION_*`, `ECHO_*`).
    #[serde(skip)]
    pub llm: LlmConfig,
    /// The tool settings (`ENABLE_*`, `WEB_FETCH_*`, `TOOL_*`, `EXEC_*`).
    #[serde(skip)]
    pub tools: ToolsConfig,
    /// The provider limits shared by the fleet (`*_RPM`, `*_TPM`, `LLM_MODEL_LIMITS`,
    /// `LLM_LIMIT_WINDOW_MS`).
    #[serde(skip)]
    pub limits: LimitsConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: None,
            worker_port: DEFAULT_WORKER_PORT,
            worker_bind: DEFAULT_WORKER_BIND.to_owned(),
            worker_queues: split_list(DEFAULT_WORKER_QUEUES),
            worker_concurrency: DEFAULT_WORKER_CONCURRENCY,
            worker_batch_size: DEFAULT_WORKER_BATCH_SIZE,
            worker_block: Duration::from_millis(DEFAULT_WORKER_BLOCK_MS),
            worker_timeout: Duration::from_millis(DEFAULT_WORKER_TIMEOUT_MS),
            heartbeat_interval: Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS),
            lease_timeout: Duration::from_millis(DEFAULT_LEASE_TIMEOUT_MS),
            retry_base: Duration::from_millis(DEFAULT_RETRY_BASE_MS),
            retry_max: Duration::from_millis(DEFAULT_RETRY_MAX_MS),
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
            output_flush: Duration::from_millis(DEFAULT_OUTPUT_FLUSH_MS),
            output_flush_bytes: DEFAULT_OUTPUT_FLUSH_BYTES,
            tenant_cache: Duration::from_millis(super::dispatcher::DEFAULT_TENANT_CACHE_MS),
            llm: LlmConfig::default(),
            tools: ToolsConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl WorkerConfig {
    /// Reads the worker's variables, its chat and tool settings included, from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        // Every variable is parsed before any is checked, so a malformed one is reported first.
        let mut c: Self = parse(vars)?;
        c.llm = LlmConfig::parse(vars)?;
        c.tools = ToolsConfig::parse(vars)?;
        c.limits = LimitsConfig::from_vars(vars)?;
        c.check()?;
        c.llm.check()?;
        c.tools.check()?;
        Ok(c)
    }

    /// How long a registry record outlives its last refresh.
    pub fn registry_ttl(&self) -> Duration {
        self.heartbeat_interval * REGISTRY_TTL_HEARTBEATS
    }

    /// How often the idle time of running entries is refreshed: [`LEASE_REFRESHES`] times per
    /// lease, at most once a heartbeat (10 s with the defaults).
    pub fn lease_refresh(&self) -> Duration {
        (self.lease_timeout / LEASE_REFRESHES).max(self.heartbeat_interval)
    }

    /// The worker's own variables: ranges, and a lease that outlives missed heartbeats.
    fn check(&self) -> Result<(), ConfigError> {
        check_queues("WORKER_QUEUES", &self.worker_queues)?;
        if self.worker_concurrency == 0 {
            return Err(invalid("WORKER_CONCURRENCY", "must be at least 1"));
        }
        if self.worker_batch_size == 0 {
            return Err(invalid("WORKER_BATCH_SIZE", "must be at least 1"));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(invalid("HEARTBEAT_INTERVAL_MS", "must be above 0"));
        }
        if self.lease_timeout < self.registry_ttl() {
            return Err(ConfigError::Invalid {
                var: "LEASE_TIMEOUT_MS",
                message: format!(
                    "must be at least {REGISTRY_TTL_HEARTBEATS} × HEARTBEAT_INTERVAL_MS"
                ),
            });
        }
        if self.retry_max < self.retry_base {
            return Err(invalid("RETRY_MAX_MS", "must be at least RETRY_BASE_MS"));
        }
        let flush_ms = self.output_flush.as_millis();
        if flush_ms == 0 || flush_ms > u128::from(MAX_OUTPUT_FLUSH_MS) {
            return Err(invalid("OUTPUT_FLUSH_MS", "must be 1–10000"));
        }
        let max_cache = super::dispatcher::MAX_TENANT_CACHE_MS;
        if self.tenant_cache > Duration::from_millis(max_cache) {
            return Err(invalid(
                "TENANT_CACHE_MS",
                &format!("must be at most {max_cache}"),
            ));
        }
        if self.output_flush_bytes == 0 || self.output_flush_bytes > MAX_OUTPUT_FLUSH_BYTES {
            return Err(invalid("OUTPUT_FLUSH_BYTES", "must be 1–1048576"));
        }
        if let Some(id) = &self.worker_id
            && (id.is_empty() || id.len() > 128 || id.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "WORKER_ID",
                "must be 1–128 characters without spaces",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check_unknown, vars};
    use super::*;

    #[test]
    fn output_settings_default_and_malformed_ones_are_refused_by_name() {
        let w = WorkerConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(
            w.output_flush,
            Duration::from_millis(DEFAULT_OUTPUT_FLUSH_MS)
        );
        assert_eq!(w.output_flush_bytes, DEFAULT_OUTPUT_FLUSH_BYTES);
        assert_eq!(w.llm.echo_token_delay, Duration::ZERO);
        let w = WorkerConfig::from_vars(&vars(&[
            ("OUTPUT_FLUSH_MS", "20"),
            ("OUTPUT_FLUSH_BYTES", "512"),
            ("ECHO_TOKEN_DELAY_MS", "15"),
        ]))
        .expect("valid");
        assert_eq!(w.output_flush, Duration::from_millis(20));
        assert_eq!(w.output_flush_bytes, 512);
        assert_eq!(w.llm.echo_token_delay, Duration::from_millis(15));
        for (var, value) in [
            ("OUTPUT_FLUSH_MS", "0"),
            ("OUTPUT_FLUSH_MS", "10001"),
            ("OUTPUT_FLUSH_MS", "soon"),
            ("OUTPUT_FLUSH_BYTES", "0"),
            ("OUTPUT_FLUSH_BYTES", "-1"),
            ("OUTPUT_FLUSH_BYTES", "2000000"),
            ("ECHO_TOKEN_DELAY_MS", "1.5"),
        ] {
            let e = WorkerConfig::from_vars(&vars(&[(var, value)])).expect_err("invalid");
            assert!(e.to_string().contains(var), "{var}={value}: {e}");
        }
        check_unknown(&vars(&[("OUTPUT_FLUSH_MSS", "5")])).expect_err("typo refused");
    }

    #[test]
    fn defaults_and_durations_are_read_in_their_units() {
        let w = WorkerConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(w.worker_id, None);
        assert_eq!(w.worker_bind, "0.0.0.0");
        assert_eq!(w.worker_concurrency, 16);
        assert_eq!(w.worker_batch_size, 64);
        assert_eq!(w.worker_block, Duration::from_secs(1));
        assert_eq!(w.worker_timeout, Duration::from_secs(120));
        assert_eq!(w.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(w.lease_timeout, Duration::from_secs(30));
        assert_eq!(w.retry_base, Duration::from_secs(1));
        assert_eq!(w.retry_max, Duration::from_secs(60));
        assert_eq!(w.shutdown_grace, Duration::from_secs(10));
        assert_eq!(w.registry_ttl(), Duration::from_millis(1_500));
        assert_eq!(w.lease_refresh(), Duration::from_secs(10));
        let w = WorkerConfig::from_vars(&vars(&[
            ("WORKER_BLOCK_MS", "1"),
            ("WORKER_TIMEOUT_MS", "2"),
            ("HEARTBEAT_INTERVAL_MS", "3"),
            ("LEASE_TIMEOUT_MS", "9"),
            ("RETRY_BASE_MS", "5"),
            ("RETRY_MAX_MS", "6"),
            ("SHUTDOWN_GRACE_MS", "7"),
        ]))
        .expect("valid");
        assert_eq!(w.worker_block, Duration::from_millis(1));
        assert_eq!(w.worker_timeout, Duration::from_millis(2));
        assert_eq!(w.heartbeat_interval, Duration::from_millis(3));
        assert_eq!(w.lease_timeout, Duration::from_millis(9));
        assert_eq!(w.retry_base, Duration::from_millis(5));
        assert_eq!(w.retry_max, Duration::from_millis(6));
        assert_eq!(w.shutdown_grace, Duration::from_millis(7));
    }

    #[test]
    fn lease_must_outlive_three_heartbeats() {
        let at = |lease: &str| {
            WorkerConfig::from_vars(&vars(&[
                ("HEARTBEAT_INTERVAL_MS", "100"),
                ("LEASE_TIMEOUT_MS", lease),
            ]))
        };
        let w = at("300").expect("exactly three heartbeats");
        assert_eq!(w.lease_refresh(), Duration::from_millis(100), "once a beat");
        let e = at("299").expect_err("under three heartbeats");
        assert_eq!(
            e.to_string(),
            "configuration: LEASE_TIMEOUT_MS: must be at least 3 × HEARTBEAT_INTERVAL_MS"
        );
    }
}
