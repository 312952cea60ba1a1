//! A local LLM provider for tests and the bench: a real HTTP server on a loopback port that speaks
//! the OpenAI chat completions and the Anthropic messages APIs ([`crate::provider_wire`]), with
//! real SSE framing when asked to stream. Each request gets a scripted [`Reply`] (N tokens, a delay
//! before each, a failure after k tokens, an HTTP error, or one whole JSON answer); the server
//! records every request body, the tokens it served, and when a client closed its connection
//! before the answer was complete.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use crate::provider_wire::Wire;

/// Pause before a scripted connection drop.
const DROP_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// How a streamed answer breaks off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// After `after` tokens the connection is cut without ending the body.
    Drop {
        /// Tokens sent first.
        after: usize,
    },
    /// After `after` tokens the format's error event is sent and the stream ends.
    ErrorEvent {
        /// Tokens sent first.
        after: usize,
    },
}

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The answer's tokens; their concatenation is the answer.
    pub tokens: Vec<String>,
    /// Wait before each token (and before the whole answer when not streaming).
    pub delay: Duration,
    /// Break the stream off.
    pub failure: Option<Failure>,
    /// Answer this HTTP status and JSON body instead.
    pub status: Option<(u16, Value)>,
    /// Answer one JSON document even when the request asked to stream.
    pub whole: bool,
    /// Prompt and completion tokens reported.
    pub usage: (u64, u64),
}

impl Reply {
    /// An answer of `n` tokens: `w0`, ` w1`, ` w2`, …
    pub fn tokens(n: usize) -> Self {
        Self::from_tokens((0..n).map(|i| {
            if i == 0 {
                "w0".to_owned()
            } else {
                format!(" w{i}")
            }
        }))
    }

    /// An answer of `text`, one token per word (with its trailing space).
    pub fn text(text: &str) -> Self {
        Self::from_tokens(text.split_inclusive(' ').map(str::to_owned))
    }

    fn from_tokens(tokens: impl Iterator<Item = String>) -> Self {
        let tokens: Vec<String> = tokens.collect();
        let n = tokens.len() as u64;
        Self {
            tokens,
            delay: Duration::ZERO,
            failure: None,
            status: None,
            whole: false,
            usage: (11, n),
        }
    }

    /// An HTTP error answer.
    pub fn status(code: u16, body: Value) -> Self {
        Self {
            status: Some((code, body)),
            ..Self::tokens(0)
        }
    }

    /// Waits `delay` before each token.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Cuts the connection after `after` tokens.
    pub fn drop_after(mut self, after: usize) -> Self {
        self.failure = Some(Failure::Drop { after });
        self
    }

    /// Sends the format's error event after `after` tokens.
    pub fn error_after(mut self, after: usize) -> Self {
        self.failure = Some(Failure::ErrorEvent { after });
        self
    }

    /// Answers one JSON document even to a streaming request.
    pub fn whole(mut self) -> Self {
        self.whole = true;
        self
    }

    /// The whole answer.
    pub fn answer(&self) -> String {
        self.tokens.concat()
    }
}

/// One request the server received and how its answer went.
#[derive(Debug, Clone)]
pub struct Served {
    /// Request path.
    pub path: String,
    /// Its wire format.
    pub wire: Wire,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its JSON body (`Null` when not JSON).
    pub body: Value,
    /// When it arrived.
    pub received: Instant,
    /// When its first token was sent.
    pub first_token: Option<Instant>,
    /// Tokens sent to it.
    pub tokens: usize,
    /// When its answer was sent completely (or the scripted failure happened).
    pub finished: Option<Instant>,
    /// When the client went away before `finished`.
    pub closed_early: Option<Instant>,
}

