//! Runs one started task to exactly one [`Outcome`]: its result, an error (retryable or not), a
//! timeout, a cancel request, shutdown, or the loss of its lease. A panicking task is an error
//! worth a retry, never a crashed worker. A chat task's text streams to its output stream while
//! it runs; the attempt's end entry is written before the outcome is handed on. Stopping a task
//! drops its future, and with it any provider request in flight (its connection is closed).

use serde_json::Value;
use switchyard_shared::scripts::Runnable;
use switchyard_shared::task::TaskKind;

use crate::chat;
use crate::context::{Ctx, InFlight, StopReason};
use crate::output::{OutputSettings, OutputWriter};
use crate::providers::{Provider, Sink};
use std::sync::Arc;
use switchyard_shared::output::{AttemptEnd, DEFAULT_MAXLEN};

use crate::limiter::TENANT;
use crate::quota::Quotas;
use crate::tools::{ToolError, Toolbox};

/// How an attempt ended; the reporter acts on this alone.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished with this result.
    Done(Value),
    /// Failed in a way worth another attempt.
    Retry(String),
    /// Failed for good.
    Fail(String),
    /// Aborted on a cancel request.
    Cancelled,
    /// Interrupted by shutdown: hand it back to the queue now.
    HandBack,
    /// Its entry belongs to another worker now: record nothing.
    Abandon,
}

/// Runs tasks with the configured provider.
#[derive(Debug, Clone)]
pub struct Executor {
    ctx: Ctx,
    provider: Provider,
    toolbox: Arc<Toolbox>,
    quotas: Quotas,
}

impl Executor {
    /// An executor for tasks of this worker, with the tools it serves.
    pub fn new(ctx: Ctx, provider: Provider, toolbox: Toolbox) -> Self {
        Self {
            ctx,
            provider,
            toolbox: Arc::new(toolbox),
            quotas: Quotas::off(),
        }
    }

    /// The same executor, holding each task to its tenant's `max_running` and `tpm`.
    pub fn with_quotas(self, quotas: Quotas) -> Self {
        Self { quotas, ..self }
    }

    /// Runs `task` until it ends, is timed out, or `flight` is stopped.
    pub async fn execute(&self, task: &Runnable, flight: &InFlight) -> Outcome {
        let (kind, payload) = match &task.work {
            Ok(work) => (work.kind, work.payload.clone()),
            Err(why) => return Outcome::Fail(why.clone()),
        };
        let timeout = task.timeout.unwrap_or(self.ctx.cfg.worker_timeout);
        // A task of a tenant at its max_running waits here (not failed, its attempt not yet
        // timed), stoppable like a running one.
        let entry = tokio::select! {
            e = self.quotas.enter(task.tenant.as_deref(), &task.delivered.id) => e,
            () = flight.stop.cancelled() => return stopped(flight),
        };
        let budget = entry.budget.clone();
        let (writer, sink) = match kind {
            TaskKind::Chat => {
                let (w, s) = OutputWriter::start(
                    self.ctx.pool.clone(),
                    self.ctx.keys.output(&flight.queue, &task.delivered.id),
                    task.attempts,
                    self.output_settings(),
                );
                (Some(w), s)
            }
            TaskKind::Tool => (None, Sink::discard()),
        };
        let (ctx, provider, toolbox, id) = (
            self.ctx.clone(),
            self.provider.clone(),
            self.toolbox.clone(),
            task.delivered.id.clone(),
        );
        // Its own tokio task, so a panic surfaces as a JoinError instead of unwinding the worker.
        let mut handle = tokio::spawn(async move {
            let run = async {
                match kind {
                    TaskKind::Tool => toolbox.run(&payload).await,
                    TaskKind::Chat => chat::run(&ctx, &provider, &id, &payload, &sink).await,
                }
            };
            match budget {
                Some(b) => TENANT.scope(b, run).await,
                None => run.await,
            }
        });
        let outcome = tokio::select! {
            joined = &mut handle => match joined {
                Ok(Ok(v)) => Outcome::Done(v),
                Ok(Err(ToolError::Retryable(m))) => Outcome::Retry(m),
                Ok(Err(ToolError::Permanent(m))) => Outcome::Fail(m),
                Err(e) if e.is_panic() => Outcome::Retry(format!("task panicked: {}", panic_text(e))),
                Err(e) => Outcome::Retry(format!("task aborted: {e}")),
            },
            () = tokio::time::sleep(timeout) => {
                handle.abort();
                Outcome::Retry(format!("timed out after {} ms", timeout.as_millis()))
            }
            () = flight.stop.cancelled() => {
                handle.abort();
                stopped(flight)
            }
        };
        self.quotas.leave(entry).await;
        if let Some(writer) = writer {
            let end = match &outcome {
                Outcome::Done(_) => Some(AttemptEnd::Finished),
                // Another worker owns the task now and writes its own attempt.
                Outcome::Abandon => None,
                _ => Some(AttemptEnd::Failed),
            };
            writer.finish(end).await;
        }
        outcome
    }

    fn output_settings(&self) -> OutputSettings {
        OutputSettings {
            flush_interval: self.ctx.cfg.output_flush,
            flush_bytes: self.ctx.cfg.output_flush_bytes,
            ttl: self.ctx.retention.result_ttl,
            maxlen: DEFAULT_MAXLEN,
        }
    }
}

/// The outcome of a task stopped early, by why.
fn stopped(flight: &InFlight) -> Outcome {
    match flight.stop_reason() {
        Some(StopReason::Cancelled) => Outcome::Cancelled,
        Some(StopReason::LeaseLost) => Outcome::Abandon,
        Some(StopReason::Shutdown) | None => Outcome::HandBack,
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}
