//! Starting delivered entries (`start.lua`): each becomes running under the consumer that holds
//! it, is skipped (acked and dropped), or is dead-lettered when its attempts were used up by lost
//! workers. The answer is decoded here, once, into a [`Started`] per entry: a run carries its
//! task kind and parsed payload, so no caller reads the record's text again.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use super::{BatchCall, Delivered};
use crate::store::StoreError;
use crate::task::TaskKind;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("start.lua")));

/// What start decided for one entry, without the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartStatus {
    /// Now `running` under this consumer.
    Run,
    /// Dropped (acked and deleted): cancelled, finished, superseded or unknown.
    Skip,
    /// Its attempts were used up: dead-lettered.
    Dead,
}

/// Reply of [`start`] for one entry.
#[derive(Debug, Clone)]
pub enum Started {
    /// Now `running` under this consumer: the worker runs it.
    Run(Runnable),
    /// Dropped (acked and deleted): cancelled, finished, superseded or unknown.
    Skip {
        /// The entry and its task.
        delivered: Delivered,
        /// Why.
        reason: String,
    },
    /// Its attempts were used up: dead-lettered.
    Dead {
        /// The entry and its task.
        delivered: Delivered,
        /// Why (also the error recorded on the task).
        reason: String,
    },
}

impl Started {
    /// The decision alone.
    pub fn status(&self) -> StartStatus {
        match self {
            Self::Run(_) => StartStatus::Run,
            Self::Skip { .. } => StartStatus::Skip,
            Self::Dead { .. } => StartStatus::Dead,
        }
    }

    /// The entry this answer is about.
    pub fn delivered(&self) -> &Delivered {
        match self {
            Self::Run(r) => &r.delivered,
            Self::Skip { delivered, .. } | Self::Dead { delivered, .. } => delivered,
        }
    }
}

/// A task now running under this consumer.
#[derive(Debug, Clone)]
pub struct Runnable {
    /// The entry and its task.
    pub delivered: Delivered,
    /// This attempt's number, from 1.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The attempt's time limit; `None` when the record names none (the worker's default).
    pub timeout: Option<Duration>,
    /// The task was already running under this consumer (a re-sent start): not a new attempt.
    pub resumed: bool,
    /// What to run, or why the record cannot be run (the attempt then fails for good).
    pub work: Result<Work, String>,
}

/// What a runnable task asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// Chat or tool.
    pub kind: TaskKind,
    /// The payload, parsed.
    pub payload: serde_json::Value,
}

impl Work {
    /// The tool a tool task names, if any.
    pub fn tool(&self) -> Option<&str> {
        match self.kind {
            TaskKind::Tool => self.payload.get("tool").and_then(|t| t.as_str()),
            TaskKind::Chat => None,
        }
    }
}

/// Marks a batch of delivered entries of `call.queue` running under `call.consumer`: `start.lua`.
pub async fn start<C: ConnectionLike>(
    con: &mut C,
    call: &BatchCall<'_>,
    batch: &[Delivered],
) -> Result<Vec<Started>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let (keys, queue) = (call.keys, call.queue);
    let entries = batch.iter().map(|d| d.entry.as_str());
    let mut inv = call.invocation(&SCRIPT, &[keys.dead(queue)], entries);
    for d in batch {
        inv.key(keys.task(queue, &d.id)).arg(&d.entry).arg(&d.id);
    }
    let reply: Vec<Value> = inv.invoke_async(con).await?;
    decode(batch, reply).map_err(|message| StoreError::Reply {
        script: "start",
        message,
    })
}

/// Decodes `start.lua`'s flat answer: one record per entry of `batch`, in its order, each led
/// by its status (`run` and six fields, or `skip`/`dead` and a reason).
fn decode(batch: &[Delivered], reply: Vec<Value>) -> Result<Vec<Started>, String> {
    let mut fields = reply.into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for d in batch {
        let delivered = d.clone();
        let started = match text(fields.next(), "a status")?.as_deref() {
            Some("run") => Started::Run(decode_run(delivered, &mut fields)?),
            Some("skip") => Started::Skip {
                delivered,
                reason: reason(fields.next())?,
            },
            Some("dead") => Started::Dead {
                delivered,
                reason: reason(fields.next())?,
            },
            other => return Err(format!("entry {}: unknown status {other:?}", d.entry)),
        };
        out.push(started);
    }
    match fields.next() {
        None => Ok(out),
        Some(extra) => Err(format!(
            "more answers than the {} entries given: {extra:?}",
            batch.len()
        )),
    }
}

/// The six fields after `run`: kind, payload, attempts, max_attempts, timeout_ms, resumed.
fn decode_run(
    delivered: Delivered,
    fields: &mut impl Iterator<Item = Value>,
) -> Result<Runnable, String> {
    let kind = text(fields.next(), "kind")?;
    let payload = text(fields.next(), "payload")?;
    let attempts = number(fields.next(), "attempts")?;
    let max_attempts = number(fields.next(), "max_attempts")?;
    let timeout_ms: u64 = number(fields.next(), "timeout_ms")?;
    let resumed = number::<u8>(fields.next(), "resumed")? == 1;
    Ok(Runnable {
        delivered,
        attempts,
        max_attempts,
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
        resumed,
        work: work(kind, payload),
    })
}

/// What the record asks to run. A record the dispatcher did not write (no payload, an unknown
/// kind) is not a reply error: the task started, and its attempt fails for good with this text.
fn work(kind: Option<String>, payload: Option<String>) -> Result<Work, String> {
    let payload = match payload.as_deref().map(serde_json::from_str) {
        Some(Ok(v)) => v,
        _ => return Err("task record holds no valid payload".to_owned()),
    };
    match kind.as_deref().and_then(TaskKind::parse) {
        Some(kind) => Ok(Work { kind, payload }),
        None => Err(format!("task record has unknown kind {kind:?}")),
    }
}

fn text(v: Option<Value>, what: &str) -> Result<Option<String>, String> {
    match v {
        None => Err(format!("the answer ends before {what}")),
        Some(Value::Nil) => Ok(None),
        Some(v) => redis::from_redis_value(v)
            .map(Some)
            .map_err(|e| format!("{what}: {e}")),
    }
}

/// A skip's or dead-letter's reason; the script always gives one.
fn reason(v: Option<Value>) -> Result<String, String> {
    text(v, "reason")?.ok_or_else(|| "reason: missing".to_owned())
}

fn number<T: redis::FromRedisValue>(v: Option<Value>, what: &str) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("the answer ends before {what}"))?;
    redis::from_redis_value(v).map_err(|e| format!("{what}: {e}"))
}
