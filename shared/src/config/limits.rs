//! The worker's provider limits: requests and tokens per window (a minute by default) for each
//! remote provider, and per-model overrides, enforced by all workers together through Redis
//! (the worker's `limiter`).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid, millis, parse};

/// Largest value of any rate limit: above it the setting is surely a typo.
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// Default `LLM_LIMIT_WINDOW_MS`: the window the `*_RPM` and `*_TPM` limits count over.
pub const DEFAULT_LLM_LIMIT_WINDOW_MS: u64 = 60_000;
/// Shortest `LLM_LIMIT_WINDOW_MS` (tests shorten the window to measure several of them).
pub const MIN_LLM_LIMIT_WINDOW_MS: u64 = 1_000;
/// Longest `LLM_LIMIT_WINDOW_MS` (one hour).
pub const MAX_LLM_LIMIT_WINDOW_MS: u64 = 3_600_000;

/// Requests and tokens allowed per window; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window.
    pub requests: Option<u64>,
    /// Tokens (prompt + completion) per window.
    pub tokens: Option<u64>,
}

impl Rate {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }
}

/// One `LLM_MODEL_LIMITS` entry: a model with a budget of its own instead of its provider's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLimit {
    /// The model name, as tasks and providers name it.
    pub model: String,
    /// Its own limits.
    pub rate: Rate,
}

/// The provider limits (part of [`WorkerConfig`](super::WorkerConfig)).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// `OPENAI_RPM`: requests per window to the `openai` provider, all workers together.
    pub openai_rpm: Option<u64>,
    /// `OPENAI_TPM`: tokens (prompt + completion) per window to the `openai` provider.
    pub openai_tpm: Option<u64>,
    /// `ANTHROPIC_RPM`: requests per window to the `anthropic` provider.
    pub anthropic_rpm: Option<u64>,
    /// `ANTHROPIC_TPM`: tokens per window to the `anthropic` provider.
    pub anthropic_tpm: Option<u64>,
    /// `LLM_MODEL_LIMITS`: comma list of `model=RPM/TPM` (`-` for no limit on that side): such a
    /// model gets a budget of its own instead of sharing its provider's.
    #[serde(rename = "llm_model_limits")]
    pub llm_model_limits_raw: Vec<String>,
    /// `LLM_LIMIT_WINDOW_MS`: the window the limits count over (default a minute, 1000–3600000).
    #[serde(rename = "llm_limit_window_ms", with = "millis")]
    pub llm_limit_window: Duration,
    /// The parsed `LLM_MODEL_LIMITS`.
    #[serde(skip)]
    pub model_limits: Vec<ModelLimit>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            openai_rpm: None,
            openai_tpm: None,
            anthropic_rpm: None,
            anthropic_tpm: None,
            llm_model_limits_raw: Vec::new(),
            llm_limit_window: Duration::from_millis(DEFAULT_LLM_LIMIT_WINDOW_MS),
            model_limits: Vec::new(),
        }
    }
}

impl LimitsConfig {
    /// Reads and checks the limit variables from `vars`.
    pub(super) fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut c: Self = parse(vars)?;
        for (var, value) in [
            ("OPENAI_RPM", c.openai_rpm),
            ("OPENAI_TPM", c.openai_tpm),
            ("ANTHROPIC_RPM", c.anthropic_rpm),
            ("ANTHROPIC_TPM", c.anthropic_tpm),
        ] {
            check_limit(var, value)?;
        }
        let window = c.llm_limit_window.as_millis();
        if window < u128::from(MIN_LLM_LIMIT_WINDOW_MS)
            || window > u128::from(MAX_LLM_LIMIT_WINDOW_MS)
        {
            return Err(invalid("LLM_LIMIT_WINDOW_MS", "must be 1000–3600000"));
        }
        c.model_limits = parse_model_limits(&c.llm_model_limits_raw)?;
        Ok(c)
    }

    /// The limits of `provider` (`openai`, `anthropic`); none for any other.
    pub fn provider(&self, provider: &str) -> Rate {
        match provider {
            "openai" => Rate {
                requests: self.openai_rpm,
                tokens: self.openai_tpm,
            },
            "anthropic" => Rate {
                requests: self.anthropic_rpm,
                tokens: self.anthropic_tpm,
            },
            _ => Rate::default(),
        }
    }

    /// The override of `model`, if `LLM_MODEL_LIMITS` lists it.
    pub fn model(&self, model: &str) -> Option<Rate> {
        self.model_limits
            .iter()
            .find(|m| m.model == model)
            .map(|m| m.rate)
    }
}

