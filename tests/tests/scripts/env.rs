//! One test's view of the shared Redis (its own key prefix and a connection) and the steps every
//! case is built from: seed a task through the wrappers, deliver entries with a real
//! `XREADGROUP`, call a script, and read back the state it left.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{FromRedisValue, ToRedisArgs};
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::record::{Entry, Task};
use switchyard_shared::scripts::{
    self, BatchCall, CancelReply, CompleteStatus, Completion, Delivered, EnqueueReply,
    EnqueueStatus, FailMode, FailStatus, Failure, NewRecord, RequeueStatus, Retention, Runnable,
    Started,
};
use switchyard_shared::store;
use switchyard_tests::{connection, queued_tool_task, shared_redis, unique_prefix};

pub const QUEUE: &str = "tool";
pub const PAYLOAD: &str = r#"{"tool":"echo","args":{"x":1}}"#;
const TIMEOUT_MS: &str = "30000";
pub const NOW: &str = "2026-01-01T00:00:00.000Z";
pub const LATER: &str = "2026-01-01T00:00:05.000Z";
const RESULT_TTL_S: u64 = 3_600;

const RETENTION: Retention = Retention {
    result_ttl: Duration::from_secs(RESULT_TTL_S),
    events_maxlen: 1_000,
};

pub fn retention() -> Retention {
    RETENTION
}

/// A new task as the dispatcher builds it, for `scripts::enqueue_many`.
pub fn record(max_attempts: u32) -> NewRecord {
    NewRecord {
        task: queued_tool_task(QUEUE, PAYLOAD, max_attempts, TIMEOUT_MS),
        due_ms: None,
        idempotency_ttl: Duration::from_secs(600),
        priority: switchyard_shared::lane::Priority::Normal,
    }
}

/// How to enqueue a task.
pub struct Spec<'a> {
    pub max_attempts: u32,
    pub due_ms: Option<u64>,
    pub idempotency_key: Option<&'a str>,
    pub max_depth: u64,
    pub tenant: Option<&'a str>,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            due_ms: None,
            idempotency_key: None,
            max_depth: 0,
            tenant: None,
        }
    }
}

/// The group's pending list: (entry, consumer, idle ms, delivery count).
pub type Pending = Vec<(String, String, u64, u64)>;

/// A stream's entries: (entry id, fields).
pub type Entries = Vec<(String, HashMap<String, String>)>;

/// The run `started` must be.
pub fn runnable(started: &Started) -> &Runnable {
    match started {
        Started::Run(run) => run,
        other => panic!("expected a run: {other:?}"),
    }
}

pub fn ttl_is_result_ttl(ttl: i64) -> bool {
    ttl > 0 && ttl <= i64::try_from(RESULT_TTL_S).expect("small")
}

/// Whether an event's fields name task `id`: alone (`id`) or in a completion batch (`ids`).
fn names(fields: &HashMap<String, String>, id: &str) -> bool {
    fields.get("id").map(String::as_str) == Some(id)
        || fields
            .get("ids")
            .is_some_and(|ids| ids.split(',').any(|i| i == id))
}

/// One test's keys and connection.
pub struct Env {
    pub con: MultiplexedConnection,
    pub keys: Keys,
    /// The latest run of each task (by id), as the worker holds it: what its completion or
    /// failure writes.
    pub runs: HashMap<String, Runnable>,
}

impl Env {
    pub async fn new() -> Self {
        let mut con = connection(shared_redis().url()).await;
        let keys = Keys::new(unique_prefix());
        store::ensure_groups(&mut con, &keys, &[QUEUE.to_owned()])
            .await
            .expect("ensure_groups");
        Self {
            con,
            keys,
            runs: HashMap::new(),
        }
    }

    /// A fresh view with one task running under `consumer`; its delivery.
    pub async fn with_running(consumer: &str, max_attempts: u32) -> (Self, Delivered) {
        let mut env = Self::new().await;
        let d = env.running(consumer, max_attempts).await;
        (env, d)
    }

