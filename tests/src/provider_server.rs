//! A local LLM provider for tests and the bench: a real HTTP server on a loopback port that speaks
//! the OpenAI chat completions and the Anthropic messages APIs ([`crate::provider_wire`]), with
//! real SSE framing when asked to stream. Each request gets a scripted [`Reply`]
//! ([`crate::provider_reply`]: N tokens, tool calls streamed in pieces, a delay before each, a
//! failure after k pieces, an HTTP error, or one whole JSON answer); the server records every
//! request (its body as received, so tests assert what reached the provider), the tokens it
//! served and the usage it reported (so tests count the tokens it saw per window), and when a
//! client closed its connection before the answer was complete. Replies may be queued for one
//! model ([`ProviderServer::push_for`]), e.g. a 429 with `Retry-After` for one model only.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use crate::provider_reply::{Failure, Piece, Reply, ScriptedCall, prompt_tokens};
pub use crate::provider_wire::Wire;

/// Pause before a scripted connection drop.
const DROP_FLUSH_PAUSE: Duration = Duration::from_millis(20);

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
    /// Tokens sent to it (text tokens and tool-call pieces).
    pub tokens: usize,
    /// When its answer was sent completely (or the scripted failure happened).
    pub finished: Option<Instant>,
    /// When the client went away before `finished`.
    pub closed_early: Option<Instant>,
    /// The model asked for.
    pub model: String,
    /// HTTP status answered.
    pub status: u16,
    /// Prompt and completion tokens reported in the answer's usage.
    pub usage: (u64, u64),
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
    by_model: Mutex<HashMap<String, VecDeque<Reply>>>,
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
            by_model: Mutex::new(HashMap::new()),
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

    /// The next request for `model` gets `reply`, before any reply of [`ProviderServer::push`].
    pub fn push_for(&self, model: &str, reply: Reply) {
        lock(&self.shared.by_model)
            .entry(model.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Served> {
        lock(&self.shared.served).clone()
    }

    /// The request bodies so far, in arrival order (what reached the provider).
    pub fn bodies(&self) -> Vec<Value> {
        lock(&self.shared.served)
            .iter()
            .map(|s| s.body.clone())
            .collect()
    }

    /// The tokens (prompt + completion, as reported) of every answered request, by arrival:
    /// `(arrival, model, tokens)`. What a provider counts against its per-minute limits.
    pub fn tokens_seen(&self) -> Vec<(Instant, String, u64)> {
        lock(&self.shared.served)
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| (s.received, s.model.clone(), s.usage.0 + s.usage.1))
            .collect()
    }

    /// The tokens seen in every rolling `window` that starts between the first arrival and
    /// `until - window`, stepping by `step`: `(start offset from the first arrival, tokens)`.
    pub fn rolling_windows(
        &self,
        window: Duration,
        step: Duration,
        until: Instant,
    ) -> Vec<(Duration, u64)> {
        let seen = self.tokens_seen();
        let Some(first) = seen.iter().map(|(at, _, _)| *at).min() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut start = first;
        while start + window <= until {
            let total = seen
                .iter()
                .filter(|(at, _, _)| *at >= start && *at < start + window)
                .map(|(_, _, n)| n)
                .sum();
            out.push((start - first, total));
            start += step;
        }
        out
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
    let model = body["model"].as_str().unwrap_or("local-model").to_owned();
    let for_model = lock(&shared.by_model)
        .get_mut(&model)
        .and_then(VecDeque::pop_front);
    let mut reply = for_model
        .or_else(|| lock(&shared.queued).pop_front())
        .unwrap_or_else(|| shared.default.clone());
    if reply.count_prompt {
        reply.usage.0 = prompt_tokens(&body);
    }
    let stream = body["stream"] == Value::Bool(true) && !reply.whole;
    let status = reply.status.as_ref().map_or(200, |(code, _)| *code);
    let usage = if reply.status.is_some() {
        (0, 0)
    } else {
        reply.usage
    };
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
            model: model.clone(),
            status,
            usage,
        });
        served.len() - 1
    };
    let record = Record { shared, index };
    if let Some((code, body)) = &reply.status {
        record.update(|s| s.finished = Some(Instant::now()));
        let code = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, axum::Json(body.clone())).into_response();
        for (name, value) in &reply.headers {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                header::HeaderValue::from_str(value),
            ) {
                resp.headers_mut().insert(n, v);
            }
        }
        return resp;
    }
    if !stream {
        tokio::time::sleep(reply.delay).await;
        record.update(|s| {
            s.tokens = reply.pieces().len();
            s.finished = Some(Instant::now());
        });
        return axum::Json(wire.whole_reply(&model, &reply)).into_response();
    }
    let frames = Frames {
        wire,
        opening: Some(wire.opening_for(&model, &reply)),
        pieces: reply
            .pieces()
            .into_iter()
            .map(|p| wire.piece(&model, &reply, p))
            .collect(),
        closing: wire.closing_for(&model, &reply),
        reply,
        next: 0,
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
    /// Sent first, at once.
    opening: Option<String>,
    /// One frame (or a few) per piece, each after the reply's delay.
    pieces: Vec<String>,
    closing: String,
    reply: Reply,
    next: usize,
    done: bool,
    record: Record,
}

impl Frames {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        if let Some(opening) = self.opening.take() {
            return Some(Ok(opening.into()));
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
        let Some(piece) = self.pieces.get(self.next).cloned() else {
            self.finish();
            return Some(Ok(std::mem::take(&mut self.closing).into()));
        };
        tokio::time::sleep(self.reply.delay).await;
        self.next += 1;
        let now = Instant::now();
        self.record.update(|s| {
            s.tokens += 1;
            s.first_token.get_or_insert(now);
        });
        Some(Ok(piece.into()))
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
