//! The task record (SPEC §3) and where it lives (issue 19, the lean layout):
//! - a task born in its stream is, while queued, only its stream entry: the entry's fields are
//!   the queued record ([`QueuedTask::entry_fields`], read back by [`Entry::decode`]), and its
//!   id is `{queue}-{entry id}`;
//! - while running it is that entry, pending in the group (owner, delivery count, idle time);
//! - its hash `{p}{q}:task:{id}` is written when the attempt ends (the whole record at once),
//!   or earlier where something must be stored (a retry, a cancel request, a hand-back, a task
//!   born delayed). An entry that re-enters the stream for a task with a hash is a *reference
//!   entry*: it carries only `id`, and the hash's `entry` field names it.
//!
//! [`Task::assemble`] decodes what `lookup.lua` reads (hash, entry, pending info) into the one
//! [`Task`] every reader answers. The Lua scripts spell the same field names; the pinning test
//! below keeps the two sides alike.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::task::{TaskKind, TaskState};

/// Field: task id.
pub const ID: &str = "id";
/// Field: `chat` or `tool`.
pub const KIND: &str = "kind";
/// Field: queue.
pub const QUEUE: &str = "queue";
/// Field: payload, JSON.
pub const PAYLOAD: &str = "payload";
/// Field: [`TaskState`] name.
pub const STATE: &str = "state";
/// Field: attempts started.
pub const ATTEMPTS: &str = "attempts";
/// Field: attempts allowed.
pub const MAX_ATTEMPTS: &str = "max_attempts";
/// Field: per-attempt bound, ms.
pub const TIMEOUT_MS: &str = "timeout_ms";
/// Field: creation time, RFC 3339.
pub const CREATED_AT: &str = "created_at";
/// Field: start of the latest attempt (written by `start.lua`).
pub const STARTED_AT: &str = "started_at";
/// Field: terminal time (written by the terminal scripts).
pub const FINISHED_AT: &str = "finished_at";
/// Field: worker of the latest attempt.
pub const WORKER: &str = "worker";
/// Field: result, JSON.
pub const RESULT: &str = "result";
/// Field: error of the latest failed attempt.
pub const ERROR: &str = "error";
/// Field: client's deduplication key.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
/// Field: chat session.
pub const SESSION_ID: &str = "session_id";
/// Field: due time while delayed, ms since the epoch.
pub const RUN_AT_MS: &str = "run_at_ms";
/// Field: `1` once cancellation of a running task was requested.
pub const CANCEL_REQUESTED: &str = "cancel_requested";
/// Field: id of the tenant whose key submitted the task (absent: the admin key).
pub const TENANT: &str = "tenant";
/// Field: the stream entry that currently carries the task (hash only, while it waits in the
/// stream or runs from a reference entry).
pub const ENTRY: &str = "entry";

/// A new task's record as it is first written: state `queued`, no attempt yet.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTask {
    /// Task id (carries the queue).
    pub id: String,
    /// Chat or tool.
    pub kind: TaskKind,
    /// Queue.
    pub queue: String,
    /// What to run, as JSON text (stored as given).
    pub payload: String,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Per-attempt bound, ms.
    pub timeout_ms: u64,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Client's deduplication key.
    pub idempotency_key: Option<String>,
    /// Chat session.
    pub session_id: Option<String>,
    /// Tenant whose key submitted it (`None`: the admin key).
    pub tenant: Option<String>,
}

