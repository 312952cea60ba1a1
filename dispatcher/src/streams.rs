//! Feeds every streaming client of this dispatcher from the output streams of their tasks: one
//! duty reads the output streams of all watched tasks per round trip (`XREAD` over many keys on
//! one dedicated blocking connection) and fans the entries out to the clients' bounded channels.
//! A client holds no Redis connection of its own.
//!
//! A new key must not wait for a long `XREAD BLOCK` to end: subscribing wakes the duty, which
//! interrupts its own blocked read with `CLIENT UNBLOCK` from a shared connection and reads
//! again with the new key. A client whose channel is full (it reads slower than the answer is
//! written) is dropped from the fan-out: the dispatcher never buffers more than `STREAM_BUFFER`
//! reads for it, and the client catches up from Redis by its last entry id, then subscribes
//! again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::streams::StreamReadReply;
use switchyard_shared::Pool;
use switchyard_shared::config::RedisConfig;
use switchyard_shared::output::{self, Stored};
use switchyard_shared::store::{self, StoreError};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::replay::EntryId;

/// How long one `XREAD` blocks when nothing is written; a subscription interrupts it.
const BLOCK: Duration = Duration::from_millis(2_000);
/// Most entries read per key per round trip.
const READ_COUNT: usize = 256;
/// Pause before re-sending `CLIENT UNBLOCK` when the read was not blocked yet.
const UNBLOCK_RETRY: Duration = Duration::from_millis(1);

/// Entries of one output stream, read in one round trip, shared by every client of the task.
pub type Chunk = Arc<[Stored]>;

/// The registry of watched output streams, shared by the handlers and the duty.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    watched: Mutex<Watched>,
    /// Wakes the duty when a key was added.
    wake: Notify,
    next_id: AtomicU64,
    buffer: usize,
    /// Fired on dispatcher shutdown: every stream ends (clients resume elsewhere).
    closing: CancellationToken,
}

#[derive(Debug, Default)]
struct Watched {
    keys: HashMap<String, Feed>,
    /// Bumped when a key is added, so the duty knows whether its blocked read misses one.
    generation: u64,
}

#[derive(Debug)]
struct Feed {
    /// Last entry id the duty read (or a subscriber had read when it added the key).
    cursor: String,
    clients: Vec<(u64, mpsc::Sender<Chunk>)>,
}

/// A client's place in the fan-out; dropping it leaves. `rx` ends (`None`) when the client was
/// dropped for reading too slowly.
#[derive(Debug)]
pub struct Subscriber {
    hub: Hub,
    key: String,
    id: u64,
    /// Chunks read for this client.
    pub rx: mpsc::Receiver<Chunk>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut w = self.hub.lock();
        if let Some(feed) = w.keys.get_mut(&self.key) {
            feed.clients.retain(|(id, _)| *id != self.id);
            if feed.clients.is_empty() {
                w.keys.remove(&self.key);
            }
        }
    }
}

