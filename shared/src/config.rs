//! Configuration read once from the environment (SPEC §8): one struct per concern, parsed with
//! `envy`; a missing, malformed or misspelt variable is an error that names the variable.
//!
//! Durations are whole milliseconds in the environment (`*_MS`) or seconds (`*_S`) and typed as
//! [`Duration`] here. Every default is a `DEFAULT_*` constant so the README and
//! `compose/.env.example` can be checked against one place.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};

use crate::task::is_valid_queue_name;

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
/// Default `RUNTIME_THREADS`: one thread runs the whole async runtime.
pub const DEFAULT_RUNTIME_THREADS: usize = 1;
/// Most `RUNTIME_THREADS` accepted: beyond this a value is a typo, not a machine.
pub const MAX_RUNTIME_THREADS: usize = 1024;
/// Default `LOG_LEVEL` (a `tracing` filter directive).
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `DISPATCHER_ADDR`.
pub const DEFAULT_DISPATCHER_ADDR: &str = "0.0.0.0:3000";
/// Default `QUEUES`: queues the dispatcher accepts tasks for.
pub const DEFAULT_QUEUES: &str = "chat,tool";
/// Default `MAX_BODY_BYTES` (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default `MAX_WAIT_MS`: the longest `?wait_ms=` a request may ask for.
pub const DEFAULT_MAX_WAIT_MS: u64 = 300_000;
/// Default `WORKER_TIMEOUT_MS`: default per-attempt timeout and the `/api/chat` wait.
pub const DEFAULT_WORKER_TIMEOUT_MS: u64 = 120_000;
/// Default `PROMOTE_INTERVAL_MS`: how often due delayed tasks are moved back to their stream.
pub const DEFAULT_PROMOTE_INTERVAL_MS: u64 = 200;
/// Default `IDEMPOTENCY_TTL_S`: how long an idempotency key maps to its task (one day).
pub const DEFAULT_IDEMPOTENCY_TTL_S: u64 = 86_400;
/// Default `WORKER_PORT`.
pub const DEFAULT_WORKER_PORT: u16 = 3001;
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
/// Default `LLM_PROVIDER`.
pub const DEFAULT_LLM_PROVIDER: &str = "echo";
/// Default `LLM_MODEL`.
pub const DEFAULT_LLM_MODEL: &str = "echo-1";
/// Default `SESSION_MAX_MESSAGES`: chat history kept per session.
pub const DEFAULT_SESSION_MAX_MESSAGES: usize = 50;
/// Default `SESSION_TTL_S`: a session expires this long after its last turn (one day).
pub const DEFAULT_SESSION_TTL_S: u64 = 86_400;
/// Providers `LLM_PROVIDER` may name.
pub const LLM_PROVIDERS: &[&str] = &["echo", "openai", "anthropic"];
/// Default `OPENAI_BASE_URL`.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Default `ANTHROPIC_BASE_URL`.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// `max_tokens` sent to Anthropic when `LLM_MAX_TOKENS` is unset (the messages API requires one).
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 1_024;
/// Default `LLM_TIMEOUT_MS`: bound of one provider HTTP request.
pub const DEFAULT_LLM_TIMEOUT_MS: u64 = 60_000;
/// Default `LLM_CONNECT_TIMEOUT_MS`: bound of connecting to a provider.
pub const DEFAULT_LLM_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default `LLM_MAX_RETRIES`: retries of one provider on 429, 5xx or a timeout.
pub const DEFAULT_LLM_MAX_RETRIES: usize = 2;
/// Default `LLM_RETRY_BASE_MS`: first backoff between provider retries.
pub const DEFAULT_LLM_RETRY_BASE_MS: u64 = 500;
/// Default `LLM_RETRY_MAX_MS`: longest wait between provider retries, `Retry-After` included.
pub const DEFAULT_LLM_RETRY_MAX_MS: u64 = 20_000;
/// Default `ECHO_TOKEN_DELAY_MS`: the `echo` provider sends its words without a pause.
pub const DEFAULT_ECHO_TOKEN_DELAY_MS: u64 = 0;
/// Default `OUTPUT_FLUSH_MS`: longest a streamed delta waits in the worker before it is written
/// to the task's output stream (the first delta of an attempt never waits).
pub const DEFAULT_OUTPUT_FLUSH_MS: u64 = 50;
/// Default `OUTPUT_FLUSH_BYTES`: buffered text that is written at once, without waiting.
pub const DEFAULT_OUTPUT_FLUSH_BYTES: usize = 4_096;
/// Largest `OUTPUT_FLUSH_MS`: beyond it a reader would watch a silent stream.
pub const MAX_OUTPUT_FLUSH_MS: u64 = 10_000;
/// Largest `OUTPUT_FLUSH_BYTES` (1 MiB): one stream entry stays small.
pub const MAX_OUTPUT_FLUSH_BYTES: usize = 1 << 20;
/// Default `WEB_FETCH_MAX_BYTES`: body bytes `web_fetch` keeps (1 MiB); the rest is cut off.
pub const DEFAULT_WEB_FETCH_MAX_BYTES: usize = 1 << 20;
/// Default `WEB_FETCH_TIMEOUT_MS`: bound of one `web_fetch`, redirects included.
pub const DEFAULT_WEB_FETCH_TIMEOUT_MS: u64 = 10_000;
/// Default `WEB_FETCH_MAX_REDIRECTS`.
pub const DEFAULT_WEB_FETCH_MAX_REDIRECTS: usize = 5;
/// Default `TOOL_MAX_FILE_BYTES`: largest file `read_file` returns whole and `write_file` writes.
pub const DEFAULT_TOOL_MAX_FILE_BYTES: usize = 1 << 20;
/// Default `TOOL_MAX_DIR_ENTRIES`: entries `list_dir` returns.
pub const DEFAULT_TOOL_MAX_DIR_ENTRIES: usize = 1_000;
/// Default `EXEC_TIMEOUT_MS`: an `exec` command is killed after this long.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 10_000;
/// Default `EXEC_MAX_OUTPUT_BYTES`: bytes kept of each of stdout and stderr.
pub const DEFAULT_EXEC_MAX_OUTPUT_BYTES: usize = 64 << 10;
/// Default `EXEC_PATH`: the only environment variable, besides `HOME`, an `exec` command sees.
pub const DEFAULT_EXEC_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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

