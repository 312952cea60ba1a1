//! Commits each attempt's [`Outcome`] to Redis: successes through the [`Completer`], which fuses
//! concurrent completions into one `complete.lua` call per queue; failures, cancellations and
//! hand-backs through their own scripts. Every commit is fenced by the scripts and retried while
//! Redis is unreachable, so a result is never lost to a hiccup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use rand::SeedableRng;
use switchyard_shared::clock;
use switchyard_shared::metrics as m;
use switchyard_shared::retry::while_unavailable;
use switchyard_shared::scripts::{
    self, CompleteStatus, Completion, Delivered, FailMode, FailStatus, Failure, Started,
};
use switchyard_shared::store::StoreError;
use switchyard_shared::task::KNOWN_TOOLS;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::retry_delay;
use crate::context::Ctx;
use crate::executor::Outcome;

/// Most completions fused into one script call.
const MAX_BATCH: usize = 256;

struct Pending {
    queue: String,
    completion: Completion,
    done: oneshot::Sender<Result<CompleteStatus, String>>,
}

/// Hands outcomes to Redis.
#[derive(Debug, Clone)]
pub struct Reporter {
    ctx: Ctx,
    completions: mpsc::Sender<Pending>,
    give_up: CancellationToken,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.completion.id)
            .finish()
    }
}

/// Batches successful completions into `complete.lua` calls.
#[derive(Debug)]
pub struct Completer {
    ctx: Ctx,
    rx: mpsc::Receiver<Pending>,
    give_up: CancellationToken,
}

/// A reporter and the completer that serves it. `give_up` ends retries against an unreachable
/// Redis (the supervisor fires it only when the process must exit).
pub fn reporter(ctx: Ctx, give_up: CancellationToken) -> (Reporter, Completer) {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    (
        Reporter {
            ctx: ctx.clone(),
            completions: tx,
            give_up: give_up.clone(),
        },
        Completer { ctx, rx, give_up },
    )
}

impl Reporter {
    /// Commits `outcome` of `task` (on `queue`), which ran for `ran`, and records its metrics.
    pub async fn report(&self, queue: &str, task: &Started, outcome: Outcome, ran: Duration) {
        let what = task_label(task);
        let llm = match &outcome {
            Outcome::Done(v) if what == "chat" => llm_usage(v),
            _ => None,
        };
        let label = self.commit(queue, task, outcome, ran).await;
        counter!(m::WORKER_ATTEMPTS, "queue" => queue.to_owned(), "outcome" => label).increment(1);
        histogram!(m::WORKER_RUN_TIME, "queue" => queue.to_owned(), "task" => what)
            .record(ran.as_secs_f64());
        if let Some(u) = llm.filter(|_| label == "succeeded") {
            let labels = [("provider", u.provider), ("model", u.model)];
            counter!(m::LLM_REQUESTS, &labels).increment(1);
            // The chat attempt's run time: the provider call plus the session read and write.
            histogram!(m::LLM_LATENCY, &labels).record(ran.as_secs_f64());
            let [p, mo] = labels;
            counter!(m::LLM_TOKENS, "provider" => p.1.clone(), "model" => mo.1.clone(), "type" => "prompt")
                .increment(u.prompt_tokens);
            counter!(m::LLM_TOKENS, "provider" => p.1, "model" => mo.1, "type" => "completion")
                .increment(u.completion_tokens);
        }
    }

