//! The dispatcher's own settings: where it listens, what it accepts, how long it waits.

use std::time::Duration;

use serde::Deserialize;

use super::routes::ModelRoutes;
use super::{ConfigError, check_queues, invalid, millis, parse, seconds, split_list};
use crate::lane::Priority;

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
/// Default `RESUME_GRACE_MS`.
pub const DEFAULT_RESUME_GRACE_MS: u64 = 2_000;
/// Default `STREAM_KEEPALIVE_MS`: under the idle timeout of common proxies (30-60 s).
pub const DEFAULT_STREAM_KEEPALIVE_MS: u64 = 15_000;
/// Default `STREAM_BUFFER`.
pub const DEFAULT_STREAM_BUFFER: usize = 64;
/// Default `TENANT_CACHE_MS`: how long a dispatcher trusts what it read about an API key.
pub const DEFAULT_TENANT_CACHE_MS: u64 = 5_000;
/// Default `UI_SESSION_TTL_S`: how long a web console login lasts (8 hours).
pub const DEFAULT_UI_SESSION_TTL_S: u64 = 28_800;
/// Longest `UI_SESSION_TTL_S` (7 days).
pub const MAX_UI_SESSION_TTL_S: u64 = 604_800;
/// Longest `TENANT_CACHE_MS`: a revoked key must stop working within a bounded time.
pub const MAX_TENANT_CACHE_MS: u64 = 60_000;

/// The dispatcher's own settings.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct DispatcherConfig {
    /// `DISPATCHER_ADDR`: where the HTTP API listens.
    pub dispatcher_addr: String,
    /// `ROOT_NODE_SECRET`: bearer token of `/api/*`. Unset: only a loopback address may be bound.
    pub root_node_secret: Option<String>,
    /// `QUEUES`: queues tasks may be enqueued on (comma-separated).
    pub queues: Vec<String>,
    /// `MAX_BODY_BYTES`: larger request bodies are answered 413.
    pub max_body_bytes: usize,
    /// `MAX_QUEUE_DEPTH`: enqueue answers 429 when a stream holds this many entries; 0 = no limit.
    pub max_queue_depth: u64,
    /// `MAX_WAIT_MS`: upper bound of `?wait_ms=`.
    #[serde(rename = "max_wait_ms", with = "millis")]
    pub max_wait: Duration,
    /// `WORKER_TIMEOUT_MS`: default task timeout, and how long `/api/chat` waits.
    #[serde(rename = "worker_timeout_ms", with = "millis")]
    pub worker_timeout: Duration,
    /// `PROMOTE_INTERVAL_MS`: period of the delayed-task promoter.
    #[serde(rename = "promote_interval_ms", with = "millis")]
    pub promote_interval: Duration,
    /// `IDEMPOTENCY_TTL_S`: lifetime of an idempotency key, in seconds.
    #[serde(rename = "idempotency_ttl_s", with = "seconds")]
    pub idempotency_ttl: Duration,
    /// `RESUME_GRACE_MS`: how long a disconnected streaming chat client has to resume the
    /// task's stream before the task is cancelled; 0 cancels at once.
    #[serde(rename = "resume_grace_ms", with = "millis")]
    pub resume_grace: Duration,
    /// `STREAM_KEEPALIVE_MS`: an idle SSE stream gets a comment line this often.
    #[serde(rename = "stream_keepalive_ms", with = "millis")]
    pub stream_keepalive: Duration,
    /// `STREAM_BUFFER`: output reads queued per SSE client before a slow one is dropped from
    /// the fan-out (it then catches up from Redis by its last entry id).
    pub stream_buffer: usize,
    /// `MODEL_ROUTES`: the queue of a chat task by its model (`gpt-*=chat-openai,*=chat`, first
    /// match wins); unset: every model goes to `chat`.
    pub model_routes: ModelRoutes,
    /// `TENANT_CACHE_MS`: how long a dispatcher keeps what it read about a tenant API key (the
    /// tenant, or that the key is unknown) before asking Redis again; so a revoked or changed
    /// key takes effect on every other dispatcher within this time (at once on the one that
    /// revoked it). 0 asks Redis on every request; at most 60 000.
    #[serde(rename = "tenant_cache_ms", with = "millis")]
    pub tenant_cache: Duration,
    /// `UI_SESSION_TTL_S`: how long a login to the web console (`/ui`) lasts, in seconds; the
    /// session then ends and the browser is sent back to the login page. 1 to 604 800.
    #[serde(rename = "ui_session_ttl_s", with = "seconds")]
    pub ui_session_ttl: Duration,
    /// `CHAT_PRIORITY`: the priority of `/api/chat` and `/v1` tasks (`high`, `normal`, `low`).
    pub chat_priority: String,
    /// `TASK_PRIORITY`: the priority of `/api/tasks` tasks that name none.
    pub task_priority: String,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            dispatcher_addr: DEFAULT_DISPATCHER_ADDR.to_owned(),
            root_node_secret: None,
            queues: split_list(DEFAULT_QUEUES),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_queue_depth: 0,
            max_wait: Duration::from_millis(DEFAULT_MAX_WAIT_MS),
            worker_timeout: Duration::from_millis(DEFAULT_WORKER_TIMEOUT_MS),
            promote_interval: Duration::from_millis(DEFAULT_PROMOTE_INTERVAL_MS),
            idempotency_ttl: Duration::from_secs(DEFAULT_IDEMPOTENCY_TTL_S),
            resume_grace: Duration::from_millis(DEFAULT_RESUME_GRACE_MS),
            stream_keepalive: Duration::from_millis(DEFAULT_STREAM_KEEPALIVE_MS),
            stream_buffer: DEFAULT_STREAM_BUFFER,
            model_routes: ModelRoutes::default(),
            tenant_cache: Duration::from_millis(DEFAULT_TENANT_CACHE_MS),
            ui_session_ttl: Duration::from_secs(DEFAULT_UI_SESSION_TTL_S),
            chat_priority: Priority::High.as_str().to_owned(),
            task_priority: Priority::Normal.as_str().to_owned(),
        }
    }
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
            .field("max_wait", &self.max_wait)
            .field("worker_timeout", &self.worker_timeout)
            .field("promote_interval", &self.promote_interval)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("resume_grace", &self.resume_grace)
            .field("stream_keepalive", &self.stream_keepalive)
            .field("stream_buffer", &self.stream_buffer)
            .field("model_routes", &self.model_routes)
            .field("tenant_cache", &self.tenant_cache)
            .field("ui_session_ttl", &self.ui_session_ttl)
            .field("chat_priority", &self.chat_priority)
            .field("task_priority", &self.task_priority)
            .finish()
    }
}

