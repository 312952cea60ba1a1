//! Which of this worker's queues are paused and which lanes ([`switchyard_shared::lane`]) they
//! have, and the watcher that keeps both fresh. The consumer
//! reads only from queues not paused ([`PausedQueues::begin_read`]), so a pause costs no Redis
//! command per fetch: the watcher re-reads the paused hash (one `HGETALL`) every
//! `HEARTBEAT_INTERVAL_MS`, and at once when the canceller's subscription brings a notice from
//! the dispatcher ([`PausedQueues::poke`]).
//!
//! A consumer already blocked in `XREADGROUP` on a queue that just got paused would still take
//! the next entry of it for up to `WORKER_BLOCK_MS`, and one blocked on a queue's own stream
//! would not see a new lane: the watcher ends such a read early with
//! `CLIENT UNBLOCK <id> TIMEOUT` (the read returns nothing, as on a timeout, so no entry is
//! delivered and dropped), and the consumer reads again with the new set. Resuming unblocks it
//! the same way, so a resumed queue is read at once too.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_shared::keys::Keys;
use switchyard_shared::store::StoreError;
use switchyard_shared::{lane, paused};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::{Ctx, lock};
use crate::lanes;

/// How long the watcher keeps trying to unblock a read that was sent but not yet blocked.
const UNBLOCK_TRIES: u32 = 50;
const UNBLOCK_PAUSE: Duration = Duration::from_millis(2);

/// The paused set as this worker knows it, shared by the watcher, the consumer and the canceller.
#[derive(Debug, Clone, Default)]
pub struct PausedQueues(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// The set changed (consumer waiting with every queue paused).
    changed: Notify,
    /// A notice arrived (watcher).
    poked: Notify,
}

#[derive(Debug, Default)]
struct State {
    paused: HashSet<String>,
    /// Queue → its lanes (besides its own stream), as its lanes set last read.
    lanes: BTreeMap<String, BTreeSet<String>>,
    /// Bumped on every change of `paused`.
    generation: u64,
    /// The generation the consumer's read in flight was filtered under.
    reading: Option<u64>,
    /// The generation the consumer's last read was filtered under.
    last_read: u64,
    /// `CLIENT ID` of the consumer's blocking connection.
    client_id: Option<i64>,
}

impl PausedQueues {
    /// Whether `queue` is paused.
    pub fn is_paused(&self, queue: &str) -> bool {
        lock(&self.0.state).paused.contains(queue)
    }

    /// The paused queues, sorted.
    pub fn snapshot(&self) -> BTreeSet<String> {
        lock(&self.0.state).paused.iter().cloned().collect()
    }

    /// The consumer's blocking connection (its `CLIENT ID`), or `None` when it has none.
    pub fn set_client(&self, id: Option<i64>) {
        lock(&self.0.state).client_id = id;
    }

    /// The `(stream, source)` pairs of `all` (queue streams) not paused, each followed by its
    /// queue's lanes, and marks a read in flight under the current set (a change from now on
    /// unblocks it).
    pub fn begin_read(&self, keys: &Keys, all: &[(String, String)]) -> Vec<(String, String)> {
        let mut s = lock(&self.0.state);
        s.reading = Some(s.generation);
        s.last_read = s.generation;
        let mut out = Vec::with_capacity(all.len());
        for (stream, q) in all.iter().filter(|(_, q)| !s.paused.contains(q)) {
            out.push((stream.clone(), q.clone()));
            for l in s.lanes.get(q).into_iter().flatten() {
                let source = lane::source(q, Some(l));
                out.push((keys.stream(&source), source));
            }
        }
        out
    }

    /// The lanes of each queue as last read.
    pub fn lanes(&self) -> BTreeMap<String, BTreeSet<String>> {
        lock(&self.0.state).lanes.clone()
    }

    /// Every source of `queues` (paused or not): each queue, then its lanes as last read.
    pub fn sources(&self, queues: &[String]) -> Vec<String> {
        let s = lock(&self.0.state);
        let mut out = Vec::with_capacity(queues.len());
        for q in queues {
            out.push(q.clone());
            for l in s.lanes.get(q).into_iter().flatten() {
                out.push(lane::source(q, Some(l)));
            }
        }
        out
    }

    /// The read begun by [`Self::begin_read`] returned.
    pub fn end_read(&self) {
        lock(&self.0.state).reading = None;
    }

    /// Waits until the set differs from the one the last read was filtered under, or `at_most`
    /// passed (every queue of the worker is paused).
    pub async fn wait_change(&self, at_most: Duration) {
        let notified = self.0.changed.notified();
        tokio::pin!(notified);
        // Registered before the check: a change between the read and here is not missed.
        notified.as_mut().enable();
        {
            let s = lock(&self.0.state);
            if s.generation != s.last_read {
                return;
            }
        }
        let _ = tokio::time::timeout(at_most, notified).await;
    }

    /// A notice arrived on the paused channel (or a new subscription began): re-read now.
    pub fn poke(&self) {
        self.0.poked.notify_one();
    }

