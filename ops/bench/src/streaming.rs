//! The streaming phase (issue 17): time to first token through switchyard against straight from
//! the same local provider server, with many concurrent streams; Redis commands per streamed
//! token; and the dispatcher's RSS while it holds a thousand open streams.
//!
//! Time to first token is measured from sending the request to the first text: a `delta` event
//! of `POST /api/chat` with `"stream": true`, the first `content` chunk of `POST
//! /v1/chat/completions` with `stream: true`, or the first `content` chunk of the provider's own
//! OpenAI-format SSE answer. Both runs start one stream every 5 ms over keep-alive
//! connections, so 200 run at once once the first ones end (each lasts 200 tokens × 5 ms),
//! and the two distributions are compared percentile by percentile (the overhead is their
//! difference).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;
use switchyard_tests::provider_server::{ProviderServer, Reply};

use crate::error::BenchError;
use crate::info::Snapshot;
use crate::percentile::Percentiles;
use crate::procs::Rss;
use crate::services::Launcher;
use crate::stream_load::{OpenStreams, direct_ttft, switchyard_ttft};
use crate::v1_load::v1_ttft;

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
    // The same streams through the OpenAI-compatible front door.
    v1_ttft(&url, &secret, WARMUP, &expected).await?;
    let v1 = v1_ttft(&url, &secret, SAMPLES, &expected).await?;
    let v1_incomplete = v1.incomplete;
    let via_v1 = Percentiles::from_micros(v1.ttft_us);
    let (v1_p50, v1_p99) = overhead(&via_v1, &direct);
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
        ttft_v1: via_v1,
        ttft_v1_overhead_p50_ms: v1_p50,
        ttft_v1_overhead_p99_ms: v1_p99,
        v1_incomplete,
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
    /// Time to first content through `POST /v1/chat/completions` (`stream: true`).
    pub ttft_v1: Percentiles,
    /// `ttft_v1.p50 - ttft_direct.p50`, ms (target ≤ 2, as for `/api`).
    pub ttft_v1_overhead_p50_ms: f64,
    /// `ttft_v1.p99 - ttft_direct.p99`, ms (target ≤ 10).
    pub ttft_v1_overhead_p99_ms: f64,
    /// `/v1` streams that did not end with `[DONE]` after the whole answer.
    pub v1_incomplete: usize,
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

/// `a - b` of two percentile summaries, at p50 and p99, ms.
pub fn overhead(via: &Percentiles, direct: &Percentiles) -> (f64, f64) {
    (via.p50_ms - direct.p50_ms, via.p99_ms - direct.p99_ms)
}
