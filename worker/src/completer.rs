//! Fuses the successes of concurrent attempts into one `complete.lua` call per queue: each
//! [`Reporter`](crate::reporter::Reporter) sends its completion here and waits for the answer,
//! so under load one script call commits many results.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use switchyard_shared::clock;
use switchyard_shared::connect::Conn;
use switchyard_shared::retry::while_unavailable;
use switchyard_shared::scripts::{self, CompleteStatus, Completed, Completion};
use switchyard_shared::store::{self, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;

/// Most completions fused into one script call.
pub(crate) const MAX_BATCH: usize = 256;

/// One success waiting to be committed, and where its answer goes.
pub(crate) struct Pending {
    pub(crate) queue: String,
    pub(crate) completion: Completion,
    pub(crate) done: oneshot::Sender<Result<CompleteStatus, String>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.completion.id)
            .finish()
    }
}

/// Batches successful completions into `complete.lua` calls.
#[derive(Debug)]
pub struct Completer {
    ctx: Ctx,
    rx: mpsc::Receiver<Pending>,
    give_up: CancellationToken,
}

impl Completer {
    /// A completer serving the senders of `rx`; `give_up` ends retries against an unreachable
    /// Redis.
    pub(crate) fn new(ctx: Ctx, rx: mpsc::Receiver<Pending>, give_up: CancellationToken) -> Self {
        Self { ctx, rx, give_up }
    }

    /// Commits batches until every [`Reporter`](crate::reporter::Reporter) is gone and the
    /// queue is drained.
    pub async fn run(mut self) {
        while self.tick().await {}
    }

    /// Waits for at least one completion, takes whatever else is already waiting (up to a
    /// batch), commits it, and answers each sender. Returns false once no reporter is left.
    pub async fn tick(&mut self) -> bool {
        let Some(first) = self.rx.recv().await else {
            return false;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut by_queue: HashMap<String, Vec<Pending>> = HashMap::new();
        for p in batch {
            by_queue.entry(p.queue.clone()).or_default().push(p);
        }
        for (queue, pendings) in by_queue {
            let started = Instant::now();
            let completions: Vec<Completion> =
                pendings.iter().map(|p| p.completion.clone()).collect();
            let result = self.commit(&queue, &completions).await;
            answer(pendings, result, started);
        }
        true
    }

    /// One `complete.lua` call for `completions` of `queue`, retried while Redis is away.
    async fn commit(
        &self,
        queue: &str,
        completions: &[Completion],
    ) -> Result<Vec<Completed>, StoreError> {
        let ctx = &self.ctx;
        let tried = AtomicBool::new(false);
        while_unavailable("complete", &self.give_up, || async {
            let mut con = ctx.pool.pinned().await?;
            let now = clock::now_rfc3339();
            let redone = tried.swap(true, Ordering::Relaxed);
            let mut done =
                scripts::complete(&mut *con, &ctx.batch_call(queue, &now), completions).await?;
            if redone {
                self.own_earlier_commits(&mut con, queue, completions, &mut done)
                    .await?;
            }
            // REDIS_WAIT_REPLICAS: done only once replicas have it. A broken socket redoes the
            // call (after a failover the first call's writes may be gone).
            store::wait_replicated(&mut *con, &ctx.redis, &self.give_up).await?;
            Ok(done)
        })
        .await
    }

    /// On a redone call, a fenced answer may be this worker's own first call, whose reply or
    /// `WAIT` was lost: such a task is recorded as its success and answered `Succeeded`.
    async fn own_earlier_commits(
        &self,
        con: &mut Conn,
        queue: &str,
        completions: &[Completion],
        done: &mut [Completed],
    ) -> Result<(), StoreError> {
        let ctx = &self.ctx;
        for (c, d) in completions.iter().zip(done.iter_mut()) {
            if d.status == CompleteStatus::Fenced
                && scripts::recorded_as_own(&mut *con, &ctx.keys, queue, &ctx.id, c).await?
            {
                tracing::info!(task_id = %c.id, queue, "redone completion found its own earlier commit");
                d.status = CompleteStatus::Succeeded;
            }
        }
        Ok(())
    }
}

/// Answers each sender of a committed batch with its task's status, or the batch's error.
fn answer(pendings: Vec<Pending>, result: Result<Vec<Completed>, StoreError>, started: Instant) {
    match result {
        Ok(replies) => {
            let by_id: HashMap<String, CompleteStatus> =
                replies.into_iter().map(|c| (c.id, c.status)).collect();
            for p in pendings {
                let status = by_id
                    .get(&p.completion.id)
                    .copied()
                    .ok_or_else(|| "complete.lua did not answer for this task".to_owned());
                let _ = p.done.send(status);
            }
            tracing::trace!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "batch committed"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            for p in pendings {
                let _ = p.done.send(Err(msg.clone()));
            }
        }
    }
}