/// Connection to Redis and the key prefix: read by both binaries.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[user:pass@]host:port[/db]`.
    #[serde(default = "default_redis_url")]
    pub redis_url: String,
    /// `QUEUE_PREFIX`: prefix of every key, so deployments can share one Redis.
    #[serde(default = "default_queue_prefix")]
    pub queue_prefix: String,
    /// `REDIS_TIMEOUT_MS`: connect and response timeout of ordinary calls.
    #[serde(default = "default_redis_timeout", with = "millis")]
    pub redis_timeout_ms: Duration,
    /// `REDIS_POOL_SIZE`: shared multiplexed connections, handed out round-robin.
    #[serde(default = "default_pool_size")]
    pub redis_pool_size: usize,
    /// `RESULT_TTL_S`: how long a finished task record is kept, in seconds.
    #[serde(default = "default_result_ttl", with = "seconds")]
    pub result_ttl_s: Duration,
    /// `EVENTS_MAXLEN`: approximate cap of each queue's events stream.
    #[serde(default = "default_events_maxlen")]
    pub events_maxlen: u64,
}

/// Logging: read by both binaries.
#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    /// `LOG_LEVEL`: a `tracing` filter (`info`, `debug`, `switchyard_worker=debug,info`, …).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `LOG_FORMAT`: `pretty` for terminals, `json` for containers.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// The async runtime: read by both binaries.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RuntimeConfig {
    /// `RUNTIME_THREADS`: 1 runs everything on one thread; N > 1 a pool of N threads; 0 a pool
    /// of one thread per core.
    #[serde(default = "default_runtime_threads")]
    pub runtime_threads: usize,
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

/// The dispatcher's own settings.
#[derive(Clone, Deserialize)]
pub struct DispatcherConfig {
    /// `DISPATCHER_ADDR`: where the HTTP API listens.
    #[serde(default = "default_dispatcher_addr")]
    pub dispatcher_addr: String,
    /// `ROOT_NODE_SECRET`: bearer token of `/api/*`. Unset: only a loopback address may be bound.
    #[serde(default)]
    pub root_node_secret: Option<String>,
    /// `QUEUES`: queues tasks may be enqueued on (comma-separated).
    #[serde(default = "default_queues")]
    pub queues: Vec<String>,
    /// `MAX_BODY_BYTES`: larger request bodies are answered 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// `MAX_QUEUE_DEPTH`: enqueue answers 429 when a stream holds this many entries; 0 = no limit.
    #[serde(default)]
    pub max_queue_depth: u64,
    /// `MAX_WAIT_MS`: upper bound of `?wait_ms=`.
    #[serde(default = "default_max_wait", with = "millis")]
    pub max_wait_ms: Duration,
    /// `WORKER_TIMEOUT_MS`: default task timeout, and how long `/api/chat` waits.
    #[serde(default = "default_worker_timeout", with = "millis")]
    pub worker_timeout_ms: Duration,
    /// `PROMOTE_INTERVAL_MS`: period of the delayed-task promoter.
    #[serde(default = "default_promote_interval", with = "millis")]
    pub promote_interval_ms: Duration,
    /// `IDEMPOTENCY_TTL_S`: lifetime of an idempotency key, in seconds.
    #[serde(default = "default_idempotency_ttl", with = "seconds")]
    pub idempotency_ttl_s: Duration,
}