impl QueuedTask {
    /// The hash fields of a task born delayed, as enqueue writes them: the record, state
    /// `queued`, no attempt yet.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = self.record_fields();
        f.push((STATE, TaskState::Queued.as_str().to_owned()));
        f.push((ATTEMPTS, "0".to_owned()));
        f
    }

    /// The record's fields without a state: what the hash of a task born in its stream is given
    /// when it is first written (at the end of an attempt, a cancel or a hand-back), beside the
    /// fields of that transition.
    pub fn record_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![(ID, self.id.clone()), (QUEUE, self.queue.clone())];
        f.extend(self.entry_fields());
        f
    }

    /// The fields of the stream entry of a task born in its stream: the queued record without
    /// `id` and `queue`, which the entry's id and stream name give (read by [`Entry::decode`]).
    pub fn entry_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            (KIND, self.kind.as_str().to_owned()),
            (PAYLOAD, self.payload.clone()),
            (MAX_ATTEMPTS, self.max_attempts.to_string()),
            (TIMEOUT_MS, self.timeout_ms.to_string()),
            (CREATED_AT, self.created_at.clone()),
        ];
        if let Some(k) = &self.idempotency_key {
            f.push((IDEMPOTENCY_KEY, k.clone()));
        }
        if let Some(s) = &self.session_id {
            f.push((SESSION_ID, s.clone()));
        }
        if let Some(t) = &self.tenant {
            f.push((TENANT, t.clone()));
        }
        f
    }
}

/// A stored task record, decoded from its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Sortable unique id, `{queue}-{ULID}`.
    pub id: String,
    /// Chat or tool.
    pub kind: TaskKind,
    /// Queue (stream) the task lives on.
    pub queue: String,
    /// What to run.
    pub payload: Value,
    /// Lifecycle state.
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed before the task is dead-lettered.
    pub max_attempts: u32,
    /// Bound of each attempt, ms.
    pub timeout_ms: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Start of the latest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it reached a terminal state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Worker that ran the latest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Result of a succeeded task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Error of the latest failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Client-chosen deduplication key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Chat session the task belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Due time (ms since the epoch) while waiting in the delayed set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<u64>,
    /// Whether a cancellation was requested while it ran.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub cancel_requested: bool,
    /// Tenant whose key submitted it (`None`: the admin key).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tenant: Option<String>,
}

/// Why a stored hash is not a valid task record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("task record lacks field {0}")]
    Missing(&'static str),
    /// A field holds a value of the wrong form.
    #[error("task record field {field} is invalid: {value:?}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its stored value.
        value: String,
    },
}

impl Task {
    /// Decodes the `HGETALL` of a task hash.
    pub fn from_hash(mut h: HashMap<String, String>) -> Result<Self, DecodeError> {
        fn req(h: &mut HashMap<String, String>, f: &'static str) -> Result<String, DecodeError> {
            h.remove(f).ok_or(DecodeError::Missing(f))
        }
        fn num<T: std::str::FromStr>(v: String, f: &'static str) -> Result<T, DecodeError> {
            v.parse()
                .map_err(|_| DecodeError::Invalid { field: f, value: v })
        }
        fn json(v: String, f: &'static str) -> Result<Value, DecodeError> {
            serde_json::from_str(&v).map_err(|_| DecodeError::Invalid { field: f, value: v })
        }
        let kind_s = req(&mut h, KIND)?;
        let kind = TaskKind::parse(&kind_s).ok_or(DecodeError::Invalid {
            field: KIND,
            value: kind_s,
        })?;
        let state_s = req(&mut h, STATE)?;
        let state = TaskState::parse(&state_s).ok_or(DecodeError::Invalid {
            field: STATE,
            value: state_s,
        })?;
        let payload = json(req(&mut h, PAYLOAD)?, PAYLOAD)?;
        let result = h.remove(RESULT).map(|v| json(v, RESULT)).transpose()?;
        let run_at_ms = h.remove(RUN_AT_MS).map(|v| num(v, RUN_AT_MS)).transpose()?;
        Ok(Self {
            id: req(&mut h, ID)?,
            kind,
            queue: req(&mut h, QUEUE)?,
            payload,
            state,
            attempts: num(req(&mut h, ATTEMPTS)?, ATTEMPTS)?,
            max_attempts: num(req(&mut h, MAX_ATTEMPTS)?, MAX_ATTEMPTS)?,
            timeout_ms: num(req(&mut h, TIMEOUT_MS)?, TIMEOUT_MS)?,
            created_at: req(&mut h, CREATED_AT)?,
            started_at: h.remove(STARTED_AT),
            finished_at: h.remove(FINISHED_AT),
            worker: h.remove(WORKER),
            result,
            error: h.remove(ERROR),
            idempotency_key: h.remove(IDEMPOTENCY_KEY),
            session_id: h.remove(SESSION_ID),
            run_at_ms,
            cancel_requested: h.remove(CANCEL_REQUESTED).as_deref() == Some("1"),
            tenant: h.remove(TENANT),
        })
    }
}

