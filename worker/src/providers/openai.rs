//! The `openai` provider: the chat completions API (`POST {OPENAI_BASE_URL}/chat/completions`),
//! spoken by OpenAI and by compatible servers (vLLM, Ollama, DeepSeek, Volcengine Ark, …), read as
//! a stream of `chat.completion.chunk` events (or one whole answer from a server that does not
//! stream).

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::{Secret, WorkerConfig};

use super::http::{Decoder, Flow, HttpClient, endpoint, secret_header};
use super::{Backend, ChatRequest, ChatResponse, ProviderError, SetupError, Sink, Usage};

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

/// One `chat.completion.chunk` (or an error some compatible servers send mid-stream).
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<AnswerUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

/// The answer as read so far.
#[derive(Default)]
struct Reading {
    text: String,
    model: Option<String>,
    usage: Usage,
    finished: bool,
}

fn unreadable(what: &str, e: serde_json::Error) -> ProviderError {
    ProviderError::Permanent {
        provider: NAME,
        message: format!("unexpected {what} shape: {e}"),
    }
}

impl Decoder for Reading {
    fn event(&mut self, _event: &str, data: &str, sink: &Sink) -> Result<Flow, ProviderError> {
        if data.trim() == "[DONE]" {
            return Ok(Flow::Done);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| unreadable("chunk", e))?;
        if let Some(error) = chunk.error {
            return Err(ProviderError::Retryable {
                provider: NAME,
                message: format!("error in the answer stream: {}", error_text(&error)),
            });
        }
        if chunk.model.is_some() {
            self.model = chunk.model;
        }
        if let Some(u) = chunk.usage {
            self.usage = Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            };
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                sink.send(&text);
                self.text.push_str(&text);
            }
            self.finished |= choice.finish_reason.is_some();
        }
        Ok(Flow::More)
    }

    fn whole(&mut self, answer: Value, sink: &Sink) -> Result<(), ProviderError> {
        let answer: Answer = serde_json::from_value(answer).map_err(|e| unreadable("answer", e))?;
        let text = answer
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or(ProviderError::Permanent {
                provider: NAME,
                message: "the answer holds no message text".into(),
            })?;
        sink.send(&text);
        self.text = text;
        self.model = answer.model;
        self.usage = answer.usage.map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        });
        self.finished = true;
        Ok(())
    }

    /// Some compatible servers close without `[DONE]`; a finish reason says the text is whole.
    fn is_complete(&self) -> bool {
        self.finished
    }
}

/// `error.message`, or the error as JSON.
fn error_text(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_owned)
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
        sink: &Sink,
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
        // include_usage: the last chunk carries the token counts the result records.
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(n) = self.max_tokens {
            body["max_tokens"] = json!(n);
        }
        let answer: Reading = self
            .http
            .post_stream(
                NAME,
                &self.url,
                &self.headers,
                &body,
                self.key.as_ref(),
                sink,
            )
            .await?;
        Ok(ChatResponse {
            text: answer.text,
            model: answer.model.unwrap_or_else(|| model.to_owned()),
            provider: NAME,
            usage: answer.usage,
        })
    }
}
