//! The `anthropic` provider: the messages API (`POST {ANTHROPIC_BASE_URL}/v1/messages`), always
//! asked for a streamed answer ([`stream`] reads it in OpenAI's terms). An `/api/chat`
//! conversation's system prompt travels beside the messages, which carry only `user` and
//! `assistant` turns; a `/v1` client's body is translated ([`request`]).

pub mod request;
pub mod stream;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use switchyard_shared::config::{
    DEFAULT_ANTHROPIC_MAX_TOKENS, DEFAULT_COMPLETION_MAX_TOKENS, WorkerConfig,
};

use super::http::{Endpoint, HttpClient, endpoint, secret_header};
use super::{Backend, ChatRequest, ChatResponse, Conversation, ProviderError, SetupError, Sink};

const NAME: &str = "anthropic";
/// The API version this client speaks.
const API_VERSION: &str = "2023-06-01";

/// The Anthropic messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    http: HttpClient,
    endpoint: Endpoint,
    model: String,
    /// `LLM_MAX_TOKENS`, if set.
    max_tokens: Option<u32>,
}

impl Anthropic {
    /// Its calls go through `limiter`.
    pub fn set_limiter(&mut self, limiter: crate::limiter::Limiter) {
        self.http.set_limiter(limiter);
    }

    /// The provider `ANTHROPIC_*` and `LLM_*` describe.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(k) = &cfg.llm.anthropic_api_key {
            headers.insert("x-api-key", secret_header("ANTHROPIC_API_KEY", k.expose())?);
        }
        Ok(Self {
            http: HttpClient::from_config(cfg).map_err(SetupError::Client)?,
            endpoint: Endpoint {
                provider: NAME,
                url: endpoint(&cfg.llm.anthropic_base_url, "/v1/messages"),
                headers,
                key: cfg.llm.anthropic_api_key.clone(),
            },
            model: cfg
                .llm
                .anthropic_model
                .clone()
                .unwrap_or_else(|| cfg.llm.llm_model.clone()),
            max_tokens: cfg.llm.llm_max_tokens,
        })
    }

    /// The body of an `/api/chat` conversation. System messages inside a conversation join the
    /// system prompt: the API has no such role.
    fn conversation_body(&self, model: &str, c: &Conversation) -> Value {
        let mut system: Vec<&str> = c.system.iter().map(String::as_str).collect();
        let mut messages: Vec<Value> = Vec::with_capacity(c.messages.len());
        for m in &c.messages {
            if m.role == "system" {
                system.push(&m.content);
            } else {
                messages.push(json!({"role": m.role, "content": m.content}));
            }
        }
        let mut body = json!({
            "model": model,
            "max_tokens": self.max_tokens.unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        body
    }
}

impl Backend for Anthropic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn complete(
        &self,
        model: &str,
        req: &ChatRequest,
        sink: &Sink,
    ) -> Result<ChatResponse, ProviderError> {
        let body = match req {
            ChatRequest::Conversation(c) => self.conversation_body(model, c),
            ChatRequest::Completion(b) => {
                let default = self.max_tokens.unwrap_or(DEFAULT_COMPLETION_MAX_TOKENS);
                request::completion_body(model, b, default).map_err(|message| {
                    ProviderError::Permanent {
                        provider: NAME,
                        message,
                    }
                })?
            }
        };
        let answer = self
            .http
            .post_stream::<stream::Reading>(&self.endpoint, &body, sink)
            .await?;
        Ok(answer.into_response(NAME, model))
    }
}
