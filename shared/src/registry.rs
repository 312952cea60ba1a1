//! The worker registry (SPEC §4): each live worker's record in `{p}worker:{id}` (a hash with a
//! TTL, refreshed by its heartbeat) and its last beat in the `{p}workers` sorted set. The
//! heartbeat writes it through [`write`]; the dispatcher's workers and health routes and its
//! sampler read it through [`list`]. A worker whose record expired but whose score is recent is
//! listed as [`WorkerStatus::Offline`].

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::store::StoreError;

/// Field: the worker id (its consumer name).
pub const ID: &str = "id";
/// Field: host name.
pub const HOST: &str = "host";
/// Field: process id.
pub const PID: &str = "pid";
/// Field: queues it consumes, a JSON list.
pub const QUEUES: &str = "queues";
/// Field: tasks it runs at once.
pub const CONCURRENCY: &str = "concurrency";
/// Field: tools it serves, a JSON list.
pub const CAPABILITIES: &str = "capabilities";
/// Field: chat providers in fallback order, a JSON list.
pub const PROVIDERS: &str = "providers";
/// Field: models it serves, a JSON list.
pub const MODELS: &str = "models";
/// Field: ids of the tasks it runs now, a JSON list.
pub const IN_FLIGHT: &str = "in_flight";
/// Field: attempts it finished.
pub const PROCESSED: &str = "processed";
/// Field: attempts of those that failed.
pub const FAILED: &str = "failed";
/// Field: when it started, RFC 3339.
pub const STARTED_AT: &str = "started_at";
/// Field: its last beat, RFC 3339.
pub const LAST_SEEN: &str = "last_seen";
/// Field: its last beat, ms since the epoch.
pub const LAST_SEEN_MS: &str = "last_seen_ms";
/// Field: its [`WorkerStatus`].
pub const STATUS: &str = "status";

/// Workers offline for longer than this are no longer listed.
pub const LISTED_OFFLINE_FOR: Duration = Duration::from_secs(3_600);

/// What a worker is doing, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    /// Alive, running nothing.
    Idle,
    /// Alive, running tasks.
    Busy,
    /// Shutting down: fetches nothing new, finishes what it runs.
    Draining,
    /// Its record expired (never written: a record that exists is never offline).
    Offline,
}

impl WorkerStatus {
    /// Every status, in the order the API summarises them.
    pub const ALL: [WorkerStatus; 4] = [Self::Idle, Self::Busy, Self::Draining, Self::Offline];

    /// The name used in Redis, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Draining => "draining",
            Self::Offline => "offline",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The status of a live worker: draining wins, then whether it runs anything.
    pub fn of_live(draining: bool, running: usize) -> Self {
        match (draining, running) {
            (true, _) => Self::Draining,
            (false, 0) => Self::Idle,
            (false, _) => Self::Busy,
        }
    }
}

/// One worker's registry record. Serialised (without the fields an API listing names itself:
/// `id`, `in_flight`, `status`) it is the detail part of `GET /api/workers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRecord {
    /// Worker id.
    #[serde(skip)]
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Tasks it runs at once.
    pub concurrency: u64,
    /// Tools it serves.
    pub capabilities: Vec<String>,
    /// Chat providers, in fallback order.
    pub providers: Vec<String>,
    /// Models it serves: its providers' configured models and `LLM_MODELS` (`GET /v1/models`).
    pub models: Vec<String>,
    /// Tasks it runs now.
    #[serde(skip)]
    pub in_flight: Vec<String>,
    /// Attempts finished.
    pub processed: u64,
    /// Attempts failed.
    pub failed: u64,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Last beat, RFC 3339.
    pub last_seen: String,
    /// Last beat, ms since the epoch.
    pub last_seen_ms: u64,
    /// Idle, busy or draining.
    #[serde(skip)]
    pub status: WorkerStatus,
}

/// Why a registry hash is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A required field is absent.
    #[error("worker record lacks field {0}")]
    Missing(&'static str),
    /// A field holds a value of the wrong form.
    #[error("worker record field {field} is invalid: {value:?}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its stored value.
        value: String,
    },
}

