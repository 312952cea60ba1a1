//! The consumer loop: fetches batches of entries from the worker's queues with `XREADGROUP`
//! under its own consumer name, as many as it has free capacity for, and hands them to the
//! [`Runner`]. A fresh entry carries its whole record and runs at once, with no script and no
//! write; a reference entry (the task has a hash) goes through `start.lua` first. Paused queues
//! are left out of the read ([`crate::paused`]).
//!
//! A queue with lanes ([`switchyard_shared::lane`]: per-tenant, per-priority sub-streams) is
//! read in turns: each fetch serves the priority [`lane::SCHEDULE`] names first, with one
//! non-blocking `XREADGROUP` over that priority's lanes and COUNT split between them, so every
//! tenant with work gets the same share of the fetch whatever its backlog; a priority with
//! nothing waiting passes the turn to the next. Only when every lane is empty does it block,
//! over all of them. A queue without lanes is read as before: one blocking `XREADGROUP`.

use std::collections::HashMap;

use redis::streams::StreamReadReply;
use switchyard_shared::clock;
use switchyard_shared::duty::{self, Duty, Next, Pace};
use switchyard_shared::keys::GROUP;
use switchyard_shared::lane;
use switchyard_shared::record::Entry;
use switchyard_shared::scripts::{Delivered, Runnable};
use switchyard_shared::store::{self, StoreError};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::Ctx;
use crate::runner::Runner;

/// Fetches and starts tasks.
#[derive(Debug)]
pub struct Consumer {
    ctx: Ctx,
    runner: Runner,
    conn: Option<store::Conn>,
    /// Stream key → queue, for the worker's queues.
    streams: Vec<(String, String)>,
    /// Reads served on lanes so far: the position in [`lane::SCHEDULE`].
    turn: usize,
}

impl Consumer {
    /// A consumer that hands what it fetches to `runner`.
    pub fn new(ctx: Ctx, runner: Runner) -> Self {
        let streams = ctx
            .cfg
            .worker_queues
            .iter()
            .map(|q| (ctx.keys.stream(q), q.clone()))
            .collect();
        Self {
            ctx,
            runner,
            conn: None,
            streams,
            turn: 0,
        }
    }

    /// Fetches until `shutdown`. A read in progress is allowed to finish (at most
    /// `WORKER_BLOCK_MS`), so no delivered entry is dropped on the floor.
    pub async fn run(self, shutdown: CancellationToken) {
        // Continuous: each pass waits for capacity, then blocks in XREADGROUP.
        duty::run(self, Pace::Continuous, shutdown).await;
    }

    /// One fetch: reads up to the free capacity (at least one entry), then takes a permit for
    /// each entry it got, starts and spawns them. Entries it could not start before `shutdown`
    /// stay pending under this consumer and are handed back by the shutdown sequence. Returns
    /// how many tasks were started.
    pub async fn tick(&mut self, shutdown: &CancellationToken) -> Result<usize, StoreError> {
        let count = self
            .runner
            .permits()
            .available_permits()
            .clamp(1, self.ctx.cfg.worker_batch_size);
        let delivered = match self.read(count).await {
            Ok(d) => d,
            Err(e) => {
                if e.is_nogroup() {
                    // The stream or group vanished (Redis restarted empty, or an operator
                    // deleted it): recreate and read again next time.
                    let mut con = self.ctx.pool.get().await?;
                    let sources = self.ctx.paused.sources(&self.ctx.cfg.worker_queues);
                    store::ensure_groups(&mut *con, &self.ctx.keys, &sources).await?;
                    info!(component = "consumer", "consumer groups re-created");
                    return Ok(0);
                }
                self.conn = None;
                return Err(e);
            }
        };
        let mut started = 0;
        for Fetched {
            queue,
            fresh,
            references,
        } in delivered
        {
            // The reclaimer may have used capacity during the read: wait for it to come back.
            let wanted = fresh.len() + references.len();
            let mut permits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(wanted);
            for _ in 0..wanted {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(started),
                    p = self.runner.permits().clone().acquire_owned() => match p {
                        Ok(p) => permits.push(p),
                        Err(_) => return Ok(started),
                    },
                }
            }
            started += self.runner.spawn_fresh(&queue, fresh, &mut permits);
            started += self
                .runner
                .start_and_spawn(&queue, &references, &mut permits)
                .await?;
        }
        Ok(started)
    }

    async fn read(&mut self, count: usize) -> Result<Vec<Fetched>, StoreError> {
        if self.conn.is_none() {
            let block = self.ctx.cfg.worker_block;
            let mut conn = store::blocking_connection(&self.ctx.redis, block).await?;
            // The paused-queue watcher ends a read filtered under an outdated set by this id.
            // Without it (an ACL that forbids CLIENT) a pause takes up to WORKER_BLOCK_MS.
            let id = redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await;
            self.ctx.paused.set_client(id.ok());
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let streams = self.ctx.paused.begin_read(&self.ctx.keys, &self.streams);
        if streams.is_empty() {
            self.ctx.paused.end_read();
            self.ctx.paused.wait_change(self.ctx.cfg.worker_block).await;
            return Ok(Vec::new());
        }
        let block = self.ctx.cfg.worker_block.as_millis() as u64;
        let reply = if streams.iter().all(|(_, src)| lane::split(src).1.is_none()) {
            xreadgroup(conn, &self.ctx.id, &streams, count, Some(block)).await
        } else {
            let turn = lane::SCHEDULE[self.turn % lane::SCHEDULE.len()];
            self.turn = self.turn.wrapping_add(1);
            read_lanes(conn, &self.ctx.id, &streams, count, turn, block).await
        };
        self.ctx.paused.end_read();
        let reply = reply?;
        let queue_of: HashMap<&str, &str> = streams
            .iter()
            .map(|(s, q)| (s.as_str(), q.as_str()))
            .collect();
        let mut out = Vec::new();
        let started_at = clock::now_rfc3339();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(queue) = queue_of.get(key.key.as_str()) else {
                continue;
            };
            let mut fetched = Fetched {
                queue: (*queue).to_owned(),
                fresh: Vec::new(),
                references: Vec::new(),
            };
            for sid in key.ids {
                let fields = sid
                    .map
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), redis::from_redis_value_ref(v).ok()?)))
                    .collect();
                match Entry::decode(queue, &sid.id, fields) {
                    // Delivered once (a `>` read), no hash: nothing to decide before it runs.
                    Ok(Entry::Fresh(q)) => {
                        fetched
                            .fresh
                            .push(Runnable::fresh(sid.id, q, started_at.clone()));
                    }
                    Ok(Entry::Reference(id)) => {
                        fetched.references.push(Delivered { entry: sid.id, id });
                    }
                    Err(e) => {
                        self.discard_malformed(&key.key, &sid.id, e.to_string())
                            .await
                    }
                }
            }
            out.push(fetched);
        }
        Ok(out)
    }

    /// An entry that is neither a record nor a reference was not written by a dispatcher; it
    /// can never run.
    async fn discard_malformed(&self, stream: &str, entry: &str, why: String) {
        warn!(
            component = "consumer",
            stream, entry, error = %why, "entry carries no task; discarding it"
        );
        if let Ok(mut con) = self.ctx.pool.get().await {
            let _: Result<(), _> = redis::pipe()
                .cmd("XACK")
                .arg(stream)
                .arg(GROUP)
                .arg(entry)
                .ignore()
                .cmd("XDEL")
                .arg(stream)
                .arg(entry)
                .ignore()
                .query_async(&mut *con)
                .await;
        }
    }
}