    /// Runs one Redis command on the test's connection.
    pub async fn redis<T: FromRedisValue>(&mut self, name: &str, args: impl ToRedisArgs) -> T {
        redis::cmd(name)
            .arg(args)
            .query_async(&mut self.con)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn stream(&self) -> String {
        self.keys.stream(QUEUE)
    }

    // ---- seeding and transitions ----

    /// Enqueues a new task as the dispatcher does; the script's reply and the id the task has
    /// (the reply's for a task queued now, the ULID id for a delayed one, or the id it would
    /// have had when nothing was written).
    pub async fn enqueue_spec(&mut self, spec: &Spec<'_>) -> (EnqueueReply, String) {
        let mut rec = record(spec.max_attempts);
        rec.task.idempotency_key = spec.idempotency_key.map(str::to_owned);
        rec.task.tenant = spec.tenant.map(str::to_owned);
        rec.due_ms = spec.due_ms;
        let reply = scripts::enqueue(&mut self.con, &self.keys, &rec, spec.max_depth)
            .await
            .expect("enqueue");
        let id = match reply.status {
            EnqueueStatus::Queued => reply.id.clone(),
            _ => rec.task.id,
        };
        (reply, id)
    }

    /// Enqueues a task that goes straight to the stream; its id.
    pub async fn enqueue(&mut self, max_attempts: u32) -> String {
        let (reply, id) = self
            .enqueue_spec(&Spec {
                max_attempts,
                ..Spec::default()
            })
            .await;
        assert_eq!(reply.status, EnqueueStatus::Queued);
        assert_eq!(reply.id, id);
        id
    }

    /// Enqueues a task due at `due_ms`, which parks it in the delayed set; its id.
    pub async fn enqueue_delayed(&mut self, due_ms: u64) -> String {
        let (reply, id) = self
            .enqueue_spec(&Spec {
                due_ms: Some(due_ms),
                ..Spec::default()
            })
            .await;
        assert_eq!(reply.status, EnqueueStatus::Delayed);
        id
    }

    /// Delivers up to `n` new entries to `consumer` with a real XREADGROUP.
    pub async fn deliver(&mut self, consumer: &str, n: usize) -> Vec<Delivered> {
        self.deliver_from(QUEUE, consumer, n).await
    }

    /// [`Self::deliver`] from the stream of `source`: the queue, or one of its lanes (whose group
    /// is created here, as a worker does when it learns of the lane).
    pub async fn deliver_from(&mut self, source: &str, consumer: &str, n: usize) -> Vec<Delivered> {
        let stream = self.keys.stream(source);
        if source != QUEUE {
            let _: redis::Value = self
                .redis("XGROUP", ("CREATE", &stream, GROUP, "0", "MKSTREAM"))
                .await;
        }
        let args = ("GROUP", GROUP, consumer, "COUNT", n, "STREAMS", stream, ">");
        let reply: Option<StreamReadReply> = self.redis("XREADGROUP", args).await;
        let mut out = Vec::new();
        for e in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let fields: HashMap<String, String> = e
                .map
                .keys()
                .map(|k| (k.clone(), e.get::<String>(k).expect("text field")))
                .collect();
            // A fresh entry runs at once, as the consumer runs it.
            match Entry::decode(source, &e.id, fields).expect("a valid entry") {
                Entry::Fresh(q) => {
                    let run = Runnable::fresh(e.id.clone(), q, NOW.to_owned());
                    out.push(run.delivered.clone());
                    self.runs.insert(run.delivered.id.clone(), run);
                }
                Entry::Reference(id) => out.push(Delivered { entry: e.id, id }),
            }
        }
        out
    }

    pub async fn deliver_one(&mut self, consumer: &str) -> Delivered {
        let mut got = self.deliver(consumer, 1).await;
        assert_eq!(got.len(), 1, "one entry delivered");
        got.remove(0)
    }