impl std::fmt::Debug for DispatcherConfig {
    // Hand-written so the secret can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherConfig")
            .field("dispatcher_addr", &self.dispatcher_addr)
            .field(
                "root_node_secret",
                &self.root_node_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("queues", &self.queues)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_queue_depth", &self.max_queue_depth)
            .field("max_wait_ms", &self.max_wait_ms)
            .field("worker_timeout_ms", &self.worker_timeout_ms)
            .field("promote_interval_ms", &self.promote_interval_ms)
            .field("idempotency_ttl_s", &self.idempotency_ttl_s)
            .finish()
    }
}

/// The worker's own settings.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerConfig {
    /// `WORKER_ID`: consumer name in every group; default hostname-pid. Must be unique.
    #[serde(default)]
    pub worker_id: Option<String>,
    /// `WORKER_PORT`: port of the worker's `/health`; 0 picks a free port.
    #[serde(default = "default_worker_port")]
    pub worker_port: u16,
    /// `WORKER_BIND`: address of the worker's health server.
    #[serde(default = "default_worker_bind")]
    pub worker_bind: String,
    /// `WORKER_QUEUES`: queues this worker consumes (comma-separated).
    #[serde(default = "default_worker_queues")]
    pub worker_queues: Vec<String>,
    /// `WORKER_CONCURRENCY`: tasks run at once.
    #[serde(default = "default_concurrency")]
    pub worker_concurrency: usize,
    /// `WORKER_BATCH_SIZE`: most entries fetched by one XREADGROUP.
    #[serde(default = "default_batch_size")]
    pub worker_batch_size: usize,
    /// `WORKER_BLOCK_MS`: how long one XREADGROUP blocks on empty queues.
    #[serde(default = "default_block", with = "millis")]
    pub worker_block_ms: Duration,
    /// `WORKER_TIMEOUT_MS`: attempt timeout of tasks that carry none.
    #[serde(default = "default_worker_timeout", with = "millis")]
    pub worker_timeout_ms: Duration,
    /// `HEARTBEAT_INTERVAL_MS`: period of the registry refresh; the record lives 3 periods.
    #[serde(default = "default_heartbeat", with = "millis")]
    pub heartbeat_interval_ms: Duration,
    /// `LEASE_TIMEOUT_MS`: entries idle this long are reclaimed even from a live owner.
    #[serde(default = "default_lease", with = "millis")]
    pub lease_timeout_ms: Duration,
    /// `RETRY_BASE_MS`: backoff before the second attempt; doubles each attempt.
    #[serde(default = "default_retry_base", with = "millis")]
    pub retry_base_ms: Duration,
    /// `RETRY_MAX_MS`: cap of the backoff.
    #[serde(default = "default_retry_max", with = "millis")]
    pub retry_max_ms: Duration,
    /// `SHUTDOWN_GRACE_MS`: how long in-flight tasks may finish after SIGTERM.
    #[serde(default = "default_grace", with = "millis")]
    pub shutdown_grace_ms: Duration,
    /// `LLM_PROVIDER`: `echo` | `openai` | `anthropic`, or a comma list as a fallback order.
    #[serde(default = "default_llm_provider")]
    pub llm_provider: Vec<String>,
    /// `LLM_MODEL`: model used when a chat task names none.
    #[serde(default = "default_llm_model")]
    pub llm_model: String,
    /// `SESSION_MAX_MESSAGES`: messages kept per chat session.
    #[serde(default = "default_session_max")]
    pub session_max_messages: usize,
    /// `SESSION_TTL_S`: a session expires this long after its last turn, in seconds.
    #[serde(default = "default_session_ttl", with = "seconds")]
    pub session_ttl_s: Duration,
    /// `OPENAI_API_KEY`: bearer token of the `openai` provider; optional for servers that need
    /// none (Ollama, vLLM).
    #[serde(default)]
    pub openai_api_key: Option<Secret>,
    /// `OPENAI_BASE_URL`: any OpenAI-compatible API root; `/chat/completions` is appended.
    #[serde(default = "default_openai_base_url")]
    pub openai_base_url: String,
    /// `OPENAI_MODEL`: model of the `openai` provider when a task names none; `LLM_MODEL` if unset.
    #[serde(default)]
    pub openai_model: Option<String>,
    /// `ANTHROPIC_API_KEY`: key of the `anthropic` provider (required when it is used).
    #[serde(default)]
    pub anthropic_api_key: Option<Secret>,
    /// `ANTHROPIC_BASE_URL`: API root; `/v1/messages` is appended.
    #[serde(default = "default_anthropic_base_url")]
    pub anthropic_base_url: String,
    /// `ANTHROPIC_MODEL`: model of the `anthropic` provider when a task names none; `LLM_MODEL`
    /// if unset.
    #[serde(default)]
    pub anthropic_model: Option<String>,
    /// `LLM_MAX_TOKENS`: most tokens an answer may have; unset: the provider's default
    /// (Anthropic, which needs a value, gets 1024).
    #[serde(default)]
    pub llm_max_tokens: Option<u32>,
    /// `LLM_TIMEOUT_MS`: bound of one provider HTTP request.
    #[serde(default = "default_llm_timeout", with = "millis")]
    pub llm_timeout_ms: Duration,
    /// `LLM_CONNECT_TIMEOUT_MS`: bound of connecting to a provider.
    #[serde(default = "default_llm_connect_timeout", with = "millis")]
    pub llm_connect_timeout_ms: Duration,
    /// `LLM_MAX_RETRIES`: retries of one provider on 429, 5xx, timeouts and connection errors
    /// before the next provider of `LLM_PROVIDER` is tried.
    #[serde(default = "default_llm_max_retries")]
    pub llm_max_retries: usize,
    /// `LLM_RETRY_BASE_MS`: first backoff between provider retries; doubles each retry.
    #[serde(default = "default_llm_retry_base", with = "millis")]
    pub llm_retry_base_ms: Duration,
    /// `LLM_RETRY_MAX_MS`: longest wait between provider retries; caps `Retry-After` too.
    #[serde(default = "default_llm_retry_max", with = "millis")]
    pub llm_retry_max_ms: Duration,
    /// `ECHO_TOKEN_DELAY_MS`: pause between the words the `echo` provider streams, so a demo or
    /// a test can watch an answer arrive.
    #[serde(default = "default_echo_token_delay", with = "millis")]
    pub echo_token_delay_ms: Duration,
    /// `OUTPUT_FLUSH_MS`: longest a streamed delta waits before it is written to the task's output
    /// stream, 1–10000; the first delta of each attempt is written at once.
    #[serde(default = "default_output_flush", with = "millis")]
    pub output_flush_ms: Duration,
    /// `OUTPUT_FLUSH_BYTES`: buffered text written at once without waiting for `OUTPUT_FLUSH_MS`,
    /// 1–1048576 bytes.
    #[serde(default = "default_output_flush_bytes")]
    pub output_flush_bytes: usize,
    /// `ENABLE_WEB_SEARCH`: serve the `web_fetch` tool (and consume the `web` queue).
    #[serde(default)]
    pub enable_web_search: bool,
    /// `ENABLE_FILE_TOOLS`: serve `read_file`, `write_file`, `list_dir` (queue `files`).
    #[serde(default)]
    pub enable_file_tools: bool,
    /// `ENABLE_CODE_EXEC`: serve `exec` (queue `exec`). Off by default: it runs commands.
    #[serde(default)]
    pub enable_code_exec: bool,
    /// `WEB_FETCH_ALLOW_PRIVATE`: let `web_fetch` reach loopback, private, link-local and
    /// metadata addresses. Off by default (server-side request forgery).
    #[serde(default)]
    pub web_fetch_allow_private: bool,
    /// `WEB_FETCH_ALLOWED_IPS`: comma-separated addresses `web_fetch` may reach although they
    /// are private (an internal service); empty by default.
    #[serde(default, deserialize_with = "ip_list")]
    pub web_fetch_allowed_ips: Vec<std::net::IpAddr>,
    /// `WEB_FETCH_MAX_BYTES`: body bytes kept; the rest is cut off and `truncated` set.
    #[serde(default = "default_web_fetch_max_bytes")]
    pub web_fetch_max_bytes: usize,
    /// `WEB_FETCH_TIMEOUT_MS`: bound of one fetch, redirects included.
    #[serde(default = "default_web_fetch_timeout", with = "millis")]
    pub web_fetch_timeout_ms: Duration,
    /// `WEB_FETCH_MAX_REDIRECTS`: redirects followed, each checked like the first URL.
    #[serde(default = "default_web_fetch_max_redirects")]
    pub web_fetch_max_redirects: usize,
    /// `TOOL_SANDBOX_DIR`: the only directory file tools and `exec` work in; required when
    /// either is enabled (created if missing).
    #[serde(default)]
    pub tool_sandbox_dir: Option<String>,
    /// `TOOL_MAX_FILE_BYTES`: largest content `write_file` writes and `read_file` returns.
    #[serde(default = "default_tool_max_file_bytes")]
    pub tool_max_file_bytes: usize,
    /// `TOOL_MAX_DIR_ENTRIES`: most entries `list_dir` returns.
    #[serde(default = "default_tool_max_dir_entries")]
    pub tool_max_dir_entries: usize,
    /// `EXEC_TIMEOUT_MS`: an `exec` command is killed after this long.
    #[serde(default = "default_exec_timeout", with = "millis")]
    pub exec_timeout_ms: Duration,
    /// `EXEC_MAX_OUTPUT_BYTES`: bytes kept of each of stdout and stderr.
    #[serde(default = "default_exec_max_output")]
    pub exec_max_output_bytes: usize,
    /// `EXEC_PATH`: `PATH` of `exec` commands, which get no other variable of the worker's
    /// environment (no API keys).
    #[serde(default = "default_exec_path")]
    pub exec_path: String,
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

