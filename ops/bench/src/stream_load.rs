//! The streaming phase's clients: streamed answers straight from the provider and through
//! switchyard, started one every [`TOKEN_INTERVAL`], timed to their first token; and streams
//! held open for the memory figure.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::error::BenchError;
use crate::streaming::TOKEN_INTERVAL;

pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, BenchError> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()?)
}

/// When stream `i` of a run that began at `began` starts: one every [`TOKEN_INTERVAL`], so
/// that once the first ones end, [`STREAMS`] run at once (each lasts `TOKENS` intervals),
/// without a burst of connections all at the same instant.
pub(crate) fn arrival(began: Instant, i: usize) -> Instant {
    began + TOKEN_INTERVAL * i as u32
}

/// Reads `resp` until `found` holds for the text read so far; answers when (or `None` when the
/// body ended first), and the whole text.
pub(crate) async fn read_until(
    mut resp: reqwest::Response,
    first: impl Fn(&str) -> bool,
    last: impl Fn(&str) -> bool,
) -> (Option<Instant>, String) {
    let mut text = String::new();
    let mut at = None;
    while let Ok(Some(chunk)) = resp.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if at.is_none() && first(&text) {
            at = Some(Instant::now());
        }
        if last(&text) {
            break;
        }
    }
    (at, text)
}

