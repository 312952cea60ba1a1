//! The worker's chat settings: which LLM providers answer, with what keys, models and time
//! bounds, and how long chat sessions are kept.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret, invalid, millis, parse, seconds, split_list};

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
/// `max_tokens` sent to Anthropic for a `/v1` request that names neither `max_completion_tokens`
/// nor `max_tokens`, when `LLM_MAX_TOKENS` is unset: OpenAI's clients expect no cap of their
/// own, so the cap is higher than `/api/chat`'s.
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 4_096;
/// Default `LLM_TIMEOUT_MS`: longest silence of a provider (before or within its answer).
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

/// The worker's chat settings (part of [`WorkerConfig`](super::WorkerConfig)).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    /// `LLM_PROVIDER`: `echo` | `openai` | `anthropic`, or a comma list as a fallback order.
    pub llm_provider: Vec<String>,
    /// `LLM_MODEL`: model used when a chat task names none.
    pub llm_model: String,
    /// `LLM_MODELS`: more model names this worker serves (a comma list), besides its providers'
    /// configured models: listed in its registry record (`GET /v1/models`) and kept as their own
    /// label in the LLM metrics. Default: none.
    pub llm_models: Vec<String>,
    /// `SESSION_MAX_MESSAGES`: messages kept per chat session.
    pub session_max_messages: usize,
    /// `SESSION_TTL_S`: a session expires this long after its last turn, in seconds.
    #[serde(rename = "session_ttl_s", with = "seconds")]
    pub session_ttl: Duration,
    /// `OPENAI_API_KEY`: bearer token of the `openai` provider; optional for servers that need
    /// none (Ollama, vLLM).
    pub openai_api_key: Option<Secret>,
    /// `OPENAI_BASE_URL`: any OpenAI-compatible API root; `/chat/completions` is appended.
    pub openai_base_url: String,
    /// `OPENAI_MODEL`: model of the `openai` provider when a task names none; `LLM_MODEL` if unset.
    pub openai_model: Option<String>,
    /// `ANTHROPIC_API_KEY`: key of the `anthropic` provider (required when it is used).
    pub anthropic_api_key: Option<Secret>,
    /// `ANTHROPIC_BASE_URL`: API root; `/v1/messages` is appended.
    pub anthropic_base_url: String,
    /// `ANTHROPIC_MODEL`: model of the `anthropic` provider when a task names none; `LLM_MODEL`
    /// if unset.
    pub anthropic_model: Option<String>,
    /// `LLM_MAX_TOKENS`: most tokens an answer may have; unset: the provider's default
    /// (Anthropic, which needs a value, gets 1024).
    pub llm_max_tokens: Option<u32>,
    /// `LLM_TIMEOUT_MS`: longest silence of a provider: waiting for its answer to start, or
    /// between two reads of a streamed answer (the task timeout bounds the whole answer).
    #[serde(rename = "llm_timeout_ms", with = "millis")]
    pub llm_timeout: Duration,
    /// `LLM_CONNECT_TIMEOUT_MS`: bound of connecting to a provider.
    #[serde(rename = "llm_connect_timeout_ms", with = "millis")]
    pub llm_connect_timeout: Duration,
    /// `LLM_MAX_RETRIES`: retries of one provider on 429, 5xx, timeouts and connection errors
    /// before the next provider of `LLM_PROVIDER` is tried.
    pub llm_max_retries: usize,
    /// `LLM_RETRY_BASE_MS`: first backoff between provider retries; doubles each retry.
    #[serde(rename = "llm_retry_base_ms", with = "millis")]
    pub llm_retry_base: Duration,
    /// `LLM_RETRY_MAX_MS`: longest wait between provider retries; caps `Retry-After` too.
    #[serde(rename = "llm_retry_max_ms", with = "millis")]
    pub llm_retry_max: Duration,
    /// `ECHO_TOKEN_DELAY_MS`: pause between the words the `echo` provider streams, so a demo or
    /// a test can watch an answer arrive.
    #[serde(rename = "echo_token_delay_ms", with = "millis")]
    pub echo_token_delay: Duration,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            llm_provider: split_list(DEFAULT_LLM_PROVIDER),
            llm_model: DEFAULT_LLM_MODEL.to_owned(),
            llm_models: Vec::new(),
            session_max_messages: DEFAULT_SESSION_MAX_MESSAGES,
            session_ttl: Duration::from_secs(DEFAULT_SESSION_TTL_S),
            openai_api_key: None,
            openai_base_url: DEFAULT_OPENAI_BASE_URL.to_owned(),
            openai_model: None,
            anthropic_api_key: None,
            anthropic_base_url: DEFAULT_ANTHROPIC_BASE_URL.to_owned(),
            anthropic_model: None,
            llm_max_tokens: None,
            llm_timeout: Duration::from_millis(DEFAULT_LLM_TIMEOUT_MS),
            llm_connect_timeout: Duration::from_millis(DEFAULT_LLM_CONNECT_TIMEOUT_MS),
            llm_max_retries: DEFAULT_LLM_MAX_RETRIES,
            llm_retry_base: Duration::from_millis(DEFAULT_LLM_RETRY_BASE_MS),
            llm_retry_max: Duration::from_millis(DEFAULT_LLM_RETRY_MAX_MS),
            echo_token_delay: Duration::from_millis(DEFAULT_ECHO_TOKEN_DELAY_MS),
        }
    }
}

