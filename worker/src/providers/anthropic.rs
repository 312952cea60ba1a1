//! The `anthropic` provider: the messages API (`POST {ANTHROPIC_BASE_URL}/v1/messages`). The
//! system prompt travels beside the messages, which carry only `user` and `assistant` turns.

use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::{DEFAULT_ANTHROPIC_MAX_TOKENS, Secret, WorkerConfig};

use super::http::{HttpClient, endpoint, secret_header};
use super::{Backend, ChatRequest, ChatResponse, ProviderError, SetupError, Usage};

const NAME: &str = "anthropic";
/// The API version this client speaks.
const API_VERSION: &str = "2023-06-01";

/// The Anthropic messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    http: HttpClient,
    url: String,
    headers: HeaderMap,
    key: Option<Secret>,
    model: String,
    max_tokens: u32,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    model: Option<String>,
    content: Vec<Block>,
    #[serde(default)]
    usage: Option<AnswerUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct AnswerUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

impl Anthropic {
    /// The provider `ANTHROPIC_*` and `LLM_*` describe.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(k) = &cfg.llm.anthropic_api_key {
            headers.insert("x-api-key", secret_header("ANTHROPIC_API_KEY", k.expose())?);
        }
        Ok(Self {
            http: HttpClient::from_config(cfg).map_err(SetupError::Client)?,
            url: endpoint(&cfg.llm.anthropic_base_url, "/v1/messages"),
            headers,
            key: cfg.llm.anthropic_api_key.clone(),
            model: cfg
                .llm
                .anthropic_model
                .clone()
                .unwrap_or_else(|| cfg.llm.llm_model.clone()),
            max_tokens: cfg
                .llm
                .llm_max_tokens
                .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
        })
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
    ) -> Result<ChatResponse, ProviderError> {
        // System messages inside a conversation join the system prompt: the API has no such role.
        let mut system: Vec<&str> = req.system.iter().map(String::as_str).collect();
        let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
        for m in &req.messages {
            if m.role == "system" {
                system.push(&m.content);
            } else {
                messages.push(json!({"role": m.role, "content": m.content}));
            }
        }
        let mut body = json!({
            "model": model,
            "max_tokens": self.max_tokens,
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        let answer = self
            .http
            .post_json(NAME, &self.url, &self.headers, &body, self.key.as_ref())
            .await?;
        let answer: Answer =
            serde_json::from_value(answer).map_err(|e| ProviderError::Permanent {
                provider: NAME,
                message: format!("unexpected answer shape: {e}"),
            })?;
        let text: String = answer
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        let usage = answer.usage.map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
        });
        Ok(ChatResponse {
            text,
            model: answer.model.unwrap_or_else(|| model.to_owned()),
            provider: NAME,
            usage,
        })
    }
}