    /// Commits `outcome` and answers its label for the metrics.
    async fn commit(
        &self,
        queue: &str,
        task: &Started,
        outcome: Outcome,
        ran: Duration,
    ) -> &'static str {
        let ctx = &self.ctx;
        let duration_ms = ran.as_millis() as u64;
        let (id, attempt) = (task.id.as_str(), task.attempts);
        let entry = task.entry.as_str();
        fn failure<'a>(
            queue: &'a str,
            entry: &'a str,
            id: &'a str,
            error: &'a str,
            mode: FailMode,
        ) -> Failure<'a> {
            Failure {
                queue,
                entry,
                id,
                error,
                mode,
            }
        }
        let result = match outcome {
            Outcome::Done(value) => {
                let (done, rx) = oneshot::channel();
                let pending = Pending {
                    queue: queue.to_owned(),
                    completion: Completion {
                        entry: task.entry.clone(),
                        id: id.to_owned(),
                        result: value.to_string(),
                    },
                    done,
                };
                if self.completions.send(pending).await.is_err() {
                    warn!(
                        task_id = id,
                        queue, "completer stopped; result left for the reclaimer"
                    );
                    return "error";
                }
                match rx.await {
                    Ok(Ok(CompleteStatus::Succeeded)) => {
                        ctx.count(true);
                        info!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "succeeded", "task succeeded");
                        return "succeeded";
                    }
                    Ok(Ok(CompleteStatus::Fenced)) => Ok("fenced"),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("completer dropped the result".to_owned()),
                }
            }
            Outcome::Retry(error) => {
                let delay = retry_delay(
                    attempt,
                    ctx.cfg.retry_base,
                    ctx.cfg.retry_max,
                    &mut rand::rngs::StdRng::from_os_rng(),
                );
                let due_ms = clock::now_ms() + delay.as_millis() as u64;
                let status = self
                    .fail(&failure(
                        queue,
                        entry,
                        id,
                        &error,
                        FailMode::Retry { due_ms },
                    ))
                    .await;
                if let Ok(FailStatus::Retrying) = status {
                    info!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "retrying", retry_in_ms = delay.as_millis() as u64, error = %error, "task attempt failed; will retry");
                } else if let Ok(FailStatus::Dead) = status {
                    warn!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "dead", error = %error, "task dead-lettered: out of attempts");
                }
                ctx.count(false);
                status.map(fail_label)
            }
            Outcome::Fail(error) => {
                ctx.count(false);
                let status = self
                    .fail(&failure(queue, entry, id, &error, FailMode::Fail))
                    .await;
                if let Ok(FailStatus::Failed) = status {
                    warn!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "failed", error = %error, "task failed permanently");
                }
                status.map(fail_label)
            }
            Outcome::Cancelled => {
                let status = self
                    .fail(&failure(
                        queue,
                        entry,
                        id,
                        "cancelled on request",
                        FailMode::Cancel,
                    ))
                    .await;
                if let Ok(FailStatus::Cancelled) = status {
                    info!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "cancelled", "task cancelled while running");
                }
                status.map(fail_label)
            }
            Outcome::HandBack => {
                let d = Delivered {
                    entry: task.entry.clone(),
                    id: id.to_owned(),
                };
                let status = while_unavailable("requeue", &self.give_up, || async {
                    let mut con = ctx.pool.get().await?;
                    scripts::requeue(&mut *con, &ctx.keys, queue, &ctx.id, &d).await
                })
                .await;
                info!(task_id = id, queue, worker = %ctx.id, attempt, state = "queued", "task handed back on shutdown");
                status.map(|_| "handed_back").map_err(|e| e.to_string())
            }
            Outcome::Abandon => Ok("abandoned"),
        };
        match result {
            Ok("fenced") => {
                warn!(task_id = id, queue, worker = %ctx.id, attempt, "late completion dropped: the entry was reclaimed by another worker");
                "fenced"
            }
            Ok(label) => label,
            Err(e) => {
                warn!(task_id = id, queue, worker = %ctx.id, attempt, error = %e, "could not record the outcome; the entry stays pending for the reclaimer");
                "error"
            }
        }
    }

    async fn fail(&self, f: &Failure<'_>) -> Result<FailStatus, String> {
        let ctx = &self.ctx;
        while_unavailable("fail", &self.give_up, || async {
            let mut con = ctx.pool.get().await?;
            let now = clock::now_rfc3339();
            scripts::fail(&mut *con, &ctx.keys, &ctx.id, &now, &ctx.retention, f).await
        })
        .await
        .map_err(|e| e.to_string())
    }
}

fn fail_label(s: FailStatus) -> &'static str {
    match s {
        FailStatus::Retrying => "retrying",
        FailStatus::Dead => "dead",
        FailStatus::Failed => "failed",
        FailStatus::Cancelled => "cancelled",
        FailStatus::Fenced => "fenced",
    }
}

/// The metrics label of a task: `chat`, or its tool name (only known names, so a client cannot
/// grow the label set).
fn task_label(task: &Started) -> &'static str {
    if task.kind.as_deref() == Some("chat") {
        return "chat";
    }
    let tool = task
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| v.get("tool").and_then(|t| t.as_str()).map(str::to_owned));
    tool.and_then(|t| KNOWN_TOOLS.iter().find(|k| **k == t).copied())
        .unwrap_or("unknown")
}

struct LlmUsage {
    provider: String,
    model: String,
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn llm_usage(result: &serde_json::Value) -> Option<LlmUsage> {
    Some(LlmUsage {
        provider: result.get("provider")?.as_str()?.to_owned(),
        model: result.get("model")?.as_str()?.to_owned(),
        prompt_tokens: result.pointer("/usage/prompt_tokens")?.as_u64()?,
        completion_tokens: result.pointer("/usage/completion_tokens")?.as_u64()?,
    })
}

impl Completer {
    /// Commits batches until every [`Reporter`] is gone and the queue is drained.
    pub async fn run(mut self) {
        while self.tick().await {}
    }

    /// Waits for at least one completion, takes whatever else is already waiting (up to a
    /// batch), commits it, and answers each sender. Returns false once no reporter is left.
    pub async fn tick(&mut self) -> bool {
        let Some(first) = self.rx.recv().await else {
            return false;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut by_queue: HashMap<String, Vec<Pending>> = HashMap::new();
        for p in batch {
            by_queue.entry(p.queue.clone()).or_default().push(p);
        }
        for (queue, pendings) in by_queue {
            let started = Instant::now();
            let completions: Vec<Completion> =
                pendings.iter().map(|p| p.completion.clone()).collect();
            let ctx = &self.ctx;
            let result = while_unavailable("complete", &self.give_up, || async {
                let mut con = ctx.pool.get().await?;
                let now = clock::now_rfc3339();
                scripts::complete(
                    &mut *con,
                    &ctx.keys,
                    &queue,
                    &ctx.id,
                    &now,
                    &ctx.retention,
                    &completions,
                )
                .await
            })
            .await;
            answer(pendings, result, started);
        }
        true
    }
}

fn answer(
    pendings: Vec<Pending>,
    result: Result<Vec<scripts::Completed>, StoreError>,
    started: Instant,
) {
    match result {
        Ok(replies) => {
            let by_id: HashMap<String, CompleteStatus> =
                replies.into_iter().map(|c| (c.id, c.status)).collect();
            for p in pendings {
                let status = by_id
                    .get(&p.completion.id)
                    .copied()
                    .ok_or_else(|| "complete.lua did not answer for this task".to_owned());
                let _ = p.done.send(status);
            }
            tracing::trace!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "batch committed"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            for p in pendings {
                let _ = p.done.send(Err(msg.clone()));
            }
        }
    }
}