/// One `XREADGROUP` of up to `count` new entries from each of `streams`, blocking up to
/// `block` ms when given.
async fn xreadgroup(
    conn: &mut store::Conn,
    consumer: &str,
    streams: &[(String, String)],
    count: usize,
    block: Option<u64>,
) -> Result<Option<StreamReadReply>, StoreError> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS");
    for (stream, _) in streams {
        cmd.arg(stream);
    }
    for _ in streams {
        cmd.arg(">");
    }
    Ok(cmd.query_async(conn).await?)
}

/// A read of streams some of which are lanes: the priorities in `turn`'s order, each with one
/// non-blocking read over its streams (`count` split between them, at least one each), until
/// one delivers; then, when none did, one blocking read over all of them.
async fn read_lanes(
    conn: &mut store::Conn,
    consumer: &str,
    streams: &[(String, String)],
    count: usize,
    turn: [lane::Priority; 3],
    block: u64,
) -> Result<Option<StreamReadReply>, StoreError> {
    for p in turn {
        let of_p: Vec<(String, String)> = streams
            .iter()
            .filter(|(_, src)| lane::priority_of(src) == p)
            .cloned()
            .collect();
        if of_p.is_empty() {
            continue;
        }
        let per = (count / of_p.len()).max(1);
        let reply = xreadgroup(conn, consumer, &of_p, per, None).await?;
        if reply
            .as_ref()
            .is_some_and(|r| r.keys.iter().any(|k| !k.ids.is_empty()))
        {
            return Ok(reply);
        }
    }
    let per = (count / streams.len()).max(1);
    xreadgroup(conn, consumer, streams, per, Some(block)).await
}

/// What one read delivered from one queue (or one lane of it).
struct Fetched {
    /// The source: the queue, or the queue and lane.
    queue: String,
    /// Fresh entries, ready to run.
    fresh: Vec<Runnable>,
    /// Reference entries, for `start.lua`.
    references: Vec<Delivered>,
}

impl Duty for Consumer {
    const COMPONENT: &'static str = "consumer";
    const FAILED: &'static str = "fetch failed";
    type Error = StoreError;

    async fn pass(&mut self, shutdown: &CancellationToken) -> Result<Next, StoreError> {
        // Wait for capacity without holding it: while this consumer blocks in XREADGROUP the
        // free permits stay available to the reclaimer.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(Next::Stop),
            p = self.runner.permits().acquire() => match p {
                Ok(p) => drop(p),
                Err(_) => return Ok(Next::Stop),
            },
        }
        self.tick(shutdown).await.map(|_| Next::Continue)
    }
}
