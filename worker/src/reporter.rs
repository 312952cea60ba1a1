//! Commits each attempt's [`Outcome`] to Redis: successes through the [`Completer`], which fuses
//! concurrent completions into one `complete.lua` call per queue; failures, cancellations and
//! hand-backs through their own scripts. Every commit is fenced by the scripts and retried while
//! Redis is unreachable, so a result is never lost to a hiccup.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, histogram};
use rand::SeedableRng;
use serde_json::Value;
use switchyard_shared::clock;
use switchyard_shared::lane;
use switchyard_shared::metrics as m;
use switchyard_shared::retry::while_unavailable;
use switchyard_shared::scripts::{
    self, CompleteStatus, Completion, FailMode, FailStatus, Failure, Runnable,
};
use switchyard_shared::task::{KNOWN_TOOLS, TaskKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::retry_delay;
use crate::completer::{Completer, MAX_BATCH, Pending};
use crate::context::Ctx;
use crate::executor::Outcome;

/// Hands outcomes to Redis.
#[derive(Debug, Clone)]
pub struct Reporter {
    ctx: Ctx,
    completions: mpsc::Sender<Pending>,
    give_up: CancellationToken,
    /// The models this worker serves: the only `model` labels of the LLM metrics.
    served: Arc<[String]>,
}

/// A reporter and the completer that serves it. `give_up` ends retries against an unreachable
/// Redis (the supervisor fires it only when the process must exit).
pub fn reporter(ctx: Ctx, give_up: CancellationToken) -> (Reporter, Completer) {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    (
        Reporter {
            served: ctx.cfg.llm.served_models().into(),
            ctx: ctx.clone(),
            completions: tx,
            give_up: give_up.clone(),
        },
        Completer::new(ctx, rx, give_up),
    )
}

/// The attempt being committed: what every log line of a commit names.
struct Attempt<'a> {
    queue: &'a str,
    task: &'a Runnable,
    duration_ms: u64,
}

impl Attempt<'_> {
    fn id(&self) -> &str {
        &self.task.delivered.id
    }

    fn failure<'a>(&'a self, error: &'a str, mode: FailMode) -> Failure<'a> {
        Failure {
            queue: self.queue,
            task: self.task,
            error,
            mode,
        }
    }
}

/// A commit's label for the metrics, or why it could not be recorded.
type Committed = Result<&'static str, String>;

impl Reporter {
    /// Commits `outcome` of `task` (on `queue`), which ran for `ran`, and records its metrics.
    pub async fn report(&self, queue: &str, task: &Runnable, outcome: Outcome, ran: Duration) {
        let what = task_label(task);
        let llm = match &outcome {
            Outcome::Done(v) if what == "chat" => llm_usage(v, task, &self.served),
            _ => None,
        };
        let label = self.commit(queue, task, outcome, ran).await;
        counter!(m::WORKER_ATTEMPTS, "queue" => lane::queue_part(queue).to_owned(), "outcome" => label).increment(1);
        histogram!(m::WORKER_RUN_TIME, "queue" => lane::queue_part(queue).to_owned(), "task" => what)
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
        task: &Runnable,
        outcome: Outcome,
        ran: Duration,
    ) -> &'static str {
        let a = Attempt {
            queue,
            task,
            duration_ms: ran.as_millis() as u64,
        };
        let committed = match outcome {
            Outcome::Done(value) => self.succeed(&a, &value).await,
            Outcome::Retry(error) => self.retry(&a, &error).await,
            Outcome::Fail(error) => self.fail_for_good(&a, &error).await,
            Outcome::Cancelled => self.cancelled(&a).await,
            Outcome::HandBack => self.hand_back(&a).await,
            Outcome::Abandon => Ok("abandoned"),
        };
        let (ctx, id, attempt) = (&self.ctx, a.id(), task.attempts);
        match committed {
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

    /// Hands the result to the completer and waits for its commit.
    async fn succeed(&self, a: &Attempt<'_>, value: &Value) -> Committed {
        let (ctx, id, queue) = (&self.ctx, a.id(), a.queue);
        let (done, rx) = oneshot::channel();
        let pending = Pending {
            queue: queue.to_owned(),
            completion: Completion {
                entry: a.task.delivered.entry.clone(),
                id: id.to_owned(),
                result: value.to_string(),
                attempts: a.task.attempts,
                started_at: a.task.started_at.clone(),
                record: a.task.record.clone(),
            },
            done,
        };
        if self.completions.send(pending).await.is_err() {
            warn!(
                task_id = id,
                queue, "completer stopped; result left for the reclaimer"
            );
            return Ok("error");
        }
        match rx.await {
            Ok(Ok(CompleteStatus::Succeeded)) => {
                ctx.count(true);
                let (attempt, duration_ms) = (a.task.attempts, a.duration_ms);
                info!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "succeeded", "task succeeded");
                Ok("succeeded")
            }
            Ok(Ok(CompleteStatus::Fenced)) => Ok("fenced"),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("completer dropped the result".to_owned()),
        }
    }