impl LlmConfig {
    /// Reads the chat variables from `vars`, unchecked:
    /// [`WorkerConfig::from_vars`](super::WorkerConfig::from_vars) checks them after its own.
    pub(super) fn parse(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut c: Self = parse(vars)?;
        // `openai, anthropic` is as good as `openai,anthropic`.
        for name in &mut c.llm_provider {
            *name = name.trim().to_owned();
        }
        c.llm_models = c
            .llm_models
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        Ok(c)
    }

    /// The models this worker serves, each once, in order: each configured provider's model
    /// (`{PROVIDER}_MODEL`, else `LLM_MODEL`), then `LLM_MODELS`. The registry lists them; the
    /// LLM metrics label only these (a client's other model names count as `other`).
    pub fn served_models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let own = self.llm_provider.iter().map(|p| match p.as_str() {
            "openai" => self.openai_model.as_ref().unwrap_or(&self.llm_model),
            "anthropic" => self.anthropic_model.as_ref().unwrap_or(&self.llm_model),
            _ => &self.llm_model,
        });
        for m in own.chain(&self.llm_models) {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// The chat variables: known providers, keys and models for the ones named, sane timeouts.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.check_provider_names()?;
        self.check_endpoints()?;
        self.check_models()?;
        self.check_limits()
    }

