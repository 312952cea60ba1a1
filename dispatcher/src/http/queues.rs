//! `GET /api/queues`: the numbers and state (`paused`) of every queue the dispatcher serves,
//! with the backlog of each lane (priority, tenant). A key without `read` (a `submit` key) sees
//! only its own tenant's lanes and totals ([`for_caller`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_shared::paused;
use switchyard_shared::store::StoreError;

use super::access::{Caller, Need};
use super::error::ApiError;
use crate::state::AppState;
use crate::stats::{LaneStats, QueueStats, sample};

/// Reads every queue's numbers in one round trip.
pub async fn all_queue_stats(state: &AppState) -> Result<Vec<QueueStats>, StoreError> {
    let mut con = state.pool.get().await?;
    sample(&mut *con, &state.keys, &state.cfg.queues).await
}

/// `stats` as JSON, each with `paused` and `paused_since_ms` from `paused` (queue → ms).
pub fn with_paused(stats: Vec<Own>, paused: &BTreeMap<String, u64>) -> Vec<Value> {
    stats
        .into_iter()
        .map(|s| {
            let since = paused.get(s.queue()).copied();
            let mut row = serde_json::to_value(s).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut row {
                m.insert("paused".into(), Value::Bool(since.is_some()));
                m.insert("paused_since_ms".into(), json!(since));
            }
            row
        })
        .collect()
}

/// `GET /api/queues`.
pub async fn queues(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let stats = all_queue_stats(&state).await?;
    let mut con = state.pool.get().await?;
    let paused = paused::read(&mut *con, &state.keys).await?;
    let stats = stats.into_iter().map(|s| for_caller(&caller, s)).collect();
    Ok(Json(json!({ "queues": with_paused(stats, &paused) })))
}

/// A queue's numbers as `caller` may see them: all of them with `read`; otherwise only its own
/// lanes, with `waiting` and `running` summed over them (the queue's other figures would tell
/// about other tenants' work, so they are left out).
pub fn for_caller(caller: &Caller, s: QueueStats) -> Own {
    if caller.admits(Need::Read) {
        return Own::All(s);
    }
    let me = caller.tenant_id();
    let lanes: Vec<LaneStats> = s
        .lanes
        .into_iter()
        .filter(|l| l.tenant.is_some() && l.tenant.as_deref() == me)
        .collect();
    Own::Tenant {
        queue: s.queue,
        tenant: me.map(str::to_owned),
        waiting: lanes.iter().map(|l| l.waiting).sum(),
        running: lanes.iter().map(|l| l.running).sum(),
        lanes,
    }
}

/// What a caller sees of one queue.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Own {
    /// Every figure (`read` or `admin`).
    All(QueueStats),
    /// One tenant's backlog (`submit`).
    Tenant {
        /// Queue name.
        queue: String,
        /// The tenant.
        tenant: Option<String>,
        /// Its tasks waiting in the queue.
        waiting: u64,
        /// Its tasks running.
        running: u64,
        /// Its lanes (one per priority it used).
        lanes: Vec<LaneStats>,
    },
}

impl Own {
    fn queue(&self) -> &str {
        match self {
            Self::All(s) => &s.queue,
            Self::Tenant { queue, .. } => queue,
        }
    }
}