/// What a stream entry carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A task born in the stream: its whole queued record (id and queue filled in from the
    /// entry id and the stream).
    Fresh(QueuedTask),
    /// A task whose record is its hash: the id alone.
    Reference(String),
}

impl Entry {
    /// Decodes the fields of entry `entry` of the stream of `queue` (a lane source, see
    /// [`crate::lane`]): a reference entry when it carries `id`, else a fresh entry's record
    /// ([`QueuedTask::entry_fields`]), whose id is `{source}-{entry}`.
    pub fn decode(
        queue: &str,
        entry: &str,
        mut f: HashMap<String, String>,
    ) -> Result<Self, DecodeError> {
        if let Some(id) = f.remove(ID) {
            return Ok(Self::Reference(id));
        }
        fn req(h: &mut HashMap<String, String>, f: &'static str) -> Result<String, DecodeError> {
            h.remove(f).ok_or(DecodeError::Missing(f))
        }
        fn num<T: std::str::FromStr>(v: String, f: &'static str) -> Result<T, DecodeError> {
            v.parse()
                .map_err(|_| DecodeError::Invalid { field: f, value: v })
        }
        let kind_s = req(&mut f, KIND)?;
        let kind = TaskKind::parse(&kind_s).ok_or(DecodeError::Invalid {
            field: KIND,
            value: kind_s,
        })?;
        Ok(Self::Fresh(QueuedTask {
            id: crate::task::entry_task_id(queue, entry),
            kind,
            queue: crate::lane::queue_part(queue).to_owned(),
            payload: req(&mut f, PAYLOAD)?,
            max_attempts: num(req(&mut f, MAX_ATTEMPTS)?, MAX_ATTEMPTS)?,
            timeout_ms: num(req(&mut f, TIMEOUT_MS)?, TIMEOUT_MS)?,
            created_at: req(&mut f, CREATED_AT)?,
            idempotency_key: f.remove(IDEMPOTENCY_KEY),
            session_id: f.remove(SESSION_ID),
            tenant: f.remove(TENANT),
        }))
    }
}

/// A stream entry's place in the group's pending list: who holds it and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInfo {
    /// The consumer (worker id) that holds it.
    pub consumer: String,
    /// Milliseconds since it was delivered or its lease last refreshed.
    pub idle_ms: u64,
    /// Times it was delivered.
    pub deliveries: u32,
}

impl Task {
    /// The record of a task born in its stream and not yet written to a hash: `queued`.
    pub fn queued(q: QueuedTask) -> Result<Self, DecodeError> {
        let payload = serde_json::from_str(&q.payload).map_err(|_| DecodeError::Invalid {
            field: PAYLOAD,
            value: q.payload.clone(),
        })?;
        Ok(Self {
            id: q.id,
            kind: q.kind,
            queue: q.queue,
            payload,
            state: TaskState::Queued,
            attempts: 0,
            max_attempts: q.max_attempts,
            timeout_ms: q.timeout_ms,
            created_at: q.created_at,
            started_at: None,
            finished_at: None,
            worker: None,
            result: None,
            error: None,
            idempotency_key: q.idempotency_key,
            session_id: q.session_id,
            run_at_ms: None,
            cancel_requested: false,
            tenant: q.tenant,
        })
    }

