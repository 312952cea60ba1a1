//! Chat (LLM) providers behind one small trait, [`Backend`]: a [`ChatRequest`] in (an `/api/chat`
//! conversation, or a `/v1` client's chat-completions body), the answer's text and tool-call
//! pieces streamed to a [`Sink`] as they arrive, the whole answer with its tool calls, finish
//! reason and token usage out. `echo` is built in, deterministic and offline (the default);
//! `openai` speaks any OpenAI-compatible chat completions API; `anthropic` the messages API.
//! [`Provider`] is the configured `LLM_PROVIDER` list: each backend retries its own
//! 429/5xx/timeouts, and when it is still unavailable the next one in the list is asked, as long
//! as none of the attempt's answer went out. A failure after that ends the attempt as a retryable
//! failure.
//!
//! # Layout
//! - [`echo`], [`openai`], [`anthropic`]: one backend each.
//! - [`http`]: the client, the SSE reading, retries with `Retry-After`, error messages without
//!   the key.
//! - [`answer`]: a remote answer as it is read (text, tool calls by index, usage, finish reason).
//! - [`sink`]: where answer pieces go as they arrive.

pub mod answer;
pub mod anthropic;
pub mod echo;
pub mod http;
pub mod openai;
pub mod sink;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use switchyard_shared::completion::{self, CompletionBody, ToolCall};
use switchyard_shared::config::WorkerConfig;
use switchyard_shared::task::ChatMessage;
use tracing::warn;

pub use anthropic::Anthropic;
pub use echo::Echo;
pub use openai::OpenAi;
pub use sink::{Deltas, Piece, Sink};

/// What a chat task asks a provider.
#[derive(Debug, Clone)]
pub enum ChatRequest {
    /// `/api/chat`: a conversation built from the payload and the session history.
    Conversation(Conversation),
    /// `/v1/chat/completions`: the client's body (validated by
    /// [`completion::validate`]), sent on as it is to OpenAI-compatible providers and
    /// translated for Anthropic.
    Completion(CompletionBody),
}

/// A conversation to answer (`/api/chat`).
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Model the task asked for; the first provider's configured model when absent.
    pub model: Option<String>,
    /// Optional system prompt.
    pub system: Option<String>,
    /// History and the new user message, oldest first.
    pub messages: Vec<ChatMessage>,
}

impl ChatRequest {
    /// The model the task asked for, if it named one.
    pub fn model(&self) -> Option<&str> {
        match self {
            Self::Conversation(c) => c.model.as_deref(),
            Self::Completion(body) => completion::model(body),
        }
    }
}

impl From<Conversation> for ChatRequest {
    fn from(c: Conversation) -> Self {
        Self::Conversation(c)
    }
}

/// Token counts of one call (zero when a compatible server reports none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens sent.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    /// The assistant's text.
    pub text: String,
    /// Model that answered.
    pub model: String,
    /// Provider that answered.
    pub provider: &'static str,
    /// Tokens used.
    pub usage: Usage,
    /// Why the answer ended, in OpenAI's words (`stop`, `length`, `tool_calls`, …), when the
    /// provider said.
    pub finish_reason: Option<String>,
    /// The tool calls the model asked for, whole.
    pub tool_calls: Vec<ToolCall>,
}

/// A failed provider call. Messages carry the provider's own words, never the API key.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Rate limited, a server error, a timeout or no connection, after the provider's retries.
    #[error("{provider}: {message}")]
    Retryable {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
    /// The request itself was refused (4xx other than 429) or the answer is unreadable: fails
    /// the same way every time.
    #[error("{provider}: {message}")]
    Permanent {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
    /// Every provider of the fallback list failed, at least one of them transiently.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; then "))]
    Exhausted(Vec<ProviderError>),
}

impl ProviderError {
    /// Whether a later attempt of the task may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Permanent { .. })
    }

    /// The failure as it ends an attempt whose text already went out: retryable, since a new
    /// attempt starts the answer over (a refusal mid-answer is the provider's hiccup, not a bad
    /// request).
    fn after_first_token(self) -> Self {
        match self {
            Self::Permanent { provider, message } => Self::Retryable { provider, message },
            other => other,
        }
    }
}

/// Why the configured providers could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `LLM_PROVIDER` names a provider this build lacks (the config check normally stops this).
    #[error("configuration: LLM_PROVIDER: unknown provider {0:?}")]
    Unknown(String),
    /// An API key that cannot be sent in a header.
    #[error("configuration: {0}: holds characters an HTTP header cannot carry")]
    BadKey(&'static str),
    /// The HTTP client (TLS set-up) could not be built.
    #[error("cannot build the provider HTTP client: {0}")]
    Client(reqwest::Error),
}

/// What every chat provider does.
pub trait Backend {
    /// Name recorded in results and logs.
    fn name(&self) -> &'static str;
    /// Model used when the task names none (`{PROVIDER}_MODEL`, else `LLM_MODEL`).
    fn default_model(&self) -> &str;
    /// Answers `req` with `model`, handing each piece of the answer to `sink` as it arrives,
    /// after this provider's own retries (only while nothing went out).
    fn complete(
        &self,
        model: &str,
        req: &ChatRequest,
        sink: &Sink,
    ) -> impl Future<Output = Result<ChatResponse, ProviderError>> + Send;
}