impl RedisConfig {
    /// Reads `REDIS_*`, `QUEUE_PREFIX`, `RESULT_TTL_S`, `EVENTS_MAXLEN` from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let c: Self = parse(vars)?;
        if c.redis_pool_size == 0 {
            return Err(invalid("REDIS_POOL_SIZE", "must be at least 1"));
        }
        if c.redis_timeout_ms.is_zero() {
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

impl DispatcherConfig {
    /// Reads the dispatcher's variables from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let c: Self = parse(vars)?;
        check_queues("QUEUES", &c.queues)?;
        if c.max_body_bytes == 0 {
            return Err(invalid("MAX_BODY_BYTES", "must be above 0"));
        }
        if c.root_node_secret.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(
                "ROOT_NODE_SECRET",
                "is set but empty; unset it or give it a value",
            ));
        }
        Ok(c)
    }
}

impl WorkerConfig {
    /// Reads the worker's variables from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut c: Self = parse(vars)?;
        check_queues("WORKER_QUEUES", &c.worker_queues)?;
        // `openai, anthropic` is as good as `openai,anthropic`.
        for name in &mut c.llm_provider {
            *name = name.trim().to_owned();
        }
        if c.worker_concurrency == 0 {
            return Err(invalid("WORKER_CONCURRENCY", "must be at least 1"));
        }
        if c.worker_batch_size == 0 {
            return Err(invalid("WORKER_BATCH_SIZE", "must be at least 1"));
        }
        if c.heartbeat_interval_ms.is_zero() {
            return Err(invalid("HEARTBEAT_INTERVAL_MS", "must be above 0"));
        }
        // The lease must outlive several missed heartbeats, or live owners lose their entries.
        if c.lease_timeout_ms < c.heartbeat_interval_ms * 3 {
            return Err(invalid(
                "LEASE_TIMEOUT_MS",
                "must be at least 3 × HEARTBEAT_INTERVAL_MS",
            ));
        }
        if c.retry_max_ms < c.retry_base_ms {
            return Err(invalid("RETRY_MAX_MS", "must be at least RETRY_BASE_MS"));
        }
        if let Some(id) = &c.worker_id
            && (id.is_empty() || id.len() > 128 || id.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "WORKER_ID",
                "must be 1–128 characters without spaces",
            ));
        }
        c.check_llm()?;
        c.check_output()?;
        c.check_tools()?;
        Ok(c)
    }

    /// The chat variables: known providers, keys and models for the ones named, sane timeouts.
    fn check_llm(&self) -> Result<(), ConfigError> {
        let names = &self.llm_provider;
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(invalid("LLM_PROVIDER", "must name at least one provider"));
        }
        for (i, n) in names.iter().enumerate() {
            if !LLM_PROVIDERS.contains(&n.as_str()) {
                return Err(ConfigError::Invalid {
                    var: "LLM_PROVIDER",
                    message: format!(
                        "unknown provider {n:?}; use one of {} or a comma list of them",
                        LLM_PROVIDERS.join(", ")
                    ),
                });
            }
            if names[..i].contains(n) {
                return Err(ConfigError::Invalid {
                    var: "LLM_PROVIDER",
                    message: format!("names {n:?} twice"),
                });
            }
        }
        let uses = |p: &str| names.iter().any(|n| n == p);
        for (var, key) in [
            ("OPENAI_API_KEY", &self.openai_api_key),
            ("ANTHROPIC_API_KEY", &self.anthropic_api_key),
        ] {
            if key.as_ref().is_some_and(|k| k.expose().trim().is_empty()) {
                return Err(invalid(
                    var,
                    "is set but empty; unset it or give it a value",
                ));
            }
        }
        for (var, url) in [
            ("OPENAI_BASE_URL", &self.openai_base_url),
            ("ANTHROPIC_BASE_URL", &self.anthropic_base_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(var, "must be an http:// or https:// URL"));
            }
        }
        if uses("anthropic") && self.anthropic_api_key.is_none() {
            return Err(invalid(
                "ANTHROPIC_API_KEY",
                "is required when LLM_PROVIDER names anthropic",
            ));
        }
        // Self-hosted compatible servers need no key; OpenAI itself always does.
        if uses("openai")
            && self.openai_api_key.is_none()
            && self.openai_base_url == DEFAULT_OPENAI_BASE_URL
        {
            return Err(invalid(
                "OPENAI_API_KEY",
                "is required when LLM_PROVIDER names openai with the default OPENAI_BASE_URL",
            ));
        }
        // The echo model name sent to a real API fails every task; refuse it at start instead.
        for (p, model, var) in [
            ("openai", &self.openai_model, "OPENAI_MODEL"),
            ("anthropic", &self.anthropic_model, "ANTHROPIC_MODEL"),
        ] {
            if uses(p) && model.is_none() && self.llm_model == DEFAULT_LLM_MODEL {
                return Err(ConfigError::Invalid {
                    var: "LLM_MODEL",
                    message: format!(
                        "is {DEFAULT_LLM_MODEL:?} (the echo model) but LLM_PROVIDER names {p}; set LLM_MODEL or {var}"
                    ),
                });
            }
        }
        if self.llm_timeout_ms.is_zero() {
            return Err(invalid("LLM_TIMEOUT_MS", "must be above 0"));
        }
        if self.llm_connect_timeout_ms.is_zero() {
            return Err(invalid("LLM_CONNECT_TIMEOUT_MS", "must be above 0"));
        }
        if self.llm_retry_max_ms < self.llm_retry_base_ms {
            return Err(invalid(
                "LLM_RETRY_MAX_MS",
                "must be at least LLM_RETRY_BASE_MS",
            ));
        }
        if self.llm_max_tokens == Some(0) {
            return Err(invalid("LLM_MAX_TOKENS", "must be above 0"));
        }
        Ok(())
    }

    /// The output stream variables: a flush interval and threshold a reader can live with.
    fn check_output(&self) -> Result<(), ConfigError> {
        let ms = self.output_flush_ms.as_millis();
        if ms == 0 || ms > u128::from(MAX_OUTPUT_FLUSH_MS) {
            return Err(invalid("OUTPUT_FLUSH_MS", "must be 1–10000"));
        }
        if self.output_flush_bytes == 0 || self.output_flush_bytes > MAX_OUTPUT_FLUSH_BYTES {
            return Err(invalid("OUTPUT_FLUSH_BYTES", "must be 1–1048576"));
        }
        Ok(())
    }

    /// The tool variables: limits above zero, a sandbox for the tools that need one.
    fn check_tools(&self) -> Result<(), ConfigError> {
        let needs_sandbox = self.enable_file_tools || self.enable_code_exec;
        match self.tool_sandbox_dir.as_deref() {
            Some("") => {
                return Err(invalid(
                    "TOOL_SANDBOX_DIR",
                    "is set but empty; unset it or give it a value",
                ));
            }
            None if needs_sandbox => {
                return Err(invalid(
                    "TOOL_SANDBOX_DIR",
                    "is required when ENABLE_FILE_TOOLS or ENABLE_CODE_EXEC is true",
                ));
            }
            _ => {}
        }
        for (var, zero) in [
            ("WEB_FETCH_MAX_BYTES", self.web_fetch_max_bytes == 0),
            ("WEB_FETCH_TIMEOUT_MS", self.web_fetch_timeout_ms.is_zero()),
            ("TOOL_MAX_FILE_BYTES", self.tool_max_file_bytes == 0),
            ("TOOL_MAX_DIR_ENTRIES", self.tool_max_dir_entries == 0),
            ("EXEC_TIMEOUT_MS", self.exec_timeout_ms.is_zero()),
            ("EXEC_MAX_OUTPUT_BYTES", self.exec_max_output_bytes == 0),
        ] {
            if zero {
                return Err(invalid(var, "must be above 0"));
            }
        }
        Ok(())
    }
}

