//! The `anthropic` provider: the messages API (`POST {ANTHROPIC_BASE_URL}/v1/messages`), read as
//! its stream of events (`message_start` with the input usage, `content_block_delta` text,
//! `message_delta` with the output usage, `message_stop`, `error`). The system prompt travels
//! beside the messages, which carry only `user` and `assistant` turns.

use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::{DEFAULT_ANTHROPIC_MAX_TOKENS, Secret, WorkerConfig};

use super::http::{Decoder, Flow, HttpClient, endpoint, secret_header};
use super::{Backend, ChatRequest, ChatResponse, ProviderError, SetupError, Sink, Usage};

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

/// The events of a streamed message, by their `type`; unknown ones (new API events) are skipped.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    MessageStop,
    Error {
        error: ApiError,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<AnswerUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    #[serde(other)]
    Other,
}

/// `message_delta` counts are cumulative; input tokens appear there only in newer versions.
#[derive(Deserialize)]
struct DeltaUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
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
        match serde_json::from_str(data).map_err(|e| unreadable("event", e))? {
            Event::MessageStart { message } => {
                self.model = message.model;
                if let Some(u) = message.usage {
                    self.usage.prompt_tokens = u.input_tokens;
                    self.usage.completion_tokens = u.output_tokens;
                }
            }
            Event::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
            } => {
                sink.send(&text);
                self.text.push_str(&text);
            }
            Event::MessageDelta { usage } => {
                self.finished = true;
                if let Some(u) = usage {
                    self.usage.prompt_tokens = u.input_tokens.unwrap_or(self.usage.prompt_tokens);
                    self.usage.completion_tokens =
                        u.output_tokens.unwrap_or(self.usage.completion_tokens);
                }
            }
            Event::MessageStop => return Ok(Flow::Done),
            Event::Error { error } => {
                let message = format!(
                    "error in the answer stream: {}: {}",
                    error.kind, error.message
                );
                // Overload and server trouble pass; anything else is the request's fault.
                return Err(match error.kind.as_str() {
                    "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error" => {
                        ProviderError::Retryable {
                            provider: NAME,
                            message,
                        }
                    }
                    _ => ProviderError::Permanent {
                        provider: NAME,
                        message,
                    },
                });
            }
            Event::ContentBlockDelta { .. } | Event::Other => {}
        }
        Ok(Flow::More)
    }

    fn whole(&mut self, answer: Value, sink: &Sink) -> Result<(), ProviderError> {
        let answer: Answer = serde_json::from_value(answer).map_err(|e| unreadable("answer", e))?;
        let text: String = answer
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        sink.send(&text);
        self.text = text;
        self.model = answer.model;
        self.usage = answer.usage.map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
        });
        self.finished = true;
        Ok(())
    }

    /// `message_delta` carries the stop reason: the text is whole even without `message_stop`.
    fn is_complete(&self) -> bool {
        self.finished
    }
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
        sink: &Sink,
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
            "stream": true,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
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
