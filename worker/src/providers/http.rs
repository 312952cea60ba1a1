//! The HTTP side every remote provider shares: one `reqwest` client with timeouts, a JSON POST
//! whose SSE answer is read event by event by the provider's [`Decoder`], retried with
//! exponential backoff on 429, 5xx, timeouts and connection errors (honouring a capped
//! `Retry-After`) as long as no text went out, and error messages taken from the provider's
//! answer with the API key scrubbed out. Every attempt goes through the fleet's provider
//! [`Limiter`]: admitted (after any pause or budget wait) before the request, settled with the
//! reported usage after it; a 429 with `Retry-After` pauses the model for every worker, and the
//! retry then waits for that pause in the limiter instead of in the backoff.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use switchyard_shared::config::{Secret, WorkerConfig};
use tracing::debug;

use super::answer::Answer;
use super::{ProviderError, SetupError, Sink};
use crate::limiter::{Estimate, Limiter};

/// Longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// A client plus the retry policy of one provider.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_retries: usize,
    retry_base: Duration,
    retry_max: Duration,
    limiter: Limiter,
}

/// Where one provider is called: its name, URL, headers (the key among them, marked sensitive)
/// and the key itself, only used to scrub error messages.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Provider name, in errors.
    pub provider: &'static str,
    /// The URL POSTed to.
    pub url: String,
    /// Headers of every request.
    pub headers: HeaderMap,
    /// The API key, scrubbed from error messages.
    pub key: Option<Secret>,
}

/// One failed attempt, with what the server asked us to wait.
struct Attempt {
    error: ProviderError,
    retry_after: Option<Duration>,
    /// The provider answered 429.
    rate_limited: bool,
    /// The limiter recorded the provider's pause: the next attempt waits for it there.
    paused: bool,
}

impl Attempt {
    fn transient(provider: &'static str, message: String) -> Self {
        ProviderError::Retryable { provider, message }.into()
    }

    fn permanent(provider: &'static str, message: String) -> Self {
        ProviderError::Permanent { provider, message }.into()
    }
}

impl From<ProviderError> for Attempt {
    fn from(error: ProviderError) -> Self {
        Self {
            error,
            retry_after: None,
            rate_limited: false,
            paused: false,
        }
    }
}

impl HttpClient {
    /// A client with the `LLM_*` timeouts and retry settings.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // A bound on each silence, not on the whole answer: a streamed answer may take
            // minutes, the task's own timeout bounds it.
            .read_timeout(cfg.llm.llm_timeout)
            .connect_timeout(cfg.llm.llm_connect_timeout)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            max_retries: cfg.llm.llm_max_retries,
            retry_base: cfg.llm.llm_retry_base,
            retry_max: cfg.llm.llm_retry_max,
            limiter: Limiter::off(),
        })
    }

    /// Calls go through `limiter` from now on.
    pub fn set_limiter(&mut self, limiter: Limiter) {
        self.limiter = limiter;
    }

    /// POSTs `body` to `to` and reads the answer with a fresh `D`: SSE events one by one as
    /// they arrive, or one whole JSON document from a server that ignores `stream`. Transient
    /// failures are retried while nothing went to `sink`; once something did, the failure ends
    /// the call.
    pub async fn post_stream<D: Decoder>(
        &self,
        to: &Endpoint,
        body: &Value,
        sink: &Sink,
    ) -> Result<Answer, ProviderError> {
        let provider = to.provider;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_base)
            .with_max_delay(self.retry_max)
            .with_max_times(self.max_retries)
            .with_jitter();
        let cap = self.retry_max;
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        let estimate = Estimate::of(body);
        let attempt = || self.limited_once::<D>(to, body, sink, model, estimate);
        attempt
            .retry(backoff)
            .when(|a: &Attempt| {
                matches!(a.error, ProviderError::Retryable { .. }) && !sink.has_sent()
            })
            // The server's Retry-After replaces our delay, capped so it cannot stall a worker;
            // a pause the limiter recorded is waited for by the next attempt's admission.
            .adjust(move |a: &Attempt, delay| {
                delay.map(|d| match (a.paused, a.retry_after) {
                    (true, _) => Duration::ZERO,
                    (false, ra) => ra.map_or(d, |ra| ra.min(cap)),
                })
            })
            .notify(|a: &Attempt, delay| {
                debug!(provider, error = %a.error, delay_ms = delay.as_millis() as u64, "provider call failed; retrying");
            })
            .await
            .map_err(|a| a.error)
    }

    /// One attempt under the limiter: admitted, made, settled with its usage; a 429 with
    /// `Retry-After` becomes the fleet's pause of this model.
    async fn limited_once<D: Decoder>(
        &self,
        to: &Endpoint,
        body: &Value,
        sink: &Sink,
        model: &str,
        estimate: Estimate,
    ) -> Result<Answer, Attempt> {
        let ticket = self.limiter.admit(to.provider, model, estimate).await;
        match self.stream_once::<D>(to, body, sink).await {
            Ok(decoder) => {
                let answer = decoder.into_answer();
                let u = answer.usage;
                self.limiter
                    .settle(ticket, u.prompt_tokens, u.completion_tokens)
                    .await;
                Ok(answer)
            }
            Err(mut a) => {
                if let (true, Some(after)) = (a.rate_limited, a.retry_after) {
                    a.paused = self.limiter.pause(to.provider, model, after).await;
                }
                Err(a)
            }
        }
    }

    async fn stream_once<D: Decoder>(
        &self,
        to: &Endpoint,
        body: &Value,
        sink: &Sink,
    ) -> Result<D, Attempt> {
        let provider = to.provider;
        let transient = |message| Attempt::transient(provider, message);
        let resp = self
            .client
            .post(&to.url)
            .headers(to.headers.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                let message = describe(&e);
                if e.is_builder() {
                    Attempt::permanent(provider, message)
                } else {
                    transient(message)
                }
            })?;
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !status.is_success() || !is_sse {
            return whole_or_error(resp, to, sink).await;
        }
        let mut decoder = D::default();
        let mut events = resp.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| match e {
                EventStreamError::Transport(e) => {
                    transient(format!("the answer broke off: {}", describe(&e)))
                }
                other => transient(format!("the answer stream is malformed: {other}")),
            })?;
            if decoder.event(&event.event, &event.data, sink)? == Flow::Done {
                return Ok(decoder);
            }
        }
        if decoder.is_complete() {
            Ok(decoder)
        } else {
            Err(transient(
                "the answer stream ended before its end mark".into(),
            ))
        }
    }
}

