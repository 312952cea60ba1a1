//! Committing successes under fencing (`complete.lua`): a batch of one queue per call, each
//! result recorded only while this consumer still holds its entry, the finished record written
//! in one HSET.

use std::sync::{Arc, LazyLock};

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;

use super::BatchCall;
use crate::keys::Keys;
use crate::record::QueuedTask;
use crate::store::StoreError;
use crate::task::TaskState;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("complete.lua")));

/// A succeeded task to commit.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Its entry.
    pub entry: String,
    /// Task id.
    pub id: String,
    /// Result JSON text.
    pub result: String,
    /// The attempt's number, from 1.
    pub attempts: u32,
    /// When the attempt started, RFC 3339.
    pub started_at: String,
    /// The queued record when no hash holds it yet (see
    /// [`Runnable::record`](super::Runnable::record)).
    pub record: Option<Arc<QueuedTask>>,
}

/// What happened to one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompleteStatus {
    /// Result recorded.
    Succeeded,
    /// The entry is no longer this consumer's: result dropped.
    Fenced,
}

/// Reply of [`complete`] for one task.
#[derive(Debug, Clone, Deserialize)]
pub struct Completed {
    /// Task id.
    pub id: String,
    /// Outcome.
    pub status: CompleteStatus,
}

/// Commits a batch of successes of `call.queue` under fencing: `complete.lua`.
pub async fn complete<C: ConnectionLike>(
    con: &mut C,
    call: &BatchCall<'_>,
    batch: &[Completion],
) -> Result<Vec<Completed>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let (keys, queue) = (call.keys, call.queue);
    let mut inv = call.invocation(&SCRIPT, &[], batch.iter().map(|c| c.entry.as_str()));
    for c in batch {
        let fields = c
            .record
            .as_deref()
            .map(QueuedTask::record_fields)
            .unwrap_or_default();
        inv.key(keys.task(queue, &c.id))
            .arg(&c.entry)
            .arg(&c.id)
            .arg(&c.result)
            .arg(c.attempts)
            .arg(&c.started_at)
            .arg(fields.len());
        for (f, v) in &fields {
            inv.arg(*f).arg(v);
        }
    }
    // The script names only the fenced positions: encoding a status per task cost Redis more
    // than the answer is worth.
    let fenced: Vec<usize> = inv.invoke_async(con).await?;
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, c)| Completed {
            id: c.id.clone(),
            status: if fenced.contains(&(i + 1)) {
                CompleteStatus::Fenced
            } else {
                CompleteStatus::Succeeded
            },
        })
        .collect())
}

/// Whether `c` is already recorded as `consumer`'s own success: the task's finished record says
/// `succeeded`, by `consumer`, in this attempt started at this time. A completion redone because
/// the connection broke after its first call (during the script's reply or the `WAIT` after it)
/// finds its entry acked by that first call and is answered fenced; this tells its own earlier
/// commit apart from an entry another worker took.
pub async fn recorded_as_own<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    c: &Completion,
) -> Result<bool, StoreError> {
    let Some(t) = super::lookup(con, keys, queue, &c.id).await? else {
        return Ok(false);
    };
    Ok(t.state == TaskState::Succeeded
        && t.worker.as_deref() == Some(consumer)
        && t.attempts == c.attempts
        && t.started_at.as_deref() == Some(c.started_at.as_str()))
}
