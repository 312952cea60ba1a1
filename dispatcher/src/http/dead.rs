//! `GET /api/dead` and `POST /api/dead/{id}/retry`: list dead-lettered tasks with their last
//! error, and replay one. A `submit` key lists and replays its own tenant's only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use redis::streams::StreamRangeReply;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_shared::scripts::{self, ReplayStatus};
use switchyard_shared::store::{self, StoreError};
use switchyard_shared::{record, task};

use super::access::Caller;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// Most dead letters one request may list.
const MAX_LIMIT: usize = 1_000;
/// Most dead-letter entries a `submit` key's listing reads per queue looking for its own.
const MAX_SCANNED: usize = 10_000;

/// Query of `GET /api/dead`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// Only this queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Newest first, at most this many per queue (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One dead letter.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// Task id.
    pub id: String,
    /// Queue.
    pub queue: String,
    /// Last error.
    pub error: String,
    /// Attempts made.
    pub attempts: Option<u64>,
    /// When it was dead-lettered.
    pub at: String,
    /// Its entry in the dead-letter stream.
    pub entry: String,
}

/// `GET /api/dead`: every dead letter for an admin or `read` key, a `submit` key's own
/// tenant's only.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DeadQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: must be between 1 and {MAX_LIMIT}"
        )));
    }
    let queues: Vec<String> = match q.queue {
        Some(queue) if state.knows_queue(&queue) => vec![queue],
        Some(queue) => {
            return Err(ApiError::Unprocessable {
                code: "unknown_queue",
                message: format!("queue: unknown queue {queue:?}"),
            });
        }
        None => state.cfg.queues.clone(),
    };
    let only = (!caller.reads_all()).then(|| caller.tenant_id().unwrap_or_default());
    let mut con = state.pool.get().await?;
    let mut letters = Vec::new();
    for queue in queues {
        letters.extend(newest(&mut con, &state, &queue, limit, only).await?);
    }
    Ok(Json(json!({ "dead": letters, "count": letters.len() })))
}

/// The newest `limit` dead letters of `queue`, of tenant `only` when given: its entries are
/// read a page at a time ([`read_dead`]) and each page's tasks' `tenant` fields in one
/// pipeline, up to [`MAX_SCANNED`] entries.
async fn newest(
    con: &mut store::PooledConnection,
    state: &AppState,
    queue: &str,
    limit: usize,
    only: Option<&str>,
) -> Result<Vec<DeadLetter>, StoreError> {
    let Some(tenant) = only else {
        return read_dead(&mut **con, state, queue, None, limit).await;
    };
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    let mut scanned = 0;
    while out.len() < limit && scanned < MAX_SCANNED {
        let letters = read_dead(&mut **con, state, queue, before.as_deref(), limit).await?;
        let Some(last) = letters.last() else {
            break;
        };
        scanned += letters.len();
        before = Some(last.entry.clone());
        let mut pipe = redis::pipe();
        for l in &letters {
            pipe.hget(state.keys.task(queue, &l.id), record::TENANT);
        }
        let owners: Vec<Option<String>> = pipe.query_async(&mut **con).await?;
        out.extend(
            letters
                .into_iter()
                .zip(owners)
                .filter(|(_, owner)| owner.as_deref() == Some(tenant))
                .map(|(l, _)| l),
        );
    }
    out.truncate(limit);
    Ok(out)
}

/// Up to `limit` dead letters of `queue`, newest first, older than entry `before` when given
/// (the cursor of the next page: the `entry` of the last letter of this one). One `XREVRANGE`.
pub async fn read_dead<C: redis::aio::ConnectionLike>(
    con: &mut C,
    state: &AppState,
    queue: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
    let range: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(state.keys.dead(queue))
        .arg(end)
        .arg("-")
        .arg("COUNT")
        .arg(limit)
        .query_async(con)
        .await
        .map_err(StoreError::from)?;
    Ok(range
        .ids
        .into_iter()
        .map(|e| DeadLetter {
            id: e.get("id").unwrap_or_default(),
            error: e.get("error").unwrap_or_default(),
            attempts: e.get::<String>("attempts").and_then(|a| a.parse().ok()),
            at: e.get("at").unwrap_or_default(),
            queue: queue.to_owned(),
            entry: e.id,
        })
        .collect())
}

/// `POST /api/dead/{id}/retry`: 202 once the task is queued again.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let queue = task::queue_of(&id).ok_or_else(|| ApiError::NotFound(format!("no task {id:?}")))?;
    super::tasks::owned(&state, &caller, queue, &id).await?;
    let mut con = state.pool.get().await?;
    let reply = scripts::replay_dead(&mut *con, &state.keys, queue, &id).await?;
    match reply.status {
        ReplayStatus::Queued => {
            tracing::info!(task_id = %id, queue, state = "queued", "dead letter replayed");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "state": "queued"})),
            ))
        }
        ReplayStatus::NotDead => Err(ApiError::Conflict(format!(
            "task {id} is {}, not dead; only dead tasks can be replayed",
            reply.state
        ))),
        // No hash: the task may still live only in its stream entry (queued or running).
        ReplayStatus::Missing => {
            match store::load_task(&mut *con, &state.keys, queue, &id).await? {
                Some(t) => Err(ApiError::Conflict(format!(
                    "task {id} is {}, not dead; only dead tasks can be replayed",
                    t.state.as_str()
                ))),
                None => Err(ApiError::NotFound(format!("no task {id:?}"))),
            }
        }
    }
}
