//! Chat (LLM) providers behind one small interface: a conversation in, an answer with token
//! usage out. `echo` is built in, deterministic and offline; it is the default.

mod echo;

use serde::Serialize;
use switchyard_shared::task::ChatMessage;

pub use echo::Echo;

/// A conversation to answer.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// Optional system prompt.
    pub system: Option<String>,
    /// History and the new user message, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// Tokens used.
    pub usage: Usage,
}

/// A failed provider call.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Rate limited or a server error: worth another attempt.
    #[error("{provider}: {message}")]
    Retryable {
        /// Provider name.
        provider: &'static str,
        /// What happened (never the API key).
        message: String,
    },
    /// The request itself is wrong (4xx): fails the same way every time.
    #[error("{provider}: {message}")]
    Permanent {
        /// Provider name.
        provider: &'static str,
        /// What happened (never the API key).
        message: String,
    },
}

/// The configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Built-in echo.
    Echo(Echo),
}

/// A provider name that `LLM_PROVIDER` may not use (yet).
#[derive(Debug, thiserror::Error)]
#[error(
    "configuration: LLM_PROVIDER {0:?} is not supported by this build; supported: echo (openai and anthropic are planned)"
)]
pub struct UnknownProvider(pub String);

impl Provider {
    /// Builds the provider `LLM_PROVIDER` names (the first of a fallback list).
    pub fn from_names(names: &[String]) -> Result<Self, UnknownProvider> {
        match names.first().map(|s| s.trim()) {
            Some("echo") | None => Ok(Self::Echo(Echo)),
            Some(other) => Err(UnknownProvider(other.to_owned())),
        }
    }

    /// Name recorded in results and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Echo(_) => "echo",
        }
    }

    /// Answers a conversation.
    pub async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        match self {
            Self::Echo(p) => Ok(p.complete(req)),
        }
    }
}