impl WorkerRecord {
    /// The hash fields, as [`write`] stores them.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let list = |v: &[String]| serde_json::Value::from(v.to_vec()).to_string();
        vec![
            (ID, self.id.clone()),
            (HOST, self.host.clone()),
            (PID, self.pid.to_string()),
            (QUEUES, list(&self.queues)),
            (CONCURRENCY, self.concurrency.to_string()),
            (CAPABILITIES, list(&self.capabilities)),
            (PROVIDERS, list(&self.providers)),
            (MODELS, list(&self.models)),
            (IN_FLIGHT, list(&self.in_flight)),
            (PROCESSED, self.processed.to_string()),
            (FAILED, self.failed.to_string()),
            (STARTED_AT, self.started_at.clone()),
            (LAST_SEEN, self.last_seen.clone()),
            (LAST_SEEN_MS, self.last_seen_ms.to_string()),
            (STATUS, self.status.as_str().to_owned()),
        ]
    }

    /// Decodes the `HGETALL` of a registry hash. A record without `status` (written before
    /// the field existed) is idle or busy by what it runs.
    pub fn decode(mut h: HashMap<String, String>) -> Result<Self, RegistryError> {
        fn text(h: &mut HashMap<String, String>, f: &'static str) -> Result<String, RegistryError> {
            h.remove(f).ok_or(RegistryError::Missing(f))
        }
        fn parsed<T: serde::de::DeserializeOwned>(
            h: &mut HashMap<String, String>,
            f: &'static str,
        ) -> Result<T, RegistryError> {
            let v = text(h, f)?;
            serde_json::from_str(&v).map_err(|_| RegistryError::Invalid { field: f, value: v })
        }
        let in_flight: Vec<String> = parsed(&mut h, IN_FLIGHT)?;
        let status = match h.remove(STATUS) {
            None => WorkerStatus::of_live(false, in_flight.len()),
            Some(s) => match WorkerStatus::parse(&s) {
                Some(st) if st != WorkerStatus::Offline => st,
                _ => {
                    return Err(RegistryError::Invalid {
                        field: STATUS,
                        value: s,
                    });
                }
            },
        };
        Ok(Self {
            id: text(&mut h, ID)?,
            host: text(&mut h, HOST)?,
            pid: parsed(&mut h, PID)?,
            queues: parsed(&mut h, QUEUES)?,
            concurrency: parsed(&mut h, CONCURRENCY)?,
            capabilities: parsed(&mut h, CAPABILITIES)?,
            providers: parsed(&mut h, PROVIDERS)?,
            // Records written before the field existed serve no listed model.
            models: match h.contains_key(MODELS) {
                true => parsed(&mut h, MODELS)?,
                false => Vec::new(),
            },
            in_flight,
            processed: parsed(&mut h, PROCESSED)?,
            failed: parsed(&mut h, FAILED)?,
            started_at: text(&mut h, STARTED_AT)?,
            last_seen: text(&mut h, LAST_SEEN)?,
            last_seen_ms: parsed(&mut h, LAST_SEEN_MS)?,
            status,
        })
    }
}

/// Writes `rec` with a lifetime of `ttl` and records the beat in `{p}workers`, in one round
/// trip.
pub async fn write<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    rec: &WorkerRecord,
    ttl: Duration,
) -> Result<(), StoreError> {
    let key = keys.worker(&rec.id);
    let _: () = redis::pipe()
        .hset_multiple(&key, &rec.fields())
        .ignore()
        .pexpire(&key, ttl.as_millis() as i64)
        .ignore()
        .zadd(keys.workers(), &rec.id, rec.last_seen_ms)
        .ignore()
        .query_async(con)
        .await?;
    Ok(())
}

/// Removes worker `id`'s record; its `{p}workers` score stays, so it is listed as offline for a
/// while.
pub async fn remove<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    id: &str,
) -> Result<(), StoreError> {
    let _: () = redis::cmd("DEL")
        .arg(keys.worker(id))
        .query_async(con)
        .await?;
    Ok(())
}

/// A worker seen within [`LISTED_OFFLINE_FOR`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// Worker id.
    pub id: String,
    /// Its status.
    pub status: WorkerStatus,
    /// Last heartbeat, ms since the epoch.
    pub last_heartbeat_ms: u64,
    /// Tasks it runs now.
    pub current_tasks: Vec<String>,
    /// Its record, while it lives.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub record: Option<WorkerRecord>,
}

