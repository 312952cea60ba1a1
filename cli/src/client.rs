//! The dispatcher's HTTP API as `sy` uses it: JSON calls with the bearer token, server-sent
//! event streams, and every failure turned into a [`CliError`] that names the problem and
//! carries its exit code.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Exit codes (documented in `sy --help` and the README).
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// The server refused (4xx other than 404, 5xx), or answered something unreadable.
    pub const REFUSED: u8 = 1;
    /// Bad command line (clap's own code for usage errors too).
    pub const USAGE: u8 = 2;
    /// The dispatcher could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The task, queue, tenant or route does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// The task ended without succeeding, or did not end in time.
    pub const TASK_FAILED: u8 = 5;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No answer: connection refused, DNS, timeout.
    #[error("cannot reach the dispatcher at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// A 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// Any other refusal.
    #[error("the dispatcher refused ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code of the answer.
        code: String,
        /// Its message.
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A command line the API cannot take (checked before any request).
    #[error("{0}")]
    Usage(String),
    /// The task did not succeed.
    #[error("{0}")]
    TaskFailed(String),
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } => exit::UNREACHABLE,
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Refused { .. } | Self::BadAnswer { .. } => exit::REFUSED,
            Self::Usage(_) => exit::USAGE,
            Self::TaskFailed(_) => exit::TASK_FAILED,
        }
    }
}

/// A dispatcher's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the dispatcher at `base` (`http://host:port`).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--url / SWITCHYARD_URL: {base:?} is not an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    fn request(&self, method: Method, path: &str, body: Option<&Value>) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req
    }

    /// `method path` with an optional JSON body; the status and JSON answer of a 2xx, else the
    /// refusal as an error. `timeout` bounds the whole exchange.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Value), CliError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .request(method, path, body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| CliError::BadAnswer {
            url: url.clone(),
            reason: format!("status {status}, body is not JSON ({e})"),
        })?;
        if status.is_success() {
            Ok((status, value))
        } else {
            Err(refusal(status, &value))
        }
    }

    /// `GET path` with the default timeout.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        Ok(self.call(Method::GET, path, None, DEFAULT_TIMEOUT).await?.1)
    }

    /// `POST path` with the default timeout.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        Ok(self
            .call(Method::POST, path, body, DEFAULT_TIMEOUT)
            .await?
            .1)
    }

    /// Opens a server-sent event stream (`GET` without a body, `POST` with one). Refusals
    /// before the stream began come back as errors.
    pub async fn events(
        &self,
        path: &str,
        body: Option<&Value>,
    ) -> Result<impl Stream<Item = Result<Event, CliError>> + use<>, CliError> {
        let url = format!("{}{path}", self.base);
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let resp = self
            .request(method, path, body)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(refusal(status, &value));
        }
        Ok(resp.bytes_stream().eventsource().map(move |e| {
            e.map_err(|e| CliError::Unreachable {
                url: url.clone(),
                reason: format!("the stream broke: {e}"),
            })
        }))
    }
}

/// How long one plain call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    // reqwest's Display hides the cause ("error sending request"): name it.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    CliError::Unreachable {
        url: url.to_owned(),
        reason,
    }
}

/// The error answer `{"error": {code, message}}` (or OpenAI's shape) as a [`CliError`].
fn refusal(status: StatusCode, body: &Value) -> CliError {
    let err = &body["error"];
    let message = err["message"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_owned);
    if status == StatusCode::NOT_FOUND {
        return CliError::NotFound(message);
    }
    CliError::Refused {
        status: status.as_u16(),
        code: err["code"].as_str().unwrap_or("unknown").to_owned(),
        message,
    }
}