/// Times to first token of `n` concurrent streamed answers straight from the provider at
/// `provider_url` (OpenAI format), in µs.
pub async fn direct_ttft(provider_url: &str, n: usize) -> Result<Vec<u64>, BenchError> {
    let http = client(Duration::from_secs(120))?;
    let url = format!("{provider_url}/v1/chat/completions");
    let body = json!({"model": "bench", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let mut readers = Vec::with_capacity(n);
    let began = Instant::now();
    for i in 0..n {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        readers.push(tokio::spawn(async move {
            tokio::time::sleep_until(arrival(began, i)).await;
            let sent = Instant::now();
            let resp = http.post(&url).json(&body).send().await.ok()?;
            let (at, _) = read_until(
                resp,
                |t| t.contains("\"content\":\"w0\""),
                |t| t.contains("[DONE]"),
            )
            .await;
            at.map(|a| (a - sent).as_micros() as u64)
        }));
    }
    let mut out = Vec::with_capacity(n);
    for r in readers {
        out.extend(r.await?);
    }
    Ok(out)
}

/// One stream through switchyard, as the client saw it.
#[derive(Debug, Default)]
struct ChatSample {
    /// Send → first `delta`, µs.
    ttft_us: Option<u64>,
    /// Send → the first output entry's Redis id time (the worker wrote it), ms.
    written_ms: Option<u64>,
    /// That entry's id time → the client read its `delta`, ms: the dispatcher's share.
    delivered_ms: Option<u64>,
    /// Ended with `done` whose response is the whole answer.
    done: bool,
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `<ms>` of the first `delta` event's id.
fn first_delta_ms(text: &str) -> Option<u64> {
    let block = text.split("\n\n").find(|b| b.contains("event: delta"))?;
    let id = block.lines().find_map(|l| l.strip_prefix("id: "))?;
    id.split('-').next()?.parse().ok()
}

async fn one_chat(
    http: reqwest::Client,
    url: String,
    secret: String,
    i: usize,
    began: Instant,
    expected: String,
) -> ChatSample {
    let body = json!({"session_id": format!("bench-{i}"), "message": "hi", "stream": true});
    tokio::time::sleep_until(arrival(began, i)).await;
    let (sent, sent_wall) = (Instant::now(), wall_ms());
    let Ok(resp) = http
        .post(&url)
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
    else {
        return ChatSample::default();
    };
    let received = std::sync::Mutex::new(0u64);
    let (at, text) = read_until(
        resp,
        |t| {
            let hit = t.contains("event: delta");
            if hit && let Ok(mut r) = received.lock() {
                *r = wall_ms();
            }
            hit
        },
        |t| t.contains("event: done") || t.contains("event: error"),
    )
    .await;
    let done = text
        .split("\n\n")
        .find(|b| b.contains("event: done"))
        .and_then(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .is_some_and(|d| d["response"] == expected.as_str());
    let received = received.into_inner().unwrap_or(0);
    let entry = first_delta_ms(&text);
    ChatSample {
        ttft_us: at.map(|a| (a - sent).as_micros() as u64),
        written_ms: entry.map(|e| e.saturating_sub(sent_wall)),
        delivered_ms: entry.map(|e| received.saturating_sub(e)),
        done,
    }
}

/// What the streams through switchyard showed.
#[derive(Debug, Default)]
pub struct ViaSwitchyard {
    /// Times to first token, µs.
    pub ttft_us: Vec<u64>,
    /// Send → first entry written, µs (ms resolution).
    pub written_us: Vec<u64>,
    /// First entry written → read by the client, µs (ms resolution).
    pub delivered_us: Vec<u64>,
    /// Streams that did not end with the whole answer.
    pub incomplete: usize,
}

/// Runs `n` streamed chats through the dispatcher at `base_url`, one every
/// [`TOKEN_INTERVAL`], each expecting `expected` in its `done`.
pub async fn switchyard_ttft(
    base_url: &str,
    secret: &str,
    n: usize,
    expected: &str,
) -> Result<ViaSwitchyard, BenchError> {
    let http = client(Duration::from_secs(300))?;
    let url = format!("{base_url}/api/chat");
    let began = Instant::now();
    let readers: Vec<_> = (0..n)
        .map(|i| {
            let (h, u, s) = (http.clone(), url.clone(), secret.to_owned());
            tokio::spawn(one_chat(h, u, s, i, began, expected.to_owned()))
        })
        .collect();
    let mut out = ViaSwitchyard::default();
    for r in readers {
        let s = r.await?;
        out.ttft_us.extend(s.ttft_us);
        out.written_us.extend(s.written_ms.map(|m| m * 1000));
        out.delivered_us.extend(s.delivered_ms.map(|m| m * 1000));
        out.incomplete += usize::from(!s.done);
    }
    Ok(out)
}

/// Open streams: each has read its `start` event; dropping it closes them.
pub struct OpenStreams {
    streams: Vec<reqwest::Response>,
}

impl OpenStreams {
    /// Opens `n` streamed chats on the dispatcher at `base_url` (with `"detach": true`, so
    /// closing them later cancels nothing) and waits for each one's `start` event.
    pub async fn open(base_url: &str, secret: &str, n: usize) -> Result<Self, BenchError> {
        let http = client(Duration::from_secs(600))?;
        let url = format!("{base_url}/api/chat");
        let mut opening = Vec::with_capacity(n);
        for i in 0..n {
            let (http, url, secret) = (http.clone(), url.clone(), secret.to_owned());
            opening.push(tokio::spawn(async move {
                let body = json!({"session_id": format!("open-{i}"), "message": "hi",
                    "stream": true, "detach": true});
                let mut resp = http
                    .post(&url)
                    .bearer_auth(&secret)
                    .json(&body)
                    .send()
                    .await?;
                let first = resp.chunk().await?.unwrap_or_default();
                if !String::from_utf8_lossy(&first).contains("event: start") {
                    return Err(BenchError::Reply(format!(
                        "a stream began with {:?}",
                        String::from_utf8_lossy(&first)
                    )));
                }
                Ok(resp)
            }));
        }
        let mut streams = Vec::with_capacity(n);
        for o in opening {
            streams.push(o.await??);
        }
        Ok(Self { streams })
    }

    /// Streams held.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Reads every stream to its end; answers how many ended with `done`.
    pub async fn finish(self) -> Result<usize, BenchError> {
        let readers: Vec<_> = self
            .streams
            .into_iter()
            .map(|r| {
                tokio::spawn(async move {
                    let (_, text) = read_until(r, |_| false, |t| t.contains("event: done")).await;
                    text.contains("event: done")
                })
            })
            .collect();
        let mut done = 0;
        for r in readers {
            done += usize::from(r.await?);
        }
        Ok(done)
    }
}
