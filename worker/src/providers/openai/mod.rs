//! The `openai` provider: the chat completions API (`POST {OPENAI_BASE_URL}/chat/completions`),
//! spoken by OpenAI and by compatible servers (vLLM, Ollama, DeepSeek, Volcengine Ark, …), always
//! asked for a streamed answer with usage ([`stream`] reads it). A `/v1` client's body goes on
//! unchanged (fields this build does not know included) but for `stream`, `stream_options` and,
//! when a fallback answers, `model`.

pub mod stream;

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Value, json};
use switchyard_shared::completion::CompletionBody;
use switchyard_shared::config::WorkerConfig;

use super::http::{Endpoint, HttpClient, endpoint, secret_header};
use super::{Backend, ChatRequest, ChatResponse, Conversation, ProviderError, SetupError, Sink};

const NAME: &str = "openai";

/// An OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: HttpClient,
    endpoint: Endpoint,
    model: String,
    max_tokens: Option<u32>,
}

impl OpenAi {
    /// Its calls go through `limiter`.
    pub fn set_limiter(&mut self, limiter: crate::limiter::Limiter) {
        self.http.set_limiter(limiter);
    }

    /// The provider `OPENAI_*` and `LLM_*` describe.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        if let Some(k) = &cfg.llm.openai_api_key {
            let bearer = format!("Bearer {}", k.expose());
            headers.insert(AUTHORIZATION, secret_header("OPENAI_API_KEY", &bearer)?);
        }
        Ok(Self {
            http: HttpClient::from_config(cfg).map_err(SetupError::Client)?,
            endpoint: Endpoint {
                provider: NAME,
                url: endpoint(&cfg.llm.openai_base_url, "/chat/completions"),
                headers,
                key: cfg.llm.openai_api_key.clone(),
            },
            model: cfg
                .llm
                .openai_model
                .clone()
                .unwrap_or_else(|| cfg.llm.llm_model.clone()),
            max_tokens: cfg.llm.llm_max_tokens,
        })
    }

    /// The body of an `/api/chat` conversation: the system prompt first, `LLM_MAX_TOKENS`.
    fn conversation_body(&self, model: &str, c: &Conversation) -> Value {
        let mut messages: Vec<Value> = Vec::with_capacity(c.messages.len() + 1);
        if let Some(system) = &c.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(
            c.messages
                .iter()
                .map(|m| json!({"role": m.role, "content": m.content})),
        );
        let mut body = json!({"model": model, "messages": messages});
        if let Some(n) = self.max_tokens {
            body["max_tokens"] = json!(n);
        }
        streamed(body)
    }
}

/// A `/v1` client's body as it goes to the provider: unchanged but for the model (the task's
/// own for the first provider, a fallback's configured one otherwise) and streaming.
pub fn completion_body(model: &str, body: &CompletionBody) -> Value {
    let mut body = body.clone();
    body.insert("model".into(), json!(model));
    streamed(Value::Object(body))
}

/// Asks for a stream whose last chunk carries the token counts the result records.
fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
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
        sink: &Sink,
    ) -> Result<ChatResponse, ProviderError> {
        let body = match req {
            ChatRequest::Conversation(c) => self.conversation_body(model, c),
            ChatRequest::Completion(b) => completion_body(model, b),
        };
        let answer = self
            .http
            .post_stream::<stream::Reading>(&self.endpoint, &body, sink)
            .await?;
        Ok(answer.into_response(NAME, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_body_goes_on_unchanged_but_for_model_and_streaming() {
        let client = json!({"model": "gpt-asked", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": "required", "response_format": {"type": "json_object"}, "seed": 7,
            "some_future_field": {"x": [1, 2]}});
        let body = client.as_object().cloned().expect("an object");
        let mut expected = client.clone();
        expected["stream"] = json!(true);
        expected["stream_options"] = json!({"include_usage": true});
        assert_eq!(completion_body("gpt-asked", &body), expected);
        expected["model"] = json!("fallback-model");
        assert_eq!(completion_body("fallback-model", &body), expected);
    }
}
