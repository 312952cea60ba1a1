//! What the worker's `tick()` tests share: a worker context on a real Redis under the test's own
//! key prefix, tasks seeded on one queue (enqueued, delivered to a consumer, started by it), a
//! runner whose started tasks can be waited for, and readers of the pending list and records.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamPendingCountReply, StreamReadReply};
use switchyard_shared::config::{RedisConfig, WorkerConfig};
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::record::{Entry, Task};
use switchyard_shared::scripts::{self, Delivered, NewRecord, Retention, Runnable};
use switchyard_shared::{clock, store};
use switchyard_tests::new_tool_record;
use switchyard_worker::context::{Ctx, WorkerContext};
use switchyard_worker::executor::Executor;
use switchyard_worker::providers::Provider;
use switchyard_worker::reporter;
use switchyard_worker::runner::Runner;
use switchyard_worker::tools::Toolbox;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The one queue the seeded tasks are on.
pub const QUEUE: &str = "tool";
/// The payload of every seeded task: it succeeds at once.
pub const ECHO: &str = r#"{"tool":"echo","args":{}}"#;

/// How long a test waits for the tasks a tick started to be committed.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

fn retention() -> Retention {
    Retention {
        result_ttl: Duration::from_secs(3_600),
        events_maxlen: 1_000,
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The context of worker `id` consuming [`QUEUE`] on `url` under `prefix`; `settings` adds
/// worker variables (`HEARTBEAT_INTERVAL_MS`, `WORKER_BATCH_SIZE`, …).
pub fn context(url: &str, prefix: &str, id: &str, settings: &[(&str, &str)]) -> Ctx {
    let redis = RedisConfig::from_vars(&vars(&[("REDIS_URL", url), ("QUEUE_PREFIX", prefix)]))
        .expect("redis config");
    let mut pairs = vec![("WORKER_QUEUES", QUEUE), ("WORKER_ID", id)];
    pairs.extend_from_slice(settings);
    let cfg = WorkerConfig::from_vars(&vars(&pairs)).expect("worker config");
    Arc::new(WorkerContext {
        id: id.to_owned(),
        pool: store::create_pool(&redis).expect("pool"),
        keys: Keys::new(prefix),
        retention: retention(),
        redis,
        cfg,
        in_flight: Mutex::new(HashMap::new()),
        processed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        started_at: clock::now_rfc3339(),
        draining: CancellationToken::new(),
        paused: Default::default(),
    })
}

/// Enqueues `n` echo tasks on [`QUEUE`] (creating its group); their ids.
pub async fn enqueue(con: &mut MultiplexedConnection, keys: &Keys, n: usize) -> Vec<String> {
    store::ensure_groups(con, keys, &[QUEUE.to_owned()])
        .await
        .expect("groups");
    let recs: Vec<NewRecord> = (0..n)
        .map(|_| new_tool_record(QUEUE, ECHO, 3, "30000"))
        .collect();
    scripts::enqueue_many(con, keys, &recs, 0)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|r| r.expect("enqueued").id)
        .collect()
}

/// Enqueues `n` echo tasks and delivers them to `consumer`, where they run at once (fresh
/// entries need no start), as that worker's consumer would have; their deliveries.
pub async fn running(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    consumer: &str,
    n: usize,
) -> Vec<Delivered> {
    enqueue(con, keys, n).await;
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(keys.stream(QUEUE))
        .arg(">")
        .query_async(con)
        .await
        .expect("XREADGROUP");
    let delivered: Vec<Delivered> = reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| {
            let reference = e.get::<String>("id");
            assert_eq!(reference, None, "a fresh entry");
            Delivered::of(QUEUE, e.id, reference)
        })
        .collect();
    assert_eq!(delivered.len(), n, "every task delivered");
    delivered
}

/// The run of a fresh entry `d`, as the consumer made it from the entry.
pub async fn fresh_run(con: &mut MultiplexedConnection, keys: &Keys, d: &Delivered) -> Runnable {
    let range: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys.stream(QUEUE))
        .arg(&d.entry)
        .arg(&d.entry)
        .query_async(con)
        .await
        .expect("XRANGE");
    let e = range.ids.first().expect("the entry exists");
    let fields = e
        .map
        .keys()
        .map(|k| (k.clone(), e.get::<String>(k).expect("text field")))
        .collect();
    match Entry::decode(QUEUE, &d.entry, fields).expect("a valid entry") {
        Entry::Fresh(q) => Runnable::fresh(d.entry.clone(), q, clock::now_rfc3339()),
        Entry::Reference(id) => panic!("{id}: a reference entry"),
    }
}

/// The consumer that holds `entry` pending, if any does.
pub async fn owner(con: &mut MultiplexedConnection, keys: &Keys, entry: &str) -> Option<String> {
    let reply: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(keys.stream(QUEUE))
        .arg(GROUP)
        .arg(entry)
        .arg(entry)
        .arg(1)
        .query_async(con)
        .await
        .expect("XPENDING");
    reply.ids.into_iter().next().map(|p| p.consumer)
}

/// The pending entries of [`QUEUE`] with their consumers, oldest first.
pub async fn pending(con: &mut MultiplexedConnection, keys: &Keys) -> Vec<(String, String)> {
    let reply: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(keys.stream(QUEUE))
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(1_000)
        .query_async(con)
        .await
        .expect("XPENDING");
    reply.ids.into_iter().map(|p| (p.id, p.consumer)).collect()
}

/// The record of task `id` of [`QUEUE`].
pub async fn record(con: &mut MultiplexedConnection, keys: &Keys, id: &str) -> Task {
    store::load_task(con, keys, QUEUE, id)
        .await
        .expect("record readable")
        .unwrap_or_else(|| panic!("task {id} has a record"))
}

/// A runner with `permits` concurrency permits, as the worker builds it (echo provider, the
/// always-on tools, a completer committing successes), and the tracker of what it spawns.
#[derive(Debug)]
pub struct Runs {
    /// What the consumer or reclaimer under test hands its entries to.
    pub runner: Runner,
    tracker: TaskTracker,
    completer: JoinHandle<()>,
}

impl Runs {
    /// A runner for `ctx` with `permits` permits.
    pub fn new(ctx: &Ctx, permits: usize) -> Self {
        let (reporter, completer) = reporter::reporter(ctx.clone(), CancellationToken::new());
        let provider = Provider::from_config(&ctx.cfg).expect("echo provider");
        let tracker = TaskTracker::new();
        let runner = Runner::new(
            ctx.clone(),
            Executor::new(ctx.clone(), provider, Toolbox::always_on()),
            reporter,
            Arc::new(Semaphore::new(permits)),
            tracker.clone(),
            CancellationToken::new(),
        );
        Self {
            runner,
            tracker,
            completer: tokio::spawn(completer.run()),
        }
    }

    /// Waits until every task the runner started has run and its outcome is committed.
    pub async fn settle(&self) {
        self.tracker.close();
        tokio::time::timeout(SETTLE_DEADLINE, self.tracker.wait())
            .await
            .expect("the started tasks finished and were committed");
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        self.completer.abort();
    }
}
