//! Starting entries that may have a task hash (`start.lua`): reference entries and reclaimed
//! ones. Each runs under the consumer that holds it, is skipped (acked and dropped), or is
//! dead-lettered when its attempts were used up by lost workers. The answer is decoded here,
//! once, into a [`Started`] per entry: a run carries its task kind and parsed payload, so no
//! caller reads the record's text again. A fresh entry delivered once skips the script:
//! [`Runnable::fresh`] makes its run from the entry alone.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use super::{BatchCall, Delivered};
use crate::record::{Entry, QueuedTask};
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
    /// What to run, or why the record cannot be run (the attempt then fails for good).
    pub work: Result<Work, String>,
    /// The queued record when no hash holds it yet (a task born in its stream): the hash the
    /// end of the attempt writes gets all of it. `None` when the hash holds the record.
    pub record: Option<Arc<QueuedTask>>,
    /// When this attempt started (RFC 3339), written with its outcome.
    pub started_at: String,
    /// The tenant whose key submitted it (`None`: the admin key), for its quotas.
    pub tenant: Option<String>,
}

impl Runnable {
    /// The first attempt of a fresh entry, delivered once, that carries its whole record: no
    /// hash exists, so nothing needs deciding or writing before it runs.
    pub fn fresh(entry: String, q: QueuedTask, started_at: String) -> Self {
        Self::from_entry(entry, q, 1, started_at)
    }

    fn from_entry(entry: String, q: QueuedTask, attempts: u32, started_at: String) -> Self {
        Self {
            delivered: Delivered {
                entry,
                id: q.id.clone(),
            },
            attempts,
            max_attempts: q.max_attempts,
            timeout: (q.timeout_ms > 0).then(|| Duration::from_millis(q.timeout_ms)),
            work: work(Some(q.kind.as_str().to_owned()), Some(q.payload.clone())),
            tenant: q.tenant.clone(),
            record: Some(Arc::new(q)),
            started_at,
        }
    }

    /// The record's fields to write with the outcome: all of them when no hash holds them yet,
    /// none otherwise.
    pub fn record_fields(&self) -> Vec<(&'static str, String)> {
        self.record
            .as_deref()
            .map(QueuedTask::record_fields)
            .unwrap_or_default()
    }
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

/// Starts a batch of delivered entries of `call.queue` under `call.consumer`: `start.lua`.
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
    decode(call, batch, reply).map_err(|message| StoreError::Reply {
        script: "start",
        message,
    })
}

/// Decodes `start.lua`'s flat answer: one record per entry of `batch`, in its order, each led
/// by its status (`run` and its fields, or `skip`/`dead` and a reason).
fn decode(
    call: &BatchCall<'_>,
    batch: &[Delivered],
    reply: Vec<Value>,
) -> Result<Vec<Started>, String> {
    let mut fields = reply.into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for d in batch {
        let delivered = d.clone();
        let started = match text(fields.next(), "a status")?.as_deref() {
            Some("run") => Started::Run(decode_run(call, delivered, &mut fields)?),
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

/// The fields after `run`: attempts, then `hash` and kind, payload, max_attempts, timeout_ms,
/// tenant, or `entry` and the entry's fields.
fn decode_run(
    call: &BatchCall<'_>,
    delivered: Delivered,
    fields: &mut impl Iterator<Item = Value>,
) -> Result<Runnable, String> {
    let attempts = number(fields.next(), "attempts")?;
    let started_at = call.now.to_owned();
    if text(fields.next(), "source")?.as_deref() == Some("entry") {
        let entry: HashMap<String, String> = number(fields.next(), "entry fields")?;
        return Ok(match Entry::decode(call.queue, &delivered.entry, entry) {
            Ok(Entry::Fresh(q)) if q.id == delivered.id => {
                Runnable::from_entry(delivered.entry, q, attempts, started_at)
            }
            // Not what a dispatcher writes: the attempt fails for good with this text.
            other => Runnable {
                delivered,
                attempts,
                max_attempts: attempts,
                timeout: None,
                work: Err(format!("the task's entry holds no valid record: {other:?}")),
                record: None,
                started_at,
                tenant: None,
            },
        });
    }
    let kind = text(fields.next(), "kind")?;
    let payload = text(fields.next(), "payload")?;
    let max_attempts = number(fields.next(), "max_attempts")?;
    let timeout_ms: u64 = number(fields.next(), "timeout_ms")?;
    let tenant = text(fields.next(), "tenant")?;
    Ok(Runnable {
        delivered,
        attempts,
        max_attempts,
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
        work: work(kind, payload),
        record: None,
        started_at,
        tenant,
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