    /// Replaces the set. Returns the consumer's connection id when a read in flight was
    /// filtered under an older set and must be ended early, with the generation of that read.
    fn apply(
        &self,
        new: HashSet<String>,
        lanes: Option<BTreeMap<String, BTreeSet<String>>>,
    ) -> Option<(i64, u64)> {
        let mut s = lock(&self.0.state);
        let lanes = lanes.unwrap_or_else(|| s.lanes.clone());
        if s.paused == new && s.lanes == lanes {
            return None;
        }
        s.paused = new;
        s.lanes = lanes;
        s.generation += 1;
        self.0.changed.notify_waiters();
        match (s.reading, s.client_id) {
            (Some(g), Some(id)) if g < s.generation => Some((id, g)),
            _ => None,
        }
    }

    /// Whether the read filtered under generation `g` is still in flight.
    fn still_reading(&self, g: u64) -> bool {
        lock(&self.0.state).reading == Some(g)
    }
}

/// Re-reads the paused hash every heartbeat interval and on every notice.
#[derive(Debug)]
pub struct Watcher {
    ctx: Ctx,
}

impl Watcher {
    /// A watcher for this worker's context.
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }

    /// Watches until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = self.ctx.cfg.heartbeat_interval;
        loop {
            if let Err(e) = self.tick().await {
                warn!(component = "paused", error = %e, "reading the paused queues failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.ctx.paused.0.poked.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One read of the paused hash and of the lanes sets: updates both and ends a read
    /// filtered under the old ones.
    pub async fn tick(&self) -> Result<(), StoreError> {
        let mut con = self.ctx.pool.get().await?;
        let all = paused::read(&mut *con, &self.ctx.keys).await?;
        let known = self.ctx.paused.lanes();
        let queues = &self.ctx.cfg.worker_queues;
        let lanes = lanes::read(&mut *con, &self.ctx.keys, queues, &known).await?;
        let mine: HashSet<String> = all
            .into_keys()
            .filter(|q| self.ctx.cfg.worker_queues.contains(q))
            .collect();
        let paused = &self.ctx.paused;
        let Some((client, generation)) = paused.apply(mine.clone(), Some(lanes)) else {
            return Ok(());
        };
        info!(component = "paused", paused = ?mine, "paused queues changed");
        let began = Instant::now();
        // The read may be on its way to Redis but not yet blocked: UNBLOCK answers 0 then.
        for _ in 0..UNBLOCK_TRIES {
            let n: i64 = redis::cmd("CLIENT")
                .arg("UNBLOCK")
                .arg(client)
                .arg("TIMEOUT")
                .query_async(&mut *con)
                .await?;
            if n > 0 || !paused.still_reading(generation) {
                break;
            }
            tokio::time::sleep(UNBLOCK_PAUSE).await;
        }
        tracing::debug!(
            component = "paused",
            took_us = began.elapsed().as_micros() as u64,
            "consumer read ended early"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams() -> Vec<(String, String)> {
        ["chat", "tool"]
            .iter()
            .map(|q| (format!("sy:{{{q}}}:stream"), (*q).to_owned()))
            .collect()
    }

    fn set(qs: &[&str]) -> HashSet<String> {
        qs.iter().map(|q| (*q).to_owned()).collect()
    }

    #[test]
    fn a_read_leaves_out_the_paused_queues() {
        let p = PausedQueues::default();
        assert_eq!(p.begin_read(&Keys::new("sy:"), &streams()).len(), 2);
        p.end_read();
        assert_eq!(
            p.apply(set(&["tool"]), None),
            None,
            "no read in flight: nothing to end"
        );
        let read = p.begin_read(&Keys::new("sy:"), &streams());
        assert_eq!(read, vec![streams()[0].clone()]);
        assert!(p.is_paused("tool") && !p.is_paused("chat"));
    }

    #[test]
    fn a_change_during_a_read_ends_it_and_the_same_set_does_not() {
        let p = PausedQueues::default();
        p.set_client(Some(42));
        p.begin_read(&Keys::new("sy:"), &streams());
        assert_eq!(p.apply(set(&[]), None), None, "same set: the read stands");
        assert_eq!(p.apply(set(&["chat"]), None), Some((42, 0)));
        assert!(p.still_reading(0));
        p.end_read();
        assert!(!p.still_reading(0));
        // A read begun under the new set is not ended by it.
        p.begin_read(&Keys::new("sy:"), &streams());
        assert!(p.still_reading(1));
        assert_eq!(p.apply(set(&[]), None), Some((42, 1)), "resume ends it too");
    }

    #[tokio::test]
    async fn waiting_for_a_change_returns_at_once_when_it_already_happened() {
        let p = PausedQueues::default();
        p.begin_read(&Keys::new("sy:"), &streams());
        p.end_read();
        p.apply(set(&["chat", "tool"]), None);
        let began = std::time::Instant::now();
        p.wait_change(Duration::from_secs(30)).await;
        assert!(began.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn without_a_blocking_connection_there_is_nothing_to_unblock() {
        let p = PausedQueues::default();
        p.begin_read(&Keys::new("sy:"), &streams());
        assert_eq!(p.apply(set(&["tool"]), None), None);
    }
}