/// The process environment as pairs, for the `from_vars` constructors.
pub fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

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
];

/// Variables with an owned prefix that are read elsewhere (scripts, compose) and not by a binary.
const FOREIGN_VARS: &[&str] = &["WORKER_COUNT", "WORKER_REPLICAS"];

/// Refuses variables that look like ours but that no configuration struct reads.
///
/// Kubernetes service links (`REDIS_PORT=tcp://…`, `DISPATCHER_SERVICE_HOST`) are let through.
pub fn check_unknown(vars: &[(String, String)]) -> Result<(), ConfigError> {
    let mut known: BTreeSet<String> = BTreeSet::new();
    for fields in [
        field_names::<RedisConfig>(),
        field_names::<LogConfig>(),
        field_names::<RuntimeConfig>(),
        field_names::<DispatcherConfig>(),
        field_names::<WorkerConfig>(),
    ] {
        known.extend(fields.iter().map(|f| f.to_ascii_uppercase()));
    }
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

mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A comma-separated list of IP addresses; empty items are skipped, so an empty value is an
/// empty list.
fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| {
                de::Error::custom(format!("WEB_FETCH_ALLOWED_IPS: {a:?} is not an IP address"))
            })
        })
        .collect()
}

mod seconds {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

fn default_redis_url() -> String {
    DEFAULT_REDIS_URL.to_owned()
}
fn default_queue_prefix() -> String {
    DEFAULT_QUEUE_PREFIX.to_owned()
}
fn default_redis_timeout() -> Duration {
    Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS)
}
fn default_pool_size() -> usize {
    DEFAULT_REDIS_POOL_SIZE
}
fn default_result_ttl() -> Duration {
    Duration::from_secs(DEFAULT_RESULT_TTL_S)
}
fn default_events_maxlen() -> u64 {
    DEFAULT_EVENTS_MAXLEN
}
fn default_runtime_threads() -> usize {
    DEFAULT_RUNTIME_THREADS
}
fn default_log_level() -> String {
    DEFAULT_LOG_LEVEL.to_owned()
}
fn default_dispatcher_addr() -> String {
    DEFAULT_DISPATCHER_ADDR.to_owned()
}
fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::to_owned).collect()
}
fn default_queues() -> Vec<String> {
    split_list(DEFAULT_QUEUES)
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_wait() -> Duration {
    Duration::from_millis(DEFAULT_MAX_WAIT_MS)
}
fn default_worker_timeout() -> Duration {
    Duration::from_millis(DEFAULT_WORKER_TIMEOUT_MS)
}
fn default_promote_interval() -> Duration {
    Duration::from_millis(DEFAULT_PROMOTE_INTERVAL_MS)
}
fn default_idempotency_ttl() -> Duration {
    Duration::from_secs(DEFAULT_IDEMPOTENCY_TTL_S)
}
fn default_worker_port() -> u16 {
    DEFAULT_WORKER_PORT
}
fn default_worker_bind() -> String {
    "0.0.0.0".to_owned()
}
fn default_worker_queues() -> Vec<String> {
    split_list(DEFAULT_WORKER_QUEUES)
}
fn default_concurrency() -> usize {
    DEFAULT_WORKER_CONCURRENCY
}
fn default_batch_size() -> usize {
    DEFAULT_WORKER_BATCH_SIZE
}
fn default_block() -> Duration {
    Duration::from_millis(DEFAULT_WORKER_BLOCK_MS)
}
fn default_heartbeat() -> Duration {
    Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS)
}
fn default_lease() -> Duration {
    Duration::from_millis(DEFAULT_LEASE_TIMEOUT_MS)
}
fn default_retry_base() -> Duration {
    Duration::from_millis(DEFAULT_RETRY_BASE_MS)
}
fn default_retry_max() -> Duration {
    Duration::from_millis(DEFAULT_RETRY_MAX_MS)
}
fn default_grace() -> Duration {
    Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS)
}
fn default_llm_provider() -> Vec<String> {
    split_list(DEFAULT_LLM_PROVIDER)
}
fn default_llm_model() -> String {
    DEFAULT_LLM_MODEL.to_owned()
}
fn default_session_max() -> usize {
    DEFAULT_SESSION_MAX_MESSAGES
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(DEFAULT_SESSION_TTL_S)
}
fn default_openai_base_url() -> String {
    DEFAULT_OPENAI_BASE_URL.to_owned()
}
fn default_anthropic_base_url() -> String {
    DEFAULT_ANTHROPIC_BASE_URL.to_owned()
}
fn default_llm_timeout() -> Duration {
    Duration::from_millis(DEFAULT_LLM_TIMEOUT_MS)
}
fn default_llm_connect_timeout() -> Duration {
    Duration::from_millis(DEFAULT_LLM_CONNECT_TIMEOUT_MS)
}
fn default_llm_max_retries() -> usize {
    DEFAULT_LLM_MAX_RETRIES
}
fn default_llm_retry_base() -> Duration {
    Duration::from_millis(DEFAULT_LLM_RETRY_BASE_MS)
}
fn default_llm_retry_max() -> Duration {
    Duration::from_millis(DEFAULT_LLM_RETRY_MAX_MS)
}
fn default_echo_token_delay() -> Duration {
    Duration::from_millis(DEFAULT_ECHO_TOKEN_DELAY_MS)
}
fn default_output_flush() -> Duration {
    Duration::from_millis(DEFAULT_OUTPUT_FLUSH_MS)
}
fn default_output_flush_bytes() -> usize {
    DEFAULT_OUTPUT_FLUSH_BYTES
}
fn default_web_fetch_max_bytes() -> usize {
    DEFAULT_WEB_FETCH_MAX_BYTES
}
fn default_web_fetch_timeout() -> Duration {
    Duration::from_millis(DEFAULT_WEB_FETCH_TIMEOUT_MS)
}
fn default_web_fetch_max_redirects() -> usize {
    DEFAULT_WEB_FETCH_MAX_REDIRECTS
}
fn default_tool_max_file_bytes() -> usize {
    DEFAULT_TOOL_MAX_FILE_BYTES
}
fn default_tool_max_dir_entries() -> usize {
    DEFAULT_TOOL_MAX_DIR_ENTRIES
}
fn default_exec_timeout() -> Duration {
    Duration::from_millis(DEFAULT_EXEC_TIMEOUT_MS)
}
fn default_exec_max_output() -> usize {
    DEFAULT_EXEC_MAX_OUTPUT_BYTES
}
fn default_exec_path() -> String {
    DEFAULT_EXEC_PATH.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_unset() {
        let w = WorkerConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(w.worker_port, DEFAULT_WORKER_PORT);
        assert_eq!(w.worker_queues, vec!["chat", "tool"]);
        assert_eq!(
            w.heartbeat_interval_ms,
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
    fn provider_list_is_checked_at_start() {
        let w = WorkerConfig::from_vars(&vars(&[
            ("LLM_PROVIDER", "openai, anthropic,echo"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("LLM_MODEL", "m"),
        ]))
        .expect("valid fallback list");
        assert_eq!(w.llm_provider, vec!["openai", "anthropic", "echo"]);
        for (pairs, var) in [
            (vec![("LLM_PROVIDER", "gemini")], "LLM_PROVIDER"),
            (vec![("LLM_PROVIDER", "echo,echo")], "LLM_PROVIDER"),
            (
                vec![("LLM_PROVIDER", "anthropic"), ("LLM_MODEL", "m")],
                "ANTHROPIC_API_KEY",
            ),
            (
                vec![("LLM_PROVIDER", "openai"), ("LLM_MODEL", "m")],
                "OPENAI_API_KEY",
            ),
            (
                vec![("LLM_PROVIDER", "openai"), ("OPENAI_API_KEY", "k")],
                "LLM_MODEL",
            ),
            (
                vec![("OPENAI_BASE_URL", "api.openai.com")],
                "OPENAI_BASE_URL",
            ),
            (vec![("OPENAI_API_KEY", "")], "OPENAI_API_KEY"),
            (vec![("LLM_RETRY_MAX_MS", "1")], "LLM_RETRY_MAX_MS"),
        ] {
            let e = WorkerConfig::from_vars(&vars(&pairs)).expect_err("invalid");
            assert!(e.to_string().contains(var), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn output_settings_default_and_malformed_ones_are_refused_by_name() {
        let w = WorkerConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(
            w.output_flush_ms,
            Duration::from_millis(DEFAULT_OUTPUT_FLUSH_MS)
        );
        assert_eq!(w.output_flush_bytes, DEFAULT_OUTPUT_FLUSH_BYTES);
        assert_eq!(w.echo_token_delay_ms, Duration::ZERO);
        let w = WorkerConfig::from_vars(&vars(&[
            ("OUTPUT_FLUSH_MS", "20"),
            ("OUTPUT_FLUSH_BYTES", "512"),
            ("ECHO_TOKEN_DELAY_MS", "15"),
        ]))
        .expect("valid");
        assert_eq!(w.output_flush_ms, Duration::from_millis(20));
        assert_eq!(w.output_flush_bytes, 512);
        assert_eq!(w.echo_token_delay_ms, Duration::from_millis(15));
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
    fn tools_need_a_sandbox_and_parse_their_lists() {
        let e = WorkerConfig::from_vars(&vars(&[("ENABLE_FILE_TOOLS", "true")]))
            .expect_err("no sandbox");
        assert!(e.to_string().contains("TOOL_SANDBOX_DIR"), "{e}");
        let w = WorkerConfig::from_vars(&vars(&[
            ("ENABLE_CODE_EXEC", "true"),
            ("TOOL_SANDBOX_DIR", "/tmp/sb"),
            ("WEB_FETCH_ALLOWED_IPS", "10.0.0.7, ::1"),
        ]))
        .expect("valid");
        assert!(w.enable_code_exec && !w.enable_file_tools && !w.enable_web_search);
        assert_eq!(w.web_fetch_allowed_ips.len(), 2);
        let w = WorkerConfig::from_vars(&vars(&[("WEB_FETCH_ALLOWED_IPS", "")])).expect("empty");
        assert!(w.web_fetch_allowed_ips.is_empty());
        let e = WorkerConfig::from_vars(&vars(&[("WEB_FETCH_ALLOWED_IPS", "example.com")]))
            .expect_err("not an address");
        assert!(e.to_string().contains("WEB_FETCH_ALLOWED_IPS"), "{e}");
        check_unknown(&vars(&[
            ("ENABLE_WEB_SEARCH", "true"),
            ("WEB_FETCH_MAX_BYTES", "10"),
            ("EXEC_TIMEOUT_MS", "10"),
            ("OPENAI_API_KEY", "k"),
        ]))
        .expect("known");
        let e = check_unknown(&vars(&[("ENABLE_WEB_FETCH", "true")])).expect_err("typo");
        assert!(e.to_string().contains("ENABLE_WEB_FETCH"), "{e}");
    }

    #[test]
    fn api_keys_are_redacted_in_debug() {
        let w = WorkerConfig::from_vars(&vars(&[
            ("OPENAI_API_KEY", "sk-secret-1"),
            ("ANTHROPIC_API_KEY", "sk-ant-secret-2"),
        ]))
        .expect("valid");
        let shown = format!("{w:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(
            w.openai_api_key.as_ref().map(Secret::expose),
            Some("sk-secret-1")
        );
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let d =
            DispatcherConfig::from_vars(&vars(&[("ROOT_NODE_SECRET", "hunter2")])).expect("valid");
        assert!(!format!("{d:?}").contains("hunter2"));
    }
}
