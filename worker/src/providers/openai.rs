//! The `openai` provider: the chat completions API (`POST {OPENAI_BASE_URL}/chat/completions`),
//! spoken by OpenAI and by compatible servers (vLLM, Ollama, DeepSeek, Volcengine Ark, …).

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::{Secret, WorkerConfig};

use super::http::{HttpClient, endpoint, secret_header};
use super::{Backend, ChatRequest, ChatResponse, ProviderError, SetupError, Usage};

const NAME: &str = "openai";

/// An OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: HttpClient,
    url: String,
    headers: HeaderMap,
    key: Option<Secret>,
    model: String,
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<AnswerUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
}

#[derive(Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct AnswerUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl OpenAi {
    /// The provider `OPENAI_*` and `LLM_*` describe.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        if let Some(k) = &cfg.llm.openai_api_key {
            let bearer = format!("Bearer {}", k.expose());
            headers.insert(AUTHORIZATION, secret_header("OPENAI_API_KEY", &bearer)?);
        }
        Ok(Self {
            http: HttpClient::from_config(cfg).map_err(SetupError::Client)?,
            url: endpoint(&cfg.llm.openai_base_url, "/chat/completions"),
            headers,
            key: cfg.llm.openai_api_key.clone(),
            model: cfg
                .llm
                .openai_model
                .clone()
                .unwrap_or_else(|| cfg.llm.llm_model.clone()),
            max_tokens: cfg.llm.llm_max_tokens,
        })
    }
}

impl Backend for OpenAi {
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
        let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len() + 1);
        if let Some(system) = &req.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(
            req.messages
                .iter()
                .map(|m| json!({"role": m.role, "content": m.content})),
        );
        let mut body = json!({"model": model, "messages": messages});
        if let Some(n) = self.max_tokens {
            body["max_tokens"] = json!(n);
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
        let text = answer
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or(ProviderError::Permanent {
                provider: NAME,
                message: "the answer holds no message text".into(),
            })?;
        let usage = answer.usage.map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        });
        Ok(ChatResponse {
            text,
            model: answer.model.unwrap_or_else(|| model.to_owned()),
            provider: NAME,
            usage,
        })
    }
}