    /// `LLM_PROVIDER`: a non-empty list of known providers, none twice.
    fn check_provider_names(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// Keys and base URLs: well-formed when set, present for the providers that need them.
    fn check_endpoints(&self) -> Result<(), ConfigError> {
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
        if self.uses("anthropic") && self.anthropic_api_key.is_none() {
            return Err(invalid(
                "ANTHROPIC_API_KEY",
                "is required when LLM_PROVIDER names anthropic",
            ));
        }
        // Self-hosted compatible servers need no key; OpenAI itself always does.
        if self.uses("openai")
            && self.openai_api_key.is_none()
            && self.openai_base_url == DEFAULT_OPENAI_BASE_URL
        {
            return Err(invalid(
                "OPENAI_API_KEY",
                "is required when LLM_PROVIDER names openai with the default OPENAI_BASE_URL",
            ));
        }
        Ok(())
    }

    /// The echo model name sent to a real API fails every task; refuse it at start instead.
    fn check_models(&self) -> Result<(), ConfigError> {
        for (p, model, var) in [
            ("openai", &self.openai_model, "OPENAI_MODEL"),
            ("anthropic", &self.anthropic_model, "ANTHROPIC_MODEL"),
        ] {
            if self.uses(p) && model.is_none() && self.llm_model == DEFAULT_LLM_MODEL {
                return Err(ConfigError::Invalid {
                    var: "LLM_MODEL",
                    message: format!(
                        "is {DEFAULT_LLM_MODEL:?} (the echo model) but LLM_PROVIDER names {p}; set LLM_MODEL or {var}"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Timeouts above zero, retry backoff ordered, a token limit above zero.
    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.llm_timeout.is_zero() {
            return Err(invalid("LLM_TIMEOUT_MS", "must be above 0"));
        }
        if self.llm_connect_timeout.is_zero() {
            return Err(invalid("LLM_CONNECT_TIMEOUT_MS", "must be above 0"));
        }
        if self.llm_retry_max < self.llm_retry_base {
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

    /// Whether `LLM_PROVIDER` names `provider`.
    fn uses(&self, provider: &str) -> bool {
        self.llm_provider.iter().any(|n| n == provider)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{WorkerConfig, vars};
    use super::*;

    #[test]
    fn defaults_and_durations_are_read_in_their_units() {
        let l = WorkerConfig::from_vars(&[])
            .expect("defaults are valid")
            .llm;
        assert_eq!(l.llm_provider, vec!["echo"]);
        assert_eq!(l.llm_model, "echo-1");
        assert_eq!(l.session_max_messages, 50);
        assert_eq!(l.session_ttl, Duration::from_secs(86_400));
        assert_eq!(l.openai_base_url, "https://api.openai.com/v1");
        assert_eq!(l.anthropic_base_url, "https://api.anthropic.com");
        assert_eq!(l.llm_max_tokens, None);
        assert_eq!(l.llm_timeout, Duration::from_secs(60));
        assert_eq!(l.llm_connect_timeout, Duration::from_secs(5));
        assert_eq!(l.llm_max_retries, 2);
        assert_eq!(l.llm_retry_base, Duration::from_millis(500));
        assert_eq!(l.llm_retry_max, Duration::from_secs(20));
        let l = WorkerConfig::from_vars(&vars(&[
            ("SESSION_TTL_S", "7"),
            ("LLM_TIMEOUT_MS", "1"),
            ("LLM_CONNECT_TIMEOUT_MS", "2"),
            ("LLM_RETRY_BASE_MS", "3"),
            ("LLM_RETRY_MAX_MS", "4"),
        ]))
        .expect("valid")
        .llm;
        assert_eq!(l.session_ttl, Duration::from_secs(7));
        assert_eq!(l.llm_timeout, Duration::from_millis(1));
        assert_eq!(l.llm_connect_timeout, Duration::from_millis(2));
        assert_eq!(l.llm_retry_base, Duration::from_millis(3));
        assert_eq!(l.llm_retry_max, Duration::from_millis(4));
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
        assert_eq!(w.llm.llm_provider, vec!["openai", "anthropic", "echo"]);
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
    fn served_models_are_the_providers_models_and_llm_models_once_each() {
        let l = WorkerConfig::from_vars(&[]).expect("defaults").llm;
        assert_eq!(l.served_models(), vec!["echo-1"]);
        let l = WorkerConfig::from_vars(&vars(&[
            ("LLM_PROVIDER", "openai,anthropic,echo"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("ANTHROPIC_API_KEY", "k"),
            ("LLM_MODEL", "base"),
            ("OPENAI_MODEL", "gpt-x"),
            ("LLM_MODELS", " gpt-y, base ,,claude-z"),
        ]))
        .expect("valid")
        .llm;
        assert_eq!(l.llm_models, vec!["gpt-y", "base", "claude-z"]);
        assert_eq!(
            l.served_models(),
            vec!["gpt-x", "base", "gpt-y", "claude-z"]
        );
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
            w.llm.openai_api_key.as_ref().map(Secret::expose),
            Some("sk-secret-1")
        );
    }
}