fn check_limit(var: &'static str, value: Option<u64>) -> Result<(), ConfigError> {
    match value {
        Some(0) => Err(invalid(var, "must be at least 1 (unset it for no limit)")),
        Some(v) if v > MAX_LIMIT => Err(invalid(var, "must be at most 1000000000")),
        _ => Ok(()),
    }
}

/// `model=RPM/TPM,…`: each side a number from 1 to [`MAX_LIMIT`] or `-`.
fn parse_model_limits(raw: &[String]) -> Result<Vec<ModelLimit>, ConfigError> {
    const VAR: &str = "LLM_MODEL_LIMITS";
    let bad = |entry: &str, why: &str| ConfigError::Invalid {
        var: VAR,
        message: format!("entry {entry:?}: {why}; write model=RPM/TPM, `-` for no limit"),
    };
    let mut out: Vec<ModelLimit> = Vec::new();
    for entry in raw.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (model, rates) = entry.rsplit_once('=').ok_or_else(|| bad(entry, "no `=`"))?;
        let model = model.trim();
        if model.is_empty() {
            return Err(bad(entry, "no model name"));
        }
        let (rpm, tpm) = rates
            .split_once('/')
            .ok_or_else(|| bad(entry, "no `/` between RPM and TPM"))?;
        let side = |s: &str| -> Result<Option<u64>, ConfigError> {
            match s.trim() {
                "-" => Ok(None),
                n => match n.parse::<u64>() {
                    Ok(v) if (1..=MAX_LIMIT).contains(&v) => Ok(Some(v)),
                    _ => Err(bad(entry, "each limit must be 1–1000000000 or `-`")),
                },
            }
        };
        let rate = Rate {
            requests: side(rpm)?,
            tokens: side(tpm)?,
        };
        if !rate.is_limited() {
            return Err(bad(entry, "sets no limit"));
        }
        if out.iter().any(|m| m.model == model) {
            return Err(bad(entry, "names the model twice"));
        }
        out.push(ModelLimit {
            model: model.to_owned(),
            rate,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{WorkerConfig, vars};
    use super::*;

    #[test]
    fn limits_are_read_with_their_overrides() {
        let l = WorkerConfig::from_vars(&[]).expect("defaults").limits;
        assert_eq!(l.provider("openai"), Rate::default());
        assert_eq!(l.llm_limit_window, Duration::from_secs(60));
        let l = WorkerConfig::from_vars(&vars(&[
            ("OPENAI_RPM", "500"),
            ("OPENAI_TPM", "30000"),
            ("ANTHROPIC_TPM", "40000"),
            ("LLM_LIMIT_WINDOW_MS", "5000"),
            (
                "LLM_MODEL_LIMITS",
                "gpt-4o-mini=100/-, meta-llama/Llama-3-8b=-/9000",
            ),
        ]))
        .expect("valid")
        .limits;
        assert_eq!(
            l.provider("openai"),
            Rate {
                requests: Some(500),
                tokens: Some(30_000)
            }
        );
        assert_eq!(l.provider("anthropic").tokens, Some(40_000));
        assert_eq!(l.provider("echo"), Rate::default());
        assert_eq!(l.llm_limit_window, Duration::from_secs(5));
        assert_eq!(
            l.model("gpt-4o-mini"),
            Some(Rate {
                requests: Some(100),
                tokens: None
            })
        );
        assert_eq!(
            l.model("meta-llama/Llama-3-8b").and_then(|r| r.tokens),
            Some(9000)
        );
        assert_eq!(l.model("gpt-4o"), None);
    }

    #[test]
    fn zero_negative_and_absurd_limits_name_the_setting() {
        for (var, value) in [
            ("OPENAI_RPM", "0"),
            ("OPENAI_TPM", "-5"),
            ("ANTHROPIC_RPM", "lots"),
            ("ANTHROPIC_TPM", "1000000001"),
            ("LLM_LIMIT_WINDOW_MS", "0"),
            ("LLM_LIMIT_WINDOW_MS", "999999999"),
            ("LLM_MODEL_LIMITS", "gpt=0/5"),
            ("LLM_MODEL_LIMITS", "gpt=-/-"),
            ("LLM_MODEL_LIMITS", "gpt=5"),
            ("LLM_MODEL_LIMITS", "=5/5"),
            ("LLM_MODEL_LIMITS", "gpt=5/5,gpt=6/6"),
            ("LLM_MODEL_LIMITS", "gpt=5/99999999999"),
        ] {
            let e = WorkerConfig::from_vars(&vars(&[(var, value)])).expect_err(value);
            assert!(e.to_string().contains(var), "{var}={value}: {e}");
        }
    }
}
