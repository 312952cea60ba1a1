//! The Lua scripts that make every state change atomic: one module per task state transition,
//! each loading its `.lua` file once and calling it through exactly one typed wrapper. This
//! module holds what they share: the settings of terminal transitions, a delivered entry, the
//! opening of a batch call and its id range, and reply decoding.
//!
//! Most scripts answer JSON (`cjson.encode`) that decodes into their reply types. The two on
//! every task's path (`start`, `complete`) answer flat lists instead, decoded by one function
//! each, because encoding JSON in Lua cost Redis a sixth of `start.lua`. Every key a script
//! touches is passed in `KEYS`, and all keys of one call share the queue's hash tag.
//!
//! # Layout (one module per transition, beside its script)
//! - [`enqueue`](mod@enqueue): a new task queued or delayed (or a plain XADD for plain ones).
//! - [`start`](mod@start): delivered entries become running, skipped or dead.
//! - [`complete`](mod@complete): successes recorded under fencing.
//! - [`fail`](mod@fail): a failed attempt retried, dead-lettered, failed or cancelled.
//! - [`cancel`](mod@cancel): a cancel request.
//! - [`lookup`](mod@lookup): one task read wherever it lives (hash, entry, pending list).
//! - [`replay_dead`](mod@replay_dead): a dead-lettered task queued again.
//! - [`delete_dead`](mod@delete_dead): a dead-lettered task deleted for good (web console).
//! - [`requeue`](mod@requeue): a running task handed back at once.
//! - [`extend`](mod@extend): the lease of running entries refreshed.
//! - [`promote`](mod@promote): due delayed tasks moved back into their stream.
//! - [`lanes`](mod@lanes): a queue's lanes set read, pruned of empty lanes (not a task
//!   transition).
//! - [`session_append`](mod@session_append): one chat turn appended to a session, once.
//! - [`limit_reserve`](mod@limit_reserve), [`limit_settle`](mod@limit_settle): a provider call
//!   reserved against, and settled with, a budget the fleet shares (not a task transition).

pub mod cancel;
pub mod complete;
pub mod delete_dead;
pub mod enqueue;
pub mod extend;
pub mod fail;
pub mod lanes;
pub mod limit_reserve;
pub mod limit_settle;
pub mod lookup;
pub mod promote;
pub mod replay_dead;
pub mod requeue;
pub mod session_append;
pub mod start;

pub use cancel::{CancelReply, CancelStatus, cancel};
pub use complete::{CompleteStatus, Completed, Completion, complete, recorded_as_own};
pub use delete_dead::{DeleteReply, DeleteStatus, delete_dead};
pub use enqueue::{EnqueueReply, EnqueueStatus, NewRecord, enqueue, enqueue_many};
pub use extend::extend;
pub use fail::{FailMode, FailStatus, Failure, fail};
pub use limit_reserve::{Reservation, Reserved, limit_reserve};
pub use limit_settle::{Settlement, limit_settle};
pub use lookup::lookup;
pub use promote::promote;
pub use replay_dead::{ReplayReply, ReplayStatus, replay_dead};
pub use requeue::{RequeueStatus, requeue};
pub use session_append::session_append;
pub use start::{Runnable, StartStatus, Started, Work, start};

use std::time::Duration;

use redis::{Script, ScriptInvocation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::keys::Keys;
use crate::store::StoreError;

/// Settings every terminal transition needs.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long a finished record is kept.
    pub result_ttl: Duration,
    /// Approximate cap of the events stream.
    pub events_maxlen: u64,
}

/// An entry delivered to a consumer: its stream id and the task id it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Stream entry id.
    pub entry: String,
    /// Task id.
    pub id: String,
}

impl Delivered {
    /// The delivery of `entry` of `queue`'s stream whose `id` field is `reference`: a reference
    /// entry names its task; a fresh entry (no `id` field) is its task, `{queue}-{entry}`.
    pub fn of(queue: &str, entry: String, reference: Option<String>) -> Self {
        let id = reference.unwrap_or_else(|| crate::task::entry_task_id(queue, &entry));
        Self { entry, id }
    }
}

/// Who calls a batch script over delivered entries of a queue (`start`, `complete`), and when:
/// the arguments both open with.
#[derive(Debug, Clone, Copy)]
pub struct BatchCall<'a> {
    /// Key builder.
    pub keys: &'a Keys,
    /// The queue the entries belong to.
    pub queue: &'a str,
    /// The consumer that holds them.
    pub consumer: &'a str,
    /// The time recorded on the tasks (RFC 3339).
    pub now: &'a str,
    /// Result TTL and events cap.
    pub retention: &'a Retention,
}

impl BatchCall<'_> {
    /// A call of `script`: KEYS stream, stats, events, then `extra_keys`; ARGV consumer, now,
    /// result TTL, events cap, and the lowest and highest of `entries` (see [`entry_range`]).
    /// Each item's key and arguments follow.
    fn invocation<'s, 'e>(
        &self,
        script: &'s Script,
        extra_keys: &[String],
        entries: impl Iterator<Item = &'e str>,
    ) -> ScriptInvocation<'s> {
        let (keys, queue) = (self.keys, self.queue);
        let mut inv = script.prepare_invoke();
        inv.key(keys.stream(queue))
            .key(keys.stats(queue))
            .key(keys.events(queue));
        for k in extra_keys {
            inv.key(k);
        }
        let (lo, hi) = entry_range(entries);
        inv.arg(self.consumer)
            .arg(self.now)
            .arg(self.retention.result_ttl.as_secs())
            .arg(self.retention.events_maxlen)
            .arg(lo)
            .arg(hi);
        inv
    }
}

/// Decodes a script's JSON answer into `T`, naming the script when it does not fit.
fn decode<T: DeserializeOwned>(script: &'static str, raw: String) -> Result<T, StoreError> {
    serde_json::from_str(&raw).map_err(|e| StoreError::Reply {
        script,
        message: format!("{e}: {raw}"),
    })
}

/// A JSON answer that carries only a status.
#[derive(Deserialize)]
struct StatusReply<S> {
    status: S,
}

/// A stream entry id as its two numbers, for ordering (`"10-0"` sorts after `"9-0"`).
fn entry_key(entry: &str) -> (u64, u64) {
    let (ms, seq) = entry.split_once('-').unwrap_or((entry, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The lowest and highest of `entries`: the range one XPENDING reads ownership over. Computed
/// here because Lua's pattern matching cost more Redis CPU per entry than the rest of the check.
/// A malformed id only narrows the range, so its entry reads as not owned: skipped or fenced,
/// never run twice.
fn entry_range<'a>(mut entries: impl Iterator<Item = &'a str>) -> (&'a str, &'a str) {
    let first = entries.next().unwrap_or("0-0");
    entries.fold((first, first), |(lo, hi), e| {
        let k = entry_key(e);
        (
            if k < entry_key(lo) { e } else { lo },
            if k > entry_key(hi) { e } else { hi },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::entry_range;

    #[test]
    fn entry_range_orders_ids_by_their_numbers_not_as_strings() {
        let ids = [
            "1700000000000-9",
            "1700000000000-10",
            "999-0",
            "1700000000001-0",
        ];
        assert_eq!(
            entry_range(ids.iter().copied()),
            ("999-0", "1700000000001-0")
        );
        assert_eq!(
            entry_range(["5-9", "5-10"].iter().copied()),
            ("5-9", "5-10")
        );
        assert_eq!(entry_range(["7-0"].iter().copied()), ("7-0", "7-0"));
    }
}
