//! The streaming phase (issue 17): time to first token through switchyard against straight from
//! the same local provider server, with many concurrent streams; Redis commands per streamed
//! token; and the dispatcher's RSS while it holds a thousand open streams.
//!
//! Time to first token is measured from sending the request to the first text: a `delta` event
//! of `POST /api/chat` with `"stream": true`, or the first `content` chunk of the provider's
//! own OpenAI-format SSE answer. Both runs start one stream every 5 ms over keep-alive
//! connections, so 200 run at once once the first ones end (each lasts 200 tokens × 5 ms),
//! and the two distributions are compared percentile by percentile (the overhead is their
//! difference).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;
use serde_json::json;
use switchyard_tests::provider_server::{ProviderServer, Reply};
use tokio::time::Instant;

use crate::error::BenchError;
use crate::info::Snapshot;
use crate::percentile::Percentiles;
use crate::procs::Rss;
use crate::services::Launcher;

/// Key prefix of the phase, apart from the other phases' keys.
pub const PREFIX: &str = "bench3:";
/// Concurrent streams of the time-to-first-token runs (issue 17).
pub const STREAMS: usize = 200;
/// Tokens of each answer.
pub const TOKENS: usize = 200;
/// The provider's pause before each token.
pub const TOKEN_INTERVAL: Duration = Duration::from_millis(5);
/// Streams held open for the memory figure.
pub const OPEN_STREAMS: usize = 1_000;
/// Target of the time-to-first-token overhead at p50, ms.
pub const TARGET_TTFT_P50_MS: f64 = 2.0;
/// Target of the time-to-first-token overhead at p99, ms.
pub const TARGET_TTFT_P99_MS: f64 = 10.0;
/// Target of Redis commands per streamed token.
pub const TARGET_COMMANDS_PER_TOKEN: f64 = 0.3;
/// Streams measured in each run: [`STREAMS`] at once for most of it.
pub const SAMPLES: usize = 3 * STREAMS;
/// Streams run before the measured ones, so connections and caches are warm.
const WARMUP: usize = 10;

/// Runs the phase on a dispatcher and workers of its own under [`PREFIX`]; `admin` reads
/// `INFO` of the run's Redis.
pub async fn phase(
    launcher: &Launcher<'_>,
    admin: &mut MultiplexedConnection,
) -> Result<StreamingFigures, BenchError> {
    let reply = Reply::tokens(TOKENS).delay(TOKEN_INTERVAL);
    let expected = reply.answer();
    let provider = ProviderServer::start(reply).await;
    let dispatcher = launcher.dispatcher(PREFIX).await?;
    let secret = launcher.secret().to_owned();
    let base = format!("{}/v1", provider.url());
    // Room for every stream at once even when they last longer than planned under load: the
    // figure is the streaming path, not a queue waiting for a worker slot.
    let concurrency = (2 * STREAMS).to_string();
    let worker = launcher
        .worker_with(
            PREFIX,
            "bench-stream",
            &[
                ("WORKER_QUEUES", "chat"),
                ("WORKER_CONCURRENCY", &concurrency),
                ("LLM_PROVIDER", "openai"),
                ("OPENAI_BASE_URL", &base),
                ("OPENAI_API_KEY", "bench"),
                ("LLM_MODEL", "bench"),
            ],
        )
        .await?;
    let url = dispatcher.base_url.clone();
    direct_ttft(&provider.url(), WARMUP).await?;
    switchyard_ttft(&url, &secret, WARMUP, &expected).await?;

    let direct = Percentiles::from_micros(direct_ttft(&provider.url(), SAMPLES).await?);
    let before = Snapshot::take(admin).await?;
    let run = switchyard_ttft(&url, &secret, SAMPLES, &expected).await?;
    let incomplete = run.incomplete;
    let after = Snapshot::take(admin).await?;
    let via = Percentiles::from_micros(run.ttft_us);
    let tokens = ((SAMPLES - incomplete) * TOKENS) as u64;
    let commands = after
        .commands
        .total_calls()
        .saturating_sub(before.commands.total_calls());
    let by_name = after
        .commands
        .since(&before.commands)
        .into_iter()
        .map(|(name, c)| (name, c.calls))
        .collect();
    let (p50, p99) = overhead(&via, &direct);
    drop(worker);

    // Queued tasks (no worker now): every stream is registered and waits on the fan-out.
    let rss_before = Rss::of(dispatcher.proc.pid())?.rss_kib;
    let open = OpenStreams::open(&url, &secret, OPEN_STREAMS).await?;
    let rss_open = Rss::of(dispatcher.proc.pid())?.rss_kib;
    let held = open.len();
    let _echo = launcher
        .worker_with(
            PREFIX,
            "bench-echo",
            &[("WORKER_QUEUES", "chat"), ("WORKER_CONCURRENCY", "64")],
        )
        .await?;
    let open_done = open.finish().await?;
    Ok(StreamingFigures {
        streams: STREAMS,
        samples: SAMPLES,
        tokens_per_stream: TOKENS,
        token_interval_ms: TOKEN_INTERVAL.as_millis() as u64,
        ttft_direct: direct,
        ttft_switchyard: via,
        ttft_written: Percentiles::from_micros(run.written_us),
        ttft_delivered: Percentiles::from_micros(run.delivered_us),
        ttft_overhead_p50_ms: p50,
        ttft_overhead_p99_ms: p99,
        incomplete,
        tokens,
        redis_commands: commands,
        commands_per_token: if tokens == 0 {
            0.0
        } else {
            commands as f64 / tokens as f64
        },
        commands_by_name: by_name,
        open_streams: held,
        dispatcher_rss_before_kib: rss_before,
        dispatcher_rss_open_kib: rss_open,
        open_streams_done: open_done,
    })
}

