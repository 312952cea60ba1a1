//! The task record (SPEC §3) stored in `{p}{q}:task:{id}`: its field names, the one shape a new
//! task is written in ([`QueuedTask`], by the dispatcher's submit and the test fixture), and the
//! typed decode of a stored hash ([`Task::from_hash`], by every read of a task). The Lua scripts
//! write the later fields (`state`, `attempts`, `started_at`, `worker`, `result`, …) under the
//! same names; the pinning test below keeps the two sides spelled alike.

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
    /// The hash fields, as enqueue writes them.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            (ID, self.id.clone()),
            (KIND, self.kind.as_str().to_owned()),
            (QUEUE, self.queue.clone()),
            (PAYLOAD, self.payload.clone()),
            (STATE, TaskState::Queued.as_str().to_owned()),
            (ATTEMPTS, "0".to_owned()),
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
        ];
        assert_eq!(
            names.join(" "),
            "id kind queue payload state attempts max_attempts timeout_ms created_at started_at \
             finished_at worker result error idempotency_key session_id run_at_ms cancel_requested tenant"
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
}