    /// A failure worth another attempt: retried after a backoff, or dead-lettered.
    async fn retry(&self, a: &Attempt<'_>, error: &str) -> Committed {
        let (ctx, id, queue) = (&self.ctx, a.id(), a.queue);
        let (attempt, duration_ms) = (a.task.attempts, a.duration_ms);
        let delay = retry_delay(
            attempt,
            ctx.cfg.retry_base,
            ctx.cfg.retry_max,
            &mut rand::rngs::StdRng::from_os_rng(),
        );
        let due_ms = clock::now_ms() + delay.as_millis() as u64;
        let status = self
            .fail(&a.failure(error, FailMode::Retry { due_ms }))
            .await;
        if let Ok(FailStatus::Retrying) = status {
            info!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "retrying", retry_in_ms = delay.as_millis() as u64, error = %error, "task attempt failed; will retry");
        } else if let Ok(FailStatus::Dead) = status {
            warn!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "dead", error = %error, "task dead-lettered: out of attempts");
        }
        ctx.count(false);
        status.map(fail_label)
    }

    /// A failure no retry can fix.
    async fn fail_for_good(&self, a: &Attempt<'_>, error: &str) -> Committed {
        let (ctx, id, queue) = (&self.ctx, a.id(), a.queue);
        let (attempt, duration_ms) = (a.task.attempts, a.duration_ms);
        ctx.count(false);
        let status = self.fail(&a.failure(error, FailMode::Fail)).await;
        if let Ok(FailStatus::Failed) = status {
            warn!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "failed", error = %error, "task failed permanently");
        }
        status.map(fail_label)
    }

    /// An attempt aborted on a cancel request.
    async fn cancelled(&self, a: &Attempt<'_>) -> Committed {
        let (ctx, id, queue) = (&self.ctx, a.id(), a.queue);
        let (attempt, duration_ms) = (a.task.attempts, a.duration_ms);
        let status = self
            .fail(&a.failure("cancelled on request", FailMode::Cancel))
            .await;
        if let Ok(FailStatus::Cancelled) = status {
            info!(task_id = id, queue, worker = %ctx.id, attempt, duration_ms, state = "cancelled", "task cancelled while running");
        }
        status.map(fail_label)
    }

    /// An attempt interrupted by shutdown: back to its queue now, not counted.
    async fn hand_back(&self, a: &Attempt<'_>) -> Committed {
        let (ctx, id, queue) = (&self.ctx, a.id(), a.queue);
        let d = &a.task.delivered;
        let status = while_unavailable("requeue", &self.give_up, || async {
            let mut con = ctx.pool.get().await?;
            scripts::requeue(&mut *con, &ctx.keys, queue, &ctx.id, d).await
        })
        .await;
        info!(task_id = id, queue, worker = %ctx.id, attempt = a.task.attempts, state = "queued", "task handed back on shutdown");
        status.map(|_| "handed_back").map_err(|e| e.to_string())
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
fn task_label(task: &Runnable) -> &'static str {
    match &task.work {
        Ok(w) if w.kind == TaskKind::Chat => "chat",
        Ok(w) => w
            .tool()
            .and_then(|t| KNOWN_TOOLS.iter().find(|k| **k == t).copied())
            .unwrap_or("unknown"),
        Err(_) => "unknown",
    }
}

struct LlmUsage {
    provider: String,
    model: String,
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// A chat result's metrics: the provider that answered, the model as a bounded label.
fn llm_usage(result: &Value, task: &Runnable, served: &[String]) -> Option<LlmUsage> {
    let r = switchyard_shared::chat::ChatResult::decode(result).ok()?;
    let asked = task.work.as_ref().ok().and_then(|w| {
        w.payload
            .get("model")
            .or_else(|| w.payload.pointer("/completion/model"))
            .and_then(Value::as_str)
    });
    Some(LlmUsage {
        provider: r.provider,
        model: model_label(served, &r.model, asked).to_owned(),
        prompt_tokens: r.usage.prompt_tokens,
        completion_tokens: r.usage.completion_tokens,
    })
}

/// The `model` label of a chat: the model that answered if this worker serves it, else the one
/// the task asked for if served (a provider often answers with a dated variant of the name),
/// else `other`. Model names come from clients: labelling them as they are would let any client
/// mint metric series without bound.
fn model_label<'a>(served: &'a [String], answered: &str, asked: Option<&str>) -> &'a str {
    [Some(answered), asked]
        .into_iter()
        .flatten()
        .find_map(|m| served.iter().find(|s| *s == m))
        .map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_come_from_the_served_models_only() {
        let served = vec!["gpt-4o".to_owned(), "echo-1".to_owned()];
        assert_eq!(model_label(&served, "echo-1", None), "echo-1");
        assert_eq!(
            model_label(&served, "gpt-4o-2024-08-06", Some("gpt-4o")),
            "gpt-4o",
            "a dated answer to a served name"
        );
        assert_eq!(
            model_label(&served, "made-up-123", Some("made-up-123")),
            "other"
        );
        assert_eq!(model_label(&served, "x", None), "other");
        assert_eq!(model_label(&[], "echo-1", Some("echo-1")), "other");
    }
}