impl DispatcherConfig {
    /// `CHAT_PRIORITY`, checked at start.
    pub fn chat_priority(&self) -> Priority {
        Priority::parse(&self.chat_priority).unwrap_or(Priority::High)
    }

    /// `TASK_PRIORITY`, checked at start.
    pub fn task_priority(&self) -> Priority {
        Priority::parse(&self.task_priority).unwrap_or(Priority::Normal)
    }

    /// Reads the dispatcher's variables from `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let c: Self = parse(vars)?;
        check_queues("QUEUES", &c.queues)?;
        if c.max_body_bytes == 0 {
            return Err(invalid("MAX_BODY_BYTES", "must be above 0"));
        }
        if c.stream_keepalive.is_zero() {
            return Err(invalid("STREAM_KEEPALIVE_MS", "must be above 0"));
        }
        if c.stream_buffer == 0 {
            return Err(invalid("STREAM_BUFFER", "must be at least 1"));
        }
        if let Some(r) = c
            .model_routes
            .routes()
            .iter()
            .find(|r| !c.queues.contains(&r.queue))
        {
            return Err(invalid(
                "MODEL_ROUTES",
                &format!(
                    "{}={} routes to queue {:?}, which QUEUES ({}) does not list",
                    r.pattern,
                    r.queue,
                    r.queue,
                    c.queues.join(",")
                ),
            ));
        }
        if c.tenant_cache > Duration::from_millis(MAX_TENANT_CACHE_MS) {
            return Err(invalid(
                "TENANT_CACHE_MS",
                &format!("must be at most {MAX_TENANT_CACHE_MS}"),
            ));
        }
        if c.ui_session_ttl.is_zero() || c.ui_session_ttl.as_secs() > MAX_UI_SESSION_TTL_S {
            return Err(invalid(
                "UI_SESSION_TTL_S",
                &format!("must be from 1 to {MAX_UI_SESSION_TTL_S} seconds"),
            ));
        }
        for (var, value) in [
            ("CHAT_PRIORITY", &c.chat_priority),
            ("TASK_PRIORITY", &c.task_priority),
        ] {
            if Priority::parse(value).is_none() {
                return Err(invalid(var, "must be high, normal or low"));
            }
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

#[cfg(test)]
mod tests {
    use super::super::vars;
    use super::*;

    #[test]
    fn defaults_and_durations_are_read_in_their_units() {
        let d = DispatcherConfig::from_vars(&[]).expect("defaults are valid");
        assert_eq!(d.dispatcher_addr, "0.0.0.0:3000");
        assert_eq!(d.queues, vec!["chat", "tool"]);
        assert_eq!(d.max_queue_depth, 0);
        assert_eq!(d.max_wait, Duration::from_secs(300));
        assert_eq!(d.worker_timeout, Duration::from_secs(120));
        assert_eq!(d.promote_interval, Duration::from_millis(200));
        assert_eq!(d.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(d.resume_grace, Duration::from_secs(2));
        assert_eq!(d.stream_keepalive, Duration::from_secs(15));
        assert_eq!(d.stream_buffer, 64);
        assert_eq!(d.tenant_cache, Duration::from_secs(5));
        assert!(DispatcherConfig::from_vars(&vars(&[("TENANT_CACHE_MS", "60001")])).is_err());
        assert_eq!(d.ui_session_ttl, Duration::from_secs(28_800));
        for bad in ["0", "604801", "1h", "-1"] {
            let e = DispatcherConfig::from_vars(&vars(&[("UI_SESSION_TTL_S", bad)]))
                .expect_err("refused");
            assert!(e.to_string().contains("UI_SESSION_TTL_S"), "{bad}: {e}");
        }
        let d = DispatcherConfig::from_vars(&vars(&[
            ("MAX_WAIT_MS", "1"),
            ("WORKER_TIMEOUT_MS", "2"),
            ("PROMOTE_INTERVAL_MS", "3"),
            ("IDEMPOTENCY_TTL_S", "4"),
            ("RESUME_GRACE_MS", "0"),
            ("STREAM_KEEPALIVE_MS", "5"),
        ]))
        .expect("valid");
        assert_eq!(d.max_wait, Duration::from_millis(1));
        assert_eq!(d.worker_timeout, Duration::from_millis(2));
        assert_eq!(d.promote_interval, Duration::from_millis(3));
        assert_eq!(d.idempotency_ttl, Duration::from_secs(4));
        assert_eq!(d.resume_grace, Duration::ZERO);
        assert_eq!(d.stream_keepalive, Duration::from_millis(5));
    }

    #[test]
    fn model_routes_are_read_and_checked_against_queues() {
        let d = DispatcherConfig::from_vars(&vars(&[
            ("QUEUES", "chat,chat-openai,tool"),
            ("MODEL_ROUTES", "gpt-*=chat-openai,*=chat"),
        ]))
        .expect("valid");
        assert_eq!(d.model_routes.queue_for("gpt-4o"), Some("chat-openai"));
        assert_eq!(d.model_routes.queue_for("x"), Some("chat"));
        for (routes, part) in [
            ("gpt-*=chat-openai", "QUEUES"),
            ("gpt-*", "pattern=queue"),
            ("*=chat,gpt-*=chat", "never used"),
        ] {
            let e = DispatcherConfig::from_vars(&vars(&[("MODEL_ROUTES", routes)]))
                .expect_err(routes)
                .to_string();
            assert!(
                e.contains("MODEL_ROUTES") && e.contains(part),
                "{routes}: {e}"
            );
        }
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let d =
            DispatcherConfig::from_vars(&vars(&[("ROOT_NODE_SECRET", "hunter2")])).expect("valid");
        assert!(!format!("{d:?}").contains("hunter2"));
    }
}