impl Served {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

struct Shared {
    default: Reply,
    queued: Mutex<VecDeque<Reply>>,
    served: Mutex<Vec<Served>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running server; stopped on drop.
pub struct ProviderServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ProviderServer {
    /// Starts a server on a free loopback port that answers `default` to every request not
    /// given a reply by [`ProviderServer::push`].
    pub async fn start(default: Reply) -> Self {
        let shared = Arc::new(Shared {
            default,
            queued: Mutex::new(VecDeque::new()),
            served: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the provider server on loopback");
        let addr = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            // Tokens are small writes: without TCP_NODELAY each waits for the last one's ACK.
            let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
                let _ = s.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`: the base URL for `ANTHROPIC_BASE_URL`; add `/v1` for
    /// `OPENAI_BASE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The worker settings that point its provider at this server in format `wire` (model
    /// `model-e2e`).
    pub fn worker_env(&self, wire: Wire) -> Vec<(&'static str, String)> {
        let url = self.url();
        match wire {
            Wire::OpenAi => vec![
                ("LLM_PROVIDER", "openai".into()),
                ("OPENAI_BASE_URL", format!("{url}/v1")),
                ("OPENAI_API_KEY", "sk-test".into()),
                ("LLM_MODEL", "model-e2e".into()),
            ],
            Wire::Anthropic => vec![
                ("LLM_PROVIDER", "anthropic".into()),
                ("ANTHROPIC_BASE_URL", url),
                ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
                ("LLM_MODEL", "model-e2e".into()),
            ],
        }
    }

    /// The next request without a reply of its own gets `reply` (first pushed, first used).
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.queued).push_back(reply);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Served> {
        lock(&self.shared.served).clone()
    }

    /// Tokens sent over all requests.
    pub fn tokens_served(&self) -> usize {
        lock(&self.shared.served).iter().map(|s| s.tokens).sum()
    }
}

impl Drop for ProviderServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let Some(wire) = Wire::from_path(&path) else {
        return (StatusCode::NOT_FOUND, "no such API").into_response();
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = lock(&shared.queued)
        .pop_front()
        .unwrap_or_else(|| shared.default.clone());
    let stream = body["stream"] == Value::Bool(true) && !reply.whole;
    let model = body["model"].as_str().unwrap_or("local-model").to_owned();
    let index = {
        let mut served = lock(&shared.served);
        served.push(Served {
            path,
            wire,
            headers,
            body,
            received: Instant::now(),
            first_token: None,
            tokens: 0,
            finished: None,
            closed_early: None,
        });
        served.len() - 1
    };
    let record = Record { shared, index };
    if let Some((code, body)) = &reply.status {
        record.update(|s| s.finished = Some(Instant::now()));
        let code = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, axum::Json(body.clone())).into_response();
    }
    if !stream {
        tokio::time::sleep(reply.delay).await;
        let text = reply.answer();
        record.update(|s| {
            s.tokens = reply.tokens.len();
            s.finished = Some(Instant::now());
        });
        return axum::Json(wire.whole(&model, &text, reply.usage)).into_response();
    }
    let frames = Frames {
        wire,
        model,
        reply,
        next: 0,
        opened: false,
        done: false,
        record,
    };
    let body = futures::stream::unfold(frames, |mut f| async move {
        let frame = f.next().await?;
        Some((frame, f))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A handle on one request's record.
struct Record {
    shared: Arc<Shared>,
    index: usize,
}

impl Record {
    fn update(&self, f: impl FnOnce(&mut Served)) {
        if let Some(s) = lock(&self.shared.served).get_mut(self.index) {
            f(s);
        }
    }
}

/// The frames of one streamed answer. Dropped by the server when the client goes away: a drop
/// before the answer ended is recorded as an early close.
struct Frames {
    wire: Wire,
    model: String,
    reply: Reply,
    next: usize,
    opened: bool,
    done: bool,
    record: Record,
}

impl Frames {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Ok(self.wire.opening(&self.model, self.reply.usage).into()));
        }
        match self.reply.failure {
            Some(Failure::Drop { after }) if self.next == after => {
                // hyper discards frames still in its write buffer when the body fails: give the
                // tokens counted as served time to leave first.
                tokio::time::sleep(DROP_FLUSH_PAUSE).await;
                self.finish();
                return Some(Err(std::io::Error::other("scripted connection drop")));
            }
            Some(Failure::ErrorEvent { after }) if self.next == after => {
                self.finish();
                return Some(Ok(self.wire.error("scripted failure").into()));
            }
            _ => {}
        }
        let Some(token) = self.reply.tokens.get(self.next).cloned() else {
            self.finish();
            return Some(Ok(self.wire.closing(&self.model, self.reply.usage).into()));
        };
        tokio::time::sleep(self.reply.delay).await;
        self.next += 1;
        let now = Instant::now();
        self.record.update(|s| {
            s.tokens += 1;
            s.first_token.get_or_insert(now);
        });
        Some(Ok(self.wire.token(&self.model, &token).into()))
    }

    fn finish(&mut self) {
        self.done = true;
        self.record.update(|s| s.finished = Some(Instant::now()));
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        if !self.done {
            self.record
                .update(|s| s.closed_early = Some(Instant::now()));
        }
    }
}
