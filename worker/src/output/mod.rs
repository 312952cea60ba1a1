//! Writes one attempt's answer to the task's output stream (`{p}{q}:out:<id>`, format in
//! `switchyard_shared::output`) while the provider answers: text deltas and tool-call pieces, the
//! first piece of the attempt at once, later ones coalesced ([`buffer`]) until `OUTPUT_FLUSH_MS`
//! passed since the oldest unwritten one or `OUTPUT_FLUSH_BYTES` piled up, so Redis sees a few
//! writes per answer rather than one per token. Text and tool calls keep their order. The
//! attempt's end entry follows the last piece before the executor hands the outcome on.
//!
//! The stream's TTL is renewed on the attempt's first write, on its last, and when half of it
//! passed since the last renewal: a long answer cannot outlive its stream.
//!
//! A write that fails (Redis away) never fails the task: the text stays buffered and goes out
//! with the next write; the end write is retried for [`END_WRITE_PATIENCE`]. If Redis is still
//! away then, the stream keeps what was written before (no end entry) and the task's record,
//! committed by the reporter as usual, holds the whole answer.

pub mod buffer;

use std::time::{Duration, Instant};

use switchyard_shared::Pool;
use switchyard_shared::output::{self, AttemptEnd, Entry};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::providers::{Deltas, Sink};
use buffer::Buffer;

/// How long the end write is retried while Redis is away before the stream is left without it.
pub const END_WRITE_PATIENCE: Duration = Duration::from_secs(5);

/// How an output stream is written.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    /// `OUTPUT_FLUSH_MS`: longest an unwritten delta waits (after the first).
    pub flush_interval: Duration,
    /// `OUTPUT_FLUSH_BYTES`: unwritten text (and tool-call arguments) written without waiting.
    pub flush_bytes: usize,
    /// `RESULT_TTL`: the stream expires this long after its last renewal.
    pub ttl: Duration,
    /// Approximate cap of the stream in entries.
    pub maxlen: u64,
}

/// The output stream writer of one running attempt.
#[derive(Debug)]
pub struct OutputWriter {
    end: oneshot::Sender<AttemptEnd>,
    task: JoinHandle<Stats>,
}

/// What a writer did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Round trips that succeeded.
    pub writes: u64,
    /// Redis commands they carried (XADDs and PEXPIREs).
    pub commands: u64,
    /// Round trips that failed.
    pub failed: u64,
}

impl OutputWriter {
    /// Starts the writer of `attempt` into the stream `key`; the provider sends to the [`Sink`].
    pub fn start(pool: Pool, key: String, attempt: u32, settings: OutputSettings) -> (Self, Sink) {
        let (sink, deltas) = Sink::channel();
        let (end, end_rx) = oneshot::channel();
        let flusher = Flusher {
            pool,
            key,
            attempt,
            settings,
            unwritten: Buffer::default(),
            tried: false,
            renewed: None,
            warned: false,
            stats: Stats::default(),
        };
        let task = tokio::spawn(flusher.run(deltas, end_rx));
        (Self { end, task }, sink)
    }

    /// Writes what is left and the attempt's end entry, then returns. `None` (the task now
    /// belongs to another worker) stops the writer without an end entry.
    pub async fn finish(self, end: Option<AttemptEnd>) -> Stats {
        match end {
            Some(end) => {
                let _ = self.end.send(end);
                self.task.await.unwrap_or_default()
            }
            None => {
                self.task.abort();
                Stats::default()
            }
        }
    }
}

struct Flusher {
    pool: Pool,
    key: String,
    attempt: u32,
    settings: OutputSettings,
    /// Pieces received and not yet written (also after a failed write).
    unwritten: Buffer,
    /// Whether a write was tried: the first delta of an attempt does not wait.
    tried: bool,
    /// When the TTL was last renewed.
    renewed: Option<Instant>,
    warned: bool,
    stats: Stats,
}

impl Flusher {
    async fn run(mut self, mut deltas: Deltas, mut end: oneshot::Receiver<AttemptEnd>) -> Stats {
        let mut open = true;
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                delta = deltas.recv(), if open => match delta {
                    Some(piece) => {
                        self.unwritten.push(piece);
                        if !self.tried || self.unwritten.bytes() >= self.settings.flush_bytes {
                            self.write(None).await;
                            due = None;
                        }
                    }
                    // The provider call ended (or was aborted): only the end is left to wait for.
                    None => open = false,
                },
                outcome = &mut end => {
                    while let Ok(piece) = deltas.try_recv() {
                        self.unwritten.push(piece);
                    }
                    if let Ok(outcome) = outcome {
                        self.write_end(outcome).await;
                    }
                    return self.stats;
                }
                () = sleep_until(due), if due.is_some() => {
                    self.write(None).await;
                    due = None;
                }
            }
            if !self.unwritten.is_empty() && due.is_none() {
                due = Some(tokio::time::Instant::now() + self.settings.flush_interval);
            }
        }
    }

    /// The end entry with the text still unwritten, retried while Redis is away.
    async fn write_end(&mut self, outcome: AttemptEnd) {
        let give_up = Instant::now() + END_WRITE_PATIENCE;
        let mut pause = Duration::from_millis(50);
        while !self.write(Some(outcome)).await {
            if Instant::now() + pause > give_up {
                warn!(component = "output", key = %self.key, attempt = self.attempt, unwritten_bytes = self.unwritten.bytes(), "output stream left without its end entry: Redis unavailable; the task result holds the whole answer");
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// One round trip: the unwritten pieces as their entries, then `end` if given. Returns
    /// whether it was written.
    async fn write(&mut self, end: Option<AttemptEnd>) -> bool {
        self.tried = true;
        let mut entries = self.unwritten.entries(self.attempt);
        if let Some(end) = end {
            entries.push(Entry::End {
                attempt: self.attempt,
                end,
            });
        }
        if entries.is_empty() {
            return true;
        }
        let ttl = self.settings.ttl;
        let renew = end.is_some() || self.renewed.is_none_or(|t| t.elapsed() >= ttl / 2);
        let result = async {
            let mut con = self.pool.get().await.map_err(|e| e.to_string())?;
            output::append(
                &mut *con,
                &self.key,
                &entries,
                self.settings.maxlen,
                renew.then_some(ttl),
            )
            .await
            .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                self.unwritten.clear();
                if renew {
                    self.renewed = Some(Instant::now());
                }
                self.stats.writes += 1;
                self.stats.commands += entries.len() as u64 + u64::from(renew);
                true
            }
            Err(e) => {
                self.stats.failed += 1;
                if self.warned {
                    debug!(component = "output", key = %self.key, error = %e, "output write failed again");
                } else {
                    self.warned = true;
                    warn!(component = "output", key = %self.key, attempt = self.attempt, error = %e, "output write failed; the text stays buffered for the next write");
                }
                false
            }
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
