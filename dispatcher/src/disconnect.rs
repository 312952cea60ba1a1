//! Cancel on disconnect: when the client of a request that waits for a task goes away before the
//! answer, the task is cancelled (a queued one at once, a running one through the usual cancel
//! path: its worker drops the provider request). A streaming client first gets
//! `RESUME_GRACE_MS` to resume the task's stream on any dispatcher; a resume is counted in Redis
//! (`keys::resumes`), so the dispatcher that saw the disconnect sees it too.

use std::time::Duration;

use switchyard_shared::clock;
use switchyard_shared::scripts::{self, CancelStatus};
use switchyard_shared::store::StoreError;
use tracing::{info, warn};

use crate::state::AppState;

/// What happens to the task when its client goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisconnect {
    /// Nothing: the task runs on (`"detach": true`, `POST /api/tasks` by default).
    RunOn,
    /// Cancel it at once.
    Cancel,
    /// Cancel it unless a client resumes its stream within the grace period.
    CancelUnlessResumed(Duration),
}

impl OnDisconnect {
    /// The policy of a streaming chat client: a grace of `grace` (zero: at once).
    pub fn streaming(grace: Duration) -> Self {
        if grace.is_zero() {
            Self::Cancel
        } else {
            Self::CancelUnlessResumed(grace)
        }
    }
}

/// Armed while a request waits for its task; dropped armed (the client went away and the
/// request future with it), it applies its policy in a task of its own.
#[derive(Debug)]
pub struct DisconnectGuard {
    state: AppState,
    queue: String,
    id: String,
    policy: OnDisconnect,
    armed: bool,
}

impl DisconnectGuard {
    /// A guard for task `id` of `queue`.
    pub fn new(state: &AppState, queue: &str, id: &str, policy: OnDisconnect) -> Self {
        Self {
            state: state.clone(),
            queue: queue.to_owned(),
            id: id.to_owned(),
            policy,
            armed: true,
        }
    }

    /// The client got its answer (or the dispatcher ended the request): nothing to do on drop.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        // A dispatcher that stops closes its streams itself: that is not the client leaving.
        if !self.armed || self.state.streams.closing().is_cancelled() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, queue, id) = (self.state.clone(), self.queue.clone(), self.id.clone());
        match self.policy {
            OnDisconnect::RunOn => {}
            OnDisconnect::Cancel => {
                rt.spawn(async move { cancel(&state, &queue, &id, "its client went away").await });
            }
            OnDisconnect::CancelUnlessResumed(grace) => {
                rt.spawn(async move { cancel_unless_resumed(&state, &queue, &id, grace).await });
            }
        }
    }
}

/// Counts a resume of task `id`'s stream, for the dispatchers whose client of it went away.
pub async fn count_resume(state: &AppState, queue: &str, id: &str) -> Result<(), StoreError> {
    let key = state.keys.resumes(queue, id);
    let mut con = state.pool.get().await?;
    redis::pipe()
        .cmd("INCR")
        .arg(&key)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(u64::try_from(state.retention.result_ttl.as_millis()).unwrap_or(u64::MAX))
        .ignore()
        .query_async::<()>(&mut *con)
        .await?;
    Ok(())
}

async fn resumes(state: &AppState, queue: &str, id: &str) -> Result<u64, StoreError> {
    let mut con = state.pool.get().await?;
    let n: Option<u64> = redis::cmd("GET")
        .arg(state.keys.resumes(queue, id))
        .query_async(&mut *con)
        .await?;
    Ok(n.unwrap_or(0))
}

/// Waits out `grace`, then cancels the task unless its stream was opened since it began (the
/// task is new when its streaming request starts, so any count means a resume).
async fn cancel_unless_resumed(state: &AppState, queue: &str, id: &str, grace: Duration) {
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        // A dispatcher that stops during the grace leaves the task running: not knowing
        // whether the client came back elsewhere, it does not cancel.
        () = state.streams.closing().cancelled() => return,
    }
    match resumes(state, queue, id).await {
        Ok(0) => {
            cancel(
                state,
                queue,
                id,
                "its streaming client went away and did not resume",
            )
            .await;
        }
        Ok(n) => {
            info!(task_id = %id, queue, resumes = n, "streaming client resumed; the task runs on")
        }
        Err(e) => {
            warn!(task_id = %id, queue, error = %e, "cannot read the resume count; the task runs on")
        }
    }
}

async fn cancel(state: &AppState, queue: &str, id: &str, why: &str) {
    let reply = async {
        let mut con = state.pool.get().await?;
        let now = clock::now_rfc3339();
        scripts::cancel(&mut *con, &state.keys, queue, id, &now, &state.retention).await
    }
    .await;
    match reply.map(|r| r.status) {
        Ok(CancelStatus::Cancelled) => {
            info!(task_id = %id, queue, state = "cancelled", reason = why, "task cancelled")
        }
        Ok(CancelStatus::Cancelling) => {
            info!(task_id = %id, queue, reason = why, "cancel requested from the running worker")
        }
        Ok(CancelStatus::Terminal | CancelStatus::Missing) => {}
        Err(e) => {
            warn!(task_id = %id, queue, error = %e, "cannot cancel the task of a departed client")
        }
    }
}