fn later(a: &str, b: &str) -> bool {
    match (a.parse::<EntryId>(), b.parse::<EntryId>()) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

impl Hub {
    /// A hub whose clients each queue at most `buffer` chunks.
    pub fn new(buffer: usize) -> Self {
        Self {
            inner: Arc::new(HubInner {
                watched: Mutex::new(Watched::default()),
                wake: Notify::new(),
                next_id: AtomicU64::new(0),
                buffer: buffer.max(1),
                closing: CancellationToken::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.inner
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to the output stream `key`, whose entries up to `read_to` (`0-0`: none) the
    /// caller has read itself. Answers the subscription, and the id up to which the caller must
    /// still read itself when the fan-out had already read past `read_to` (entries it delivered
    /// before this subscription).
    pub fn subscribe(&self, key: &str, read_to: &str) -> (Subscriber, Option<String>) {
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut w = self.lock();
        let gap = match w.keys.get_mut(key) {
            Some(feed) => {
                feed.clients.push((id, tx));
                later(&feed.cursor, read_to).then(|| feed.cursor.clone())
            }
            None => {
                w.keys.insert(
                    key.to_owned(),
                    Feed {
                        cursor: read_to.to_owned(),
                        clients: vec![(id, tx)],
                    },
                );
                w.generation += 1;
                self.inner.wake.notify_one();
                None
            }
        };
        drop(w);
        let sub = Subscriber {
            hub: self.clone(),
            key: key.to_owned(),
            id,
            rx,
        };
        (sub, gap)
    }

    /// Output streams watched now.
    pub fn watched(&self) -> usize {
        self.lock().keys.len()
    }

    /// Clients subscribed now.
    pub fn clients(&self) -> usize {
        self.lock().keys.values().map(|f| f.clients.len()).sum()
    }

    /// Ends every stream now and from now on (dispatcher shutdown).
    pub fn close(&self) {
        self.inner.closing.cancel();
    }

    /// Fires when the dispatcher shuts down.
    pub fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }

    /// Hands `entries` (read after `cursor` up to `last`) to the clients of `key`. A client
    /// whose channel is full is dropped from the fan-out; it catches up from Redis.
    fn deliver(&self, key: &str, last: String, entries: Vec<Stored>) {
        let chunk: Chunk = entries.into();
        let mut w = self.lock();
        let Some(feed) = w.keys.get_mut(key) else {
            return;
        };
        feed.cursor = last;
        if chunk.is_empty() {
            return;
        }
        feed.clients
            .retain(|(id, tx)| match tx.try_send(chunk.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    debug!(
                        component = "streams",
                        key,
                        client = id,
                        "slow stream client dropped from the fan-out; it catches up from Redis"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}

/// The duty that reads the watched output streams.
#[derive(Debug)]
pub struct OutputTail {
    hub: Hub,
    pool: Pool,
    redis: RedisConfig,
    /// The blocking connection and its `CLIENT ID`.
    conn: Option<(store::Conn, i64)>,
}

impl OutputTail {
    /// A tail feeding `hub`; `pool` carries the `CLIENT UNBLOCK`s.
    pub fn new(hub: Hub, pool: Pool, redis: RedisConfig) -> Self {
        Self {
            hub,
            pool,
            redis,
            conn: None,
        }
    }

    /// Reads until `shutdown`, reconnecting after failures; with nothing watched it waits for a
    /// subscription.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            if self.hub.watched() == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.hub.inner.wake.notified() => {}
                }
            }
            let r = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.tick() => r,
            };
            match r {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    self.conn = None;
                    let pause = (Duration::from_millis(50) * 2u32.pow(failures.min(6)))
                        .min(Duration::from_secs(2));
                    warn!(component = "streams", error = %e, retry_in_ms = pause.as_millis() as u64, "reading output streams failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// One round trip: reads new entries of every watched output stream (blocking up to
    /// [`BLOCK`] when there are none, less when a key is added) and delivers them. Returns how
    /// many entries it read.
    pub async fn tick(&mut self) -> Result<usize, StoreError> {
        let (keys, generation) = {
            let w = self.hub.lock();
            let keys: Vec<(String, String)> = w
                .keys
                .iter()
                .map(|(k, f)| (k.clone(), f.cursor.clone()))
                .collect();
            (keys, w.generation)
        };
        if keys.is_empty() {
            return Ok(0);
        }
        if self.conn.is_none() {
            let mut conn = store::blocking_connection(&self.redis, BLOCK).await?;
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await?;
            self.conn = Some((conn, id));
        }
        let Some((conn, client_id)) = self.conn.as_mut() else {
            return Ok(0);
        };
        let cmd = store::xread(
            READ_COUNT,
            BLOCK,
            keys.iter().map(|(k, c)| (k.as_str(), c.as_str())),
        );
        let client_id = *client_id;
        let read = cmd.query_async::<Option<StreamReadReply>>(conn);
        tokio::pin!(read);
        let mut unblock_at: Option<Instant> = None;
        let reply = loop {
            tokio::select! {
                biased;
                r = &mut read => break r?,
                () = self.hub.inner.wake.notified(), if unblock_at.is_none() => {
                    if self.hub.lock().generation != generation {
                        unblock_at = Some(Instant::now());
                    }
                }
                () = tokio::time::sleep_until(unblock_at.unwrap_or_else(Instant::now)), if unblock_at.is_some() => {
                    // 0 = not blocked yet (the read may still be on its way): try again shortly.
                    let mut con = self.pool.get().await?;
                    let unblocked: i64 = redis::cmd("CLIENT").arg("UNBLOCK").arg(client_id).query_async(&mut *con).await?;
                    unblock_at = (unblocked == 0).then(|| Instant::now() + UNBLOCK_RETRY);
                }
            }
        };
        let mut n = 0;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(last) = key.ids.last().map(|e| e.id.clone()) else {
                continue;
            };
            n += key.ids.len();
            let entries: Vec<Stored> = key
                .ids
                .iter()
                .filter_map(|e| match output::decode(e) {
                    Ok(s) => Some(s),
                    Err(err) => {
                        debug!(component = "streams", error = %err, "skipped an output entry");
                        None
                    }
                })
                .collect();
            self.hub.deliver(&key.key, last, entries);
        }
        Ok(n)
    }
}