/// One configured backend.
#[derive(Debug, Clone)]
pub enum AnyBackend {
    /// Built-in echo.
    Echo(Echo),
    /// OpenAI-compatible chat completions.
    OpenAi(OpenAi),
    /// Anthropic messages.
    Anthropic(Anthropic),
}

impl AnyBackend {
    fn name(&self) -> &'static str {
        match self {
            Self::Echo(b) => b.name(),
            Self::OpenAi(b) => b.name(),
            Self::Anthropic(b) => b.name(),
        }
    }

    fn default_model(&self) -> &str {
        match self {
            Self::Echo(b) => b.default_model(),
            Self::OpenAi(b) => b.default_model(),
            Self::Anthropic(b) => b.default_model(),
        }
    }

    async fn complete(
        &self,
        model: &str,
        req: &ChatRequest,
        sink: &Sink,
    ) -> Result<ChatResponse, ProviderError> {
        match self {
            Self::Echo(b) => b.complete(model, req, sink).await,
            Self::OpenAi(b) => b.complete(model, req, sink).await,
            Self::Anthropic(b) => b.complete(model, req, sink).await,
        }
    }
}

/// The configured providers in fallback order (`LLM_PROVIDER`); cheap to clone.
#[derive(Debug, Clone)]
pub struct Provider {
    chain: Arc<[AnyBackend]>,
}

impl Provider {
    /// Builds the providers `LLM_PROVIDER` names, in its order.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, SetupError> {
        let mut chain = Vec::new();
        for name in &cfg.llm.llm_provider {
            chain.push(match name.as_str() {
                "echo" => AnyBackend::Echo(Echo::from_config(cfg)),
                "openai" => AnyBackend::OpenAi(OpenAi::from_config(cfg)?),
                "anthropic" => AnyBackend::Anthropic(Anthropic::from_config(cfg)?),
                other => return Err(SetupError::Unknown(other.to_owned())),
            });
        }
        if chain.is_empty() {
            chain.push(AnyBackend::Echo(Echo::from_config(cfg)));
        }
        let remote = chain
            .iter()
            .filter(|b| !matches!(b, AnyBackend::Echo(_)))
            .count();
        let budget = cfg
            .llm
            .llm_timeout
            .saturating_mul(cfg.llm.llm_max_retries as u32 + 1);
        if chain.len() > 1 && remote > 0 && budget >= cfg.worker_timeout {
            warn!(
                llm_timeout_ms = cfg.llm.llm_timeout.as_millis() as u64,
                llm_max_retries = cfg.llm.llm_max_retries,
                worker_timeout_ms = cfg.worker_timeout.as_millis() as u64,
                "a hung provider can use the whole task timeout before the next provider is asked; lower LLM_TIMEOUT_MS or LLM_MAX_RETRIES"
            );
        }
        Ok(Self::new(chain))
    }

    /// The same providers, their remote calls under the fleet's `limiter`.
    pub fn with_limiter(self, limiter: &crate::limiter::Limiter) -> Self {
        let chain = self
            .chain
            .iter()
            .cloned()
            .map(|mut b| {
                match &mut b {
                    AnyBackend::Echo(_) => {}
                    AnyBackend::OpenAi(o) => o.set_limiter(limiter.clone()),
                    AnyBackend::Anthropic(a) => a.set_limiter(limiter.clone()),
                }
                b
            })
            .collect();
        Self::new(chain)
    }

    /// A provider list from backends built by hand (tests).
    pub fn new(chain: Vec<AnyBackend>) -> Self {
        Self {
            chain: chain.into(),
        }
    }

    /// The providers' names in fallback order, joined by commas (`openai,anthropic`).
    pub fn name(&self) -> String {
        self.names().join(",")
    }

    /// The providers' names in fallback order.
    pub fn names(&self) -> Vec<&'static str> {
        self.chain.iter().map(AnyBackend::name).collect()
    }

    /// Answers a request with the first provider that can, streaming its answer to `sink`.
    /// The task's model goes to the first provider; fallbacks use their own configured model,
    /// since model names rarely carry over between vendors. A permanent refusal by the first
    /// provider ends the list at once; so does any failure once part of the answer went out,
    /// since the next provider would start a different answer under what was already shown.
    pub async fn complete(
        &self,
        req: &ChatRequest,
        sink: &Sink,
    ) -> Result<ChatResponse, ProviderError> {
        let mut failures = Vec::new();
        for (i, backend) in self.chain.iter().enumerate() {
            let model = match (req.model(), i) {
                (Some(m), 0) => m,
                _ => backend.default_model(),
            };
            match backend.complete(model, req, sink).await {
                Ok(answer) => return Ok(answer),
                Err(e) if sink.has_sent() => return Err(e.after_first_token()),
                Err(e) if !e.is_retryable() && failures.is_empty() => return Err(e),
                Err(e) => {
                    let stop = !e.is_retryable();
                    if let Some(next) = self.chain.get(i + 1).filter(|_| !stop) {
                        warn!(provider = backend.name(), next = next.name(), error = %e, "provider unavailable; asking the next one");
                    }
                    failures.push(e);
                    // A refusal by a fallback ends the list, but the task stays retryable:
                    // the provider before it may recover.
                    if stop {
                        break;
                    }
                }
            }
        }
        Err(match failures.len() {
            1 => failures.remove(0),
            _ => ProviderError::Exhausted(failures),
        })
    }
}