/// Reads an answer that is not a stream: one whole JSON answer after a success, the provider's
/// error otherwise (429, 408 and 5xx transient, with their `Retry-After`; other codes permanent).
async fn whole_or_error<D: Decoder>(
    resp: reqwest::Response,
    to: &Endpoint,
    sink: &Sink,
) -> Result<D, Attempt> {
    let provider = to.provider;
    let transient = |message| Attempt::transient(provider, message);
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    let text = resp
        .text()
        .await
        .map_err(|e| transient(format!("reading the answer: {}", describe(&e))))?;
    if status.is_success() {
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| Attempt::permanent(provider, format!("answer is not JSON: {e}")))?;
        let mut decoder = D::default();
        decoder.whole(answer, sink)?;
        return Ok(decoder);
    }
    let message = format!(
        "HTTP {status}: {}",
        provider_message(&text, to.key.as_ref())
    );
    Err(
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            Attempt {
                retry_after,
                rate_limited: status == StatusCode::TOO_MANY_REQUESTS,
                ..transient(message)
            }
        } else {
            Attempt::permanent(provider, message)
        },
    )
}

/// Reads one provider's answer into an [`Answer`], event by event, handing text and tool-call
/// pieces to the sink as they come.
pub trait Decoder: Default + Send {
    /// One SSE event: `event` is its name (`message` when unnamed), `data` its data.
    fn event(&mut self, event: &str, data: &str, sink: &Sink) -> Result<Flow, ProviderError>;
    /// A whole JSON answer, from a server that does not stream.
    fn whole(&mut self, answer: Value, sink: &Sink) -> Result<(), ProviderError>;
    /// The answer as read.
    fn into_answer(self) -> Answer;
    /// Whether the answer is complete although the stream ended without its end mark: the
    /// provider said why it finished.
    fn is_complete(&self) -> bool;
}

/// Whether an answer stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More events follow.
    More,
    /// The end mark: the answer is complete.
    Done,
}

/// A header value marked sensitive, so `reqwest` and `http` never print it.
pub fn secret_header(var: &'static str, value: &str) -> Result<HeaderValue, SetupError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| SetupError::BadKey(var))?;
    v.set_sensitive(true);
    Ok(v)
}

/// `{base}{path}` without a doubled slash.
pub fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The wait a 429 or 503 asks for: `retry-after-ms` (OpenAI), or `Retry-After` in seconds or as
/// an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        // try_: a huge value must not panic; the cap applies later anyway.
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = when.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The error message of a provider's answer (`error.message`, `error`, or `message`), cut short
/// and with the key scrubbed: some providers quote a (partly masked) key back.
fn provider_message(body: &str, key: Option<&Secret>) -> String {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let found = json.as_ref().and_then(|j| {
        j.pointer("/error/message")
            .or_else(|| j.get("error"))
            .or_else(|| j.get("message"))
            .and_then(Value::as_str)
    });
    let raw = found.unwrap_or(body).trim();
    let raw = if raw.is_empty() {
        "(empty answer)"
    } else {
        raw
    };
    let mut msg: String = raw.chars().take(MAX_MESSAGE_CHARS).collect();
    if raw.chars().count() > MAX_MESSAGE_CHARS {
        msg.push('…');
    }
    match key {
        Some(k) => scrub(&msg, k.expose()),
        None => msg,
    }
}

/// Replaces `key`, and any word sharing its first 8 characters (a masked echo of it), with
/// `<redacted>`.
pub fn scrub(text: &str, key: &str) -> String {
    if key.is_empty() {
        return text.to_owned();
    }
    let text = text.replace(key, "<redacted>");
    let stem: String = key.chars().take(8).collect();
    if key.chars().count() < 12 {
        return text;
    }
    text.split(' ')
        .map(|w| if w.contains(&stem) { "<redacted>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `reqwest` error with its causes ("timed out", "connection refused"), without the URL.
pub fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.ends_with(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_ms_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn provider_messages_are_found_and_scrubbed() {
        let key = Secret::new("sk-proj-abcdef123456");
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-***3456 (sk-proj-abcdef123456).","type":"invalid_request_error"}}"#;
        let m = provider_message(body, Some(&key));
        assert!(m.starts_with("Incorrect API key provided"), "{m}");
        assert!(!m.contains("abcdef") && !m.contains("***3456"), "{m}");
        assert_eq!(
            provider_message(r#"{"error":"model not found"}"#, None),
            "model not found"
        );
        assert_eq!(provider_message("", None), "(empty answer)");
        assert_eq!(
            provider_message(&"x".repeat(1000), None).chars().count(),
            301
        );
    }

    #[test]
    fn endpoints_join_without_double_slashes() {
        assert_eq!(
            endpoint("http://h/v1/", "/chat/completions"),
            "http://h/v1/chat/completions"
        );
        assert_eq!(endpoint("http://h", "/v1/messages"), "http://h/v1/messages");
    }
}