/// What the phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamingFigures {
    /// Concurrent streams of the time-to-first-token runs.
    pub streams: usize,
    /// Streams measured in each run.
    pub samples: usize,
    /// Tokens of each answer.
    pub tokens_per_stream: usize,
    /// Pause of the provider before each token, ms.
    pub token_interval_ms: u64,
    /// Time to first token straight from the provider.
    pub ttft_direct: Percentiles,
    /// Time to first token through the dispatcher, the queue and a worker.
    pub ttft_switchyard: Percentiles,
    /// Of `ttft_switchyard`: send → the worker wrote the first output entry (Redis id time;
    /// ms resolution): enqueue, pick-up, the provider's first token, the write.
    pub ttft_written: Percentiles,
    /// Of `ttft_switchyard`: that entry written → the client read it (ms resolution): the
    /// dispatcher's fan-out and the SSE write.
    pub ttft_delivered: Percentiles,
    /// `ttft_switchyard.p50 - ttft_direct.p50`, ms (target ≤ 2).
    pub ttft_overhead_p50_ms: f64,
    /// `ttft_switchyard.p99 - ttft_direct.p99`, ms (target ≤ 10).
    pub ttft_overhead_p99_ms: f64,
    /// Streams through switchyard that did not end with `done` carrying all the tokens.
    pub incomplete: usize,
    /// Tokens streamed through switchyard.
    pub tokens: u64,
    /// Redis commands over the switchyard run (all processes, `INFO commandstats`).
    pub redis_commands: u64,
    /// `redis_commands / tokens` (target ≤ 0.3).
    pub commands_per_token: f64,
    /// The commands of that run by name, most called first.
    pub commands_by_name: Vec<(String, u64)>,
    /// Streams held open at once for the memory figure.
    pub open_streams: usize,
    /// Dispatcher RSS before they opened, KiB.
    pub dispatcher_rss_before_kib: u64,
    /// Dispatcher RSS with all of them open, KiB.
    pub dispatcher_rss_open_kib: u64,
    /// Of the open streams, those that ended with `done` once a worker ran their tasks.
    pub open_streams_done: usize,
}

fn client(timeout: Duration) -> Result<reqwest::Client, BenchError> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()?)
}

/// When stream `i` of a run that began at `began` starts: one every [`TOKEN_INTERVAL`], so
/// that once the first ones end, [`STREAMS`] run at once (each lasts `TOKENS` intervals),
/// without a burst of connections all at the same instant.
fn arrival(began: Instant, i: usize) -> Instant {
    began + TOKEN_INTERVAL * i as u32
}

/// Reads `resp` until `found` holds for the text read so far; answers when (or `None` when the
/// body ended first), and the whole text.
async fn read_until(
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

/// `a - b` of two percentile summaries, at p50 and p99, ms.
pub fn overhead(via: &Percentiles, direct: &Percentiles) -> (f64, f64) {
    (via.p50_ms - direct.p50_ms, via.p99_ms - direct.p99_ms)
}
