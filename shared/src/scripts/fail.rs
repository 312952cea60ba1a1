//! Recording a failed attempt under fencing (`fail.lua`): retried after a backoff,
//! dead-lettered when out of attempts, failed for good, or cancelled.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;

use super::{Retention, Runnable, StatusReply, decode};
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fail.lua")));

/// How a failed attempt should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Retry at the given due time (ms), or dead-letter if out of attempts.
    Retry {
        /// Due time, ms since the epoch.
        due_ms: u64,
    },
    /// Permanent failure.
    Fail,
    /// Aborted on a cancel request.
    Cancel,
}

/// What [`fail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailStatus {
    /// Waiting out its backoff.
    Retrying,
    /// Dead-lettered.
    Dead,
    /// Failed permanently.
    Failed,
    /// Cancelled.
    Cancelled,
    /// The entry is no longer this consumer's: nothing written.
    Fenced,
}

/// The attempt that failed.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// Queue.
    pub queue: &'a str,
    /// The attempt that failed: its entry, task id, number, start and record.
    pub task: &'a Runnable,
    /// Error text recorded on the task.
    pub error: &'a str,
    /// What to do with it.
    pub mode: FailMode,
}

/// Records a failed attempt under fencing: `fail.lua`.
pub async fn fail<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    consumer: &str,
    now: &str,
    retention: &Retention,
    f: &Failure<'_>,
) -> Result<FailStatus, StoreError> {
    let q = f.queue;
    let (mode, due) = match f.mode {
        FailMode::Retry { due_ms } => ("retry", due_ms),
        FailMode::Fail => ("fail", 0),
        FailMode::Cancel => ("cancel", 0),
    };
    let t = f.task;
    let d = &t.delivered;
    let fields = t.record_fields();
    let mut inv = SCRIPT.prepare_invoke();
    // The stream of the task's lane, named by its id.
    inv.key(keys.stream(crate::task::source_of(&d.id).unwrap_or(q)))
        .key(keys.stats(q))
        .key(keys.events(q))
        .key(keys.delayed(q))
        .key(keys.dead(q))
        .key(keys.task(q, &d.id))
        .arg(consumer)
        .arg(&d.entry)
        .arg(&d.id)
        .arg(f.error)
        .arg(mode)
        .arg(due)
        .arg(now)
        .arg(retention.result_ttl.as_secs())
        .arg(retention.events_maxlen)
        .arg(t.attempts)
        .arg(t.max_attempts)
        .arg(&t.started_at)
        .arg(crate::lane::queue_part(q))
        .arg(fields.len());
    for (k, v) in &fields {
        inv.arg(*k).arg(v);
    }
    let raw: String = inv.invoke_async(con).await?;
    decode::<StatusReply<FailStatus>>("fail", raw).map(|r| r.status)
}