    /// The connection, and `consumer`'s call of a batch script at `now`.
    pub fn batch_call<'a>(
        &'a mut self,
        consumer: &'a str,
        now: &'a str,
    ) -> (&'a mut MultiplexedConnection, BatchCall<'a>) {
        let call = BatchCall {
            keys: &self.keys,
            queue: QUEUE,
            consumer,
            now,
            retention: &RETENTION,
        };
        (&mut self.con, call)
    }

    pub async fn start(&mut self, consumer: &str, batch: &[Delivered]) -> Vec<Started> {
        let (con, call) = self.batch_call(consumer, NOW);
        let started = scripts::start(con, &call, batch).await.expect("start");
        for s in &started {
            if let Started::Run(run) = s {
                self.runs.insert(run.delivered.id.clone(), run.clone());
            }
        }
        started
    }

    /// The run of `d` this test holds (from its delivery or its start).
    pub fn run_of(&self, d: &Delivered) -> Runnable {
        let mut run = self
            .runs
            .get(&d.id)
            .unwrap_or_else(|| panic!("task {} never ran here", d.id))
            .clone();
        run.delivered = d.clone();
        run
    }

    /// Starts `d` alone under `consumer`; its one answer.
    pub async fn start_one(&mut self, consumer: &str, d: &Delivered) -> Started {
        let mut s = self.start(consumer, std::slice::from_ref(d)).await;
        assert_eq!(s.len(), 1, "one answer per entry: {s:?}");
        s.remove(0)
    }

    /// Enqueues and delivers to `consumer` one task, which then runs (a fresh entry needs no
    /// start); its delivery.
    pub async fn running(&mut self, consumer: &str, max_attempts: u32) -> Delivered {
        let id = self.enqueue(max_attempts).await;
        let d = self.deliver_one(consumer).await;
        assert_eq!(d.id, id);
        assert_eq!(self.run_of(&d).attempts, 1);
        d
    }

    pub async fn complete(
        &mut self,
        consumer: &str,
        d: &Delivered,
        result: &str,
    ) -> CompleteStatus {
        let run = self.run_of(d);
        let (con, call) = self.batch_call(consumer, LATER);
        let done = scripts::complete(
            con,
            &call,
            &[Completion {
                entry: d.entry.clone(),
                id: d.id.clone(),
                result: result.to_owned(),
                attempts: run.attempts,
                started_at: run.started_at.clone(),
                record: run.record.clone(),
            }],
        )
        .await
        .expect("complete");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, d.id);
        done[0].status
    }

    pub async fn fail(
        &mut self,
        consumer: &str,
        d: &Delivered,
        error: &str,
        mode: FailMode,
    ) -> FailStatus {
        let run = self.run_of(d);
        let f = Failure {
            queue: QUEUE,
            task: &run,
            error,
            mode,
        };
        scripts::fail(&mut self.con, &self.keys, consumer, LATER, &retention(), &f)
            .await
            .expect("fail")
    }

    pub async fn cancel(&mut self, id: &str) -> CancelReply {
        scripts::cancel(&mut self.con, &self.keys, QUEUE, id, LATER, &retention())
            .await
            .expect("cancel")
    }

    pub async fn promote(&mut self, now_ms: u64, id: &str) -> u64 {
        scripts::promote(&mut self.con, &self.keys, QUEUE, now_ms, &[id.to_owned()])
            .await
            .expect("promote")
    }

    pub async fn requeue(&mut self, consumer: &str, d: &Delivered) -> RequeueStatus {
        scripts::requeue(&mut self.con, &self.keys, QUEUE, consumer, d)
            .await
            .expect("requeue")
    }

    /// Moves `entry` to `consumer`'s pending list, as a reclaimer does (counting a delivery).
    pub async fn xclaim(&mut self, consumer: &str, entry: &str) {
        let claimed: StreamRangeReply = self
            .redis("XCLAIM", (self.stream(), GROUP, consumer, 0, entry))
            .await;
        let ids: Vec<String> = claimed.ids.into_iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![entry.to_owned()]);
    }

    /// A task whose record is its hash, queued under a reference entry (born delayed, then
    /// promoted); its id.
    pub async fn enqueue_reference(&mut self, max_attempts: u32) -> String {
        let (reply, id) = self
            .enqueue_spec(&Spec {
                max_attempts,
                due_ms: Some(1),
                ..Spec::default()
            })
            .await;
        assert_eq!(reply.status, EnqueueStatus::Delayed);
        assert_eq!(self.promote(1, &id).await, 1);
        id
    }

    // ---- reading the state a script left ----

    /// The task's hash as stored (empty while only its stream entry holds it).
    pub async fn task(&mut self, id: &str) -> HashMap<String, String> {
        self.redis("HGETALL", self.keys.task(QUEUE, id)).await
    }

    /// The task as every reader sees it (`lookup.lua`).
    pub async fn lookup(&mut self, id: &str) -> Option<Task> {
        store::load_task(&mut self.con, &self.keys, QUEUE, id)
            .await
            .expect("lookup")
    }

    /// The task's state as every reader sees it.
    pub async fn state(&mut self, id: &str) -> String {
        self.lookup(id)
            .await
            .map_or_else(String::new, |t| t.state.as_str().to_owned())
    }

    /// Asserts the listed stats counters (an absent field counts as 0), `queued` and `running`
    /// derived from the stream and the group as `GET /api/queues` derives them.
    pub async fn assert_stats(&mut self, expected: &[(&str, i64)]) {
        let mut stats: HashMap<String, String> =
            self.redis("HGETALL", self.keys.stats(QUEUE)).await;
        let pending = self.pending().await.len() as i64;
        let waiting = self.stream_len().await as i64 - pending;
        let delayed: i64 = self.redis("ZCARD", self.keys.delayed(QUEUE)).await;
        let retrying: i64 = stats
            .get("retrying")
            .map_or(0, |v| v.parse().expect("integer"));
        stats.insert("running".into(), pending.to_string());
        stats.insert(
            "queued".into(),
            (waiting + (delayed - retrying).max(0)).to_string(),
        );
        for (field, want) in expected {
            let got: i64 = stats
                .get(*field)
                .map_or(0, |v| v.parse().expect("stats hold integers"));
            assert_eq!(got, *want, "stats field {field}; all stats: {stats:?}");
        }
    }

    pub async fn stream_len(&mut self) -> u64 {
        self.redis("XLEN", self.stream()).await
    }

    /// A stream's entries: (entry id, fields).
    pub async fn xrange(&mut self, key: &str) -> Entries {
        let r: StreamRangeReply = self.redis("XRANGE", (key, "-", "+")).await;
        r.ids
            .into_iter()
            .map(|e| {
                let fields = e
                    .map
                    .keys()
                    .map(|k| (k.clone(), e.get::<String>(k).expect("text field")))
                    .collect();
                (e.id, fields)
            })
            .collect()
    }

    /// The queue's stream entries.
    pub async fn entries(&mut self) -> Entries {
        let key = self.stream();
        self.xrange(&key).await
    }

    /// The queue's dead-letter entries.
    pub async fn dead_letters(&mut self) -> Entries {
        let key = self.keys.dead(QUEUE);
        self.xrange(&key).await
    }

    /// The group's pending list.
    pub async fn pending(&mut self) -> Pending {
        self.redis("XPENDING", (self.stream(), GROUP, "-", "+", 100))
            .await
    }

    pub async fn zscore(&mut self, id: &str) -> Option<f64> {
        self.redis("ZSCORE", (self.keys.delayed(QUEUE), id)).await
    }

    pub async fn task_ttl(&mut self, id: &str) -> i64 {
        self.redis("TTL", self.keys.task(QUEUE, id)).await
    }

    /// Asserts the events stream holds `{id, state}` for this task.
    pub async fn assert_event(&mut self, id: &str, state: &str) {
        let events = self.xrange(&self.keys.events(QUEUE)).await;
        assert!(
            events
                .iter()
                .any(|(_, f)| names(f, id) && f.get("state").map(String::as_str) == Some(state)),
            "no {state} event for {id}: {events:?}"
        );
    }

    pub async fn assert_no_event(&mut self, id: &str) {
        let events = self.xrange(&self.keys.events(QUEUE)).await;
        assert!(
            !events.iter().any(|(_, f)| names(f, id)),
            "unexpected event for {id}: {events:?}"
        );
    }

    /// Asserts that `id` has left the queue for good in `state`: its entry deleted and acked,
    /// nothing delayed, the record expiring after the result TTL, and its event written.
    pub async fn assert_finished(&mut self, id: &str, state: &str) {
        assert_eq!(self.zscore(id).await, None);
        assert_eq!(self.stream_len().await, 0);
        assert!(self.pending().await.is_empty());
        let ttl = self.task_ttl(id).await;
        assert!(ttl_is_result_ttl(ttl), "finished record TTL {ttl}");
        self.assert_event(id, state).await;
    }
}