/// Every worker that beat within [`LISTED_OFFLINE_FOR`] before `now_ms`, oldest beat first. A
/// record that does not decode (written by hand, or by an incompatible version) is logged and
/// its worker listed as offline: nothing it says can be trusted.
pub async fn list<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    now_ms: u64,
) -> Result<Vec<Listed>, StoreError> {
    let since = now_ms.saturating_sub(LISTED_OFFLINE_FOR.as_millis() as u64);
    let seen: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
        .arg(keys.workers())
        .arg(since)
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(con)
        .await?;
    if seen.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (id, _) in &seen {
        pipe.hgetall(keys.worker(id));
    }
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(con).await?;
    Ok(seen
        .into_iter()
        .zip(hashes)
        .map(|((id, score), h)| {
            let record = if h.is_empty() {
                None
            } else {
                WorkerRecord::decode(h)
                    .inspect_err(
                        |e| tracing::warn!(worker = %id, error = %e, "unreadable worker record"),
                    )
                    .ok()
            };
            Listed {
                status: record.as_ref().map_or(WorkerStatus::Offline, |r| r.status),
                current_tasks: record
                    .as_ref()
                    .map(|r| r.in_flight.clone())
                    .unwrap_or_default(),
                id,
                last_heartbeat_ms: score,
                record,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> WorkerRecord {
        WorkerRecord {
            id: "w1".into(),
            host: "h".into(),
            pid: 42,
            queues: vec!["tool".into()],
            concurrency: 8,
            capabilities: vec!["echo".into()],
            providers: vec!["echo".into()],
            models: vec!["echo-1".into()],
            in_flight: vec!["tool-1".into()],
            processed: 5,
            failed: 1,
            started_at: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:01Z".into(),
            last_seen_ms: 1_000,
            status: WorkerStatus::Busy,
        }
    }

    fn hash(rec: &WorkerRecord) -> HashMap<String, String> {
        rec.fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn a_record_round_trips_through_its_hash() {
        let rec = record();
        assert_eq!(WorkerRecord::decode(hash(&rec)), Ok(rec));
    }

    #[test]
    fn a_record_without_status_is_idle_or_busy_by_what_it_runs() {
        let mut h = hash(&record());
        h.remove(STATUS);
        assert_eq!(
            WorkerRecord::decode(h.clone()).map(|r| r.status),
            Ok(WorkerStatus::Busy)
        );
        h.insert(IN_FLIGHT.into(), "[]".into());
        assert_eq!(
            WorkerRecord::decode(h).map(|r| r.status),
            Ok(WorkerStatus::Idle)
        );
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        let mut h = hash(&record());
        h.insert(PID.into(), "x".into());
        assert_eq!(
            WorkerRecord::decode(h),
            Err(RegistryError::Invalid {
                field: PID,
                value: "x".into()
            })
        );
        let mut h = hash(&record());
        h.insert(STATUS.into(), "offline".into());
        assert!(matches!(
            WorkerRecord::decode(h),
            Err(RegistryError::Invalid { field: STATUS, .. })
        ));
        let mut h = hash(&record());
        h.remove(HOST);
        assert_eq!(WorkerRecord::decode(h), Err(RegistryError::Missing(HOST)));
    }

    #[test]
    fn status_of_a_live_worker() {
        assert_eq!(WorkerStatus::of_live(true, 3), WorkerStatus::Draining);
        assert_eq!(WorkerStatus::of_live(false, 0), WorkerStatus::Idle);
        assert_eq!(WorkerStatus::of_live(false, 2), WorkerStatus::Busy);
    }

    #[test]
    fn a_listing_shows_the_record_beside_id_and_status() {
        let listed = Listed {
            id: "w1".into(),
            status: WorkerStatus::Busy,
            last_heartbeat_ms: 1_000,
            current_tasks: vec!["tool-1".into()],
            record: Some(record()),
        };
        let v = serde_json::to_value(&listed).expect("json");
        assert_eq!(v["status"], "busy");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["queues"], serde_json::json!(["tool"]));
        assert_eq!(v["current_tasks"], serde_json::json!(["tool-1"]));
        assert!(v.get("in_flight").is_none(), "{v}");
        let offline = Listed {
            status: WorkerStatus::Offline,
            record: None,
            current_tasks: Vec::new(),
            ..listed
        };
        let v = serde_json::to_value(&offline).expect("json");
        assert_eq!(v["status"], "offline");
        assert!(v.get("host").is_none(), "{v}");
    }
}