    /// The task `id` of `queue` from what `lookup.lua` read atomically: its hash (possibly
    /// empty, or holding only a cancel request), the fields of its current entry (when the hash
    /// holds no state), and that entry's pending info. A queued task whose entry is pending is
    /// `running`: its attempts are those stored plus the deliveries, its worker the entry's
    /// holder, and its start `now_ms − idle` (the idle time restarts at each lease refresh, so
    /// this is the latest of delivery and refresh). `None` when the task does not exist.
    pub fn assemble(
        id: &str,
        queue: &str,
        mut hash: HashMap<String, String>,
        entry: Option<(String, HashMap<String, String>)>,
        pending: Option<PendingInfo>,
        now_ms: u64,
    ) -> Result<Option<Self>, DecodeError> {
        let mut task = if hash.contains_key(STATE) {
            Self::from_hash(hash)?
        } else {
            let Some((entry_id, fields)) = entry else {
                return Ok(None);
            };
            let Entry::Fresh(q) = Entry::decode(queue, &entry_id, fields)? else {
                // A reference entry without a record: nothing a client can be shown.
                return Ok(None);
            };
            let mut t = Self::queued(q)?;
            t.cancel_requested = hash.remove(CANCEL_REQUESTED).as_deref() == Some("1");
            t
        };
        if task.id != id {
            return Err(DecodeError::Invalid {
                field: ID,
                value: task.id,
            });
        }
        if let Some(p) = pending.filter(|_| task.state == TaskState::Queued) {
            task.state = TaskState::Running;
            task.attempts += p.deliveries;
            task.started_at = Some(crate::clock::ms_to_rfc3339(
                now_ms.saturating_sub(p.idle_ms),
            ));
            task.worker = Some(p.consumer);
        }
        Ok(Some(task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued() -> QueuedTask {
        QueuedTask {
            id: "tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5".into(),
            kind: TaskKind::Tool,
            queue: "tool".into(),
            payload: r#"{"tool":"echo","args":{}}"#.into(),
            max_attempts: 3,
            timeout_ms: 1_000,
            created_at: "2026-01-01T00:00:00Z".into(),
            idempotency_key: Some("k1".into()),
            session_id: None,
            tenant: None,
        }
    }

    fn hash(fields: Vec<(&'static str, String)>) -> HashMap<String, String> {
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn field_names_are_pinned() {
        // The Lua scripts spell these names too: a rename here must be made there.
        let names = [
            ID,
            KIND,
            QUEUE,
            PAYLOAD,
            STATE,
            ATTEMPTS,
            MAX_ATTEMPTS,
            TIMEOUT_MS,
            CREATED_AT,
            STARTED_AT,
            FINISHED_AT,
            WORKER,
            RESULT,
            ERROR,
            IDEMPOTENCY_KEY,
            SESSION_ID,
            RUN_AT_MS,
            CANCEL_REQUESTED,
            TENANT,
            ENTRY,
        ];
        assert_eq!(
            names.join(" "),
            "id kind queue payload state attempts max_attempts timeout_ms created_at started_at \
             finished_at worker result error idempotency_key session_id run_at_ms cancel_requested tenant \
             entry"
        );
    }

    #[test]
    fn a_queued_task_decodes_as_written() {
        let t = Task::from_hash(hash(queued().fields())).expect("valid");
        assert_eq!(t.state, TaskState::Queued);
        assert_eq!(t.attempts, 0);
        assert_eq!(t.payload, json!({"tool": "echo", "args": {}}));
        assert_eq!(t.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(t.session_id, None);
        assert_eq!(t.result, None);
    }

    #[test]
    fn record_round_trips_through_its_hash() {
        let mut h = hash(queued().fields());
        h.insert(STATE.into(), "succeeded".into());
        h.insert(ATTEMPTS.into(), "1".into());
        h.insert(RESULT.into(), r#"{"output":{}}"#.into());
        let t = Task::from_hash(h.clone()).expect("valid");
        assert_eq!(t.state, TaskState::Succeeded);
        assert_eq!(t.result, Some(json!({"output": {}})));
        let mut bad = h.clone();
        bad.insert(ATTEMPTS.into(), "x".into());
        assert_eq!(
            Task::from_hash(bad),
            Err(DecodeError::Invalid {
                field: ATTEMPTS,
                value: "x".into()
            })
        );
        let mut bad = h;
        bad.remove(CREATED_AT);
        assert_eq!(Task::from_hash(bad), Err(DecodeError::Missing(CREATED_AT)));
    }

    fn fresh() -> QueuedTask {
        QueuedTask {
            id: "tool-1733250000000-3".into(),
            idempotency_key: None,
            tenant: Some("acme".into()),
            ..queued()
        }
    }

    fn owned(fields: Vec<(&'static str, String)>) -> HashMap<String, String> {
        hash(fields)
    }

    #[test]
    fn an_entry_decodes_to_the_record_it_was_written_from() {
        let q = fresh();
        let fields = owned(q.entry_fields());
        assert!(!fields.contains_key(ID), "the entry id gives the task id");
        assert!(!fields.contains_key(STATE), "an entry holds no state");
        let e = Entry::decode("tool", "1733250000000-3", fields).expect("valid");
        assert_eq!(e, Entry::Fresh(q));
        let r = Entry::decode("tool", "5-0", hash(vec![(ID, "tool-X".into())]));
        assert_eq!(r, Ok(Entry::Reference("tool-X".into())));
        let mut bad = owned(fresh().entry_fields());
        bad.remove(PAYLOAD);
        assert_eq!(
            Entry::decode("tool", "5-0", bad),
            Err(DecodeError::Missing(PAYLOAD))
        );
        let mut bad = owned(fresh().entry_fields());
        bad.insert(KIND.into(), "nope".into());
        assert!(Entry::decode("tool", "5-0", bad).is_err());
    }

    #[test]
    fn a_task_assembles_from_its_entry_its_pending_info_and_its_hash() {
        let q = fresh();
        let entry = || Some(("1733250000000-3".to_owned(), owned(q.entry_fields())));
        let queued = Task::assemble(&q.id, "tool", HashMap::new(), entry(), None, 0)
            .expect("valid")
            .expect("exists");
        assert_eq!(queued.state, TaskState::Queued);
        assert_eq!(queued.attempts, 0);
        assert_eq!(queued.tenant.as_deref(), Some("acme"));
        assert_eq!(queued.created_at, q.created_at);
        let p = PendingInfo {
            consumer: "w1".into(),
            idle_ms: 1_000,
            deliveries: 2,
        };
        let cancel = hash(vec![(CANCEL_REQUESTED, "1".into())]);
        let running = Task::assemble(&q.id, "tool", cancel, entry(), Some(p.clone()), 5_000)
            .expect("valid")
            .expect("exists");
        assert_eq!(running.state, TaskState::Running);
        assert_eq!(running.attempts, 2);
        assert_eq!(running.worker.as_deref(), Some("w1"));
        assert_eq!(
            running.started_at.as_deref(),
            Some("1970-01-01T00:00:04.000Z")
        );
        assert!(running.cancel_requested);
        // A finished hash wins: the entry is gone, and a pending entry does not make it run.
        let mut done = hash(q.fields());
        done.insert(STATE.into(), "succeeded".into());
        done.insert(ATTEMPTS.into(), "1".into());
        let t = Task::assemble(&q.id, "tool", done, None, Some(p), 0)
            .expect("valid")
            .expect("exists");
        assert_eq!(t.state, TaskState::Succeeded);
        assert_eq!(t.attempts, 1);
        assert_eq!(
            Task::assemble(&q.id, "tool", HashMap::new(), None, None, 0),
            Ok(None)
        );
        let mut other = hash(q.fields());
        other.insert(ID.into(), "tool-9-9".into());
        assert!(Task::assemble(&q.id, "tool", other, None, None, 0).is_err());
    }
}
