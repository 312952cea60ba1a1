//! The Lua scripts of `switchyard_shared::scripts` against a real Redis: each case seeds tasks
//! through the wrappers, delivers entries with a real `XREADGROUP`, and asserts the Redis state
//! (task hash, stream, pending list, delayed set, dead stream, events, stats) a script leaves.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use switchyard_shared::clock;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::scripts::{
    self, CancelStatus, CompleteStatus, Completion, Delivered, EnqueueReply, EnqueueStatus,
    FailMode, FailStatus, Failure, NewRecord, ReplayStatus, RequeueStatus, Retention, Runnable,
    StartStatus, Started, Work,
};
use switchyard_shared::store;
use switchyard_shared::task;
use switchyard_tests::{connection, queued_tool_record, shared_redis, unique_prefix};

const QUEUE: &str = "tool";
const PAYLOAD: &str = r#"{"tool":"echo","args":{"x":1}}"#;
const TIMEOUT_MS: &str = "30000";
const NOW: &str = "2026-01-01T00:00:00.000Z";
const LATER: &str = "2026-01-01T00:00:05.000Z";
const RESULT_TTL_S: u64 = 3_600;

fn retention() -> Retention {
    Retention {
        result_ttl: Duration::from_secs(RESULT_TTL_S),
        events_maxlen: 1_000,
    }
}

/// One test's view of the shared Redis: its own key prefix and a connection.
struct Env {
    con: MultiplexedConnection,
    keys: Keys,
}

/// How to enqueue a task.
struct Spec<'a> {
    max_attempts: u32,
    due_ms: Option<u64>,
    idempotency_key: Option<&'a str>,
    max_depth: u64,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            due_ms: None,
            idempotency_key: None,
            max_depth: 0,
        }
    }
}

type Pending = Vec<(String, String, u64, u64)>;

impl Env {
    async fn new() -> Self {
        let mut con = connection(shared_redis().url()).await;
        let keys = Keys::new(unique_prefix());
        store::ensure_groups(&mut con, &keys, &[QUEUE.to_owned()])
            .await
            .expect("ensure_groups");
        Self { con, keys }
    }

    fn stream(&self) -> String {
        self.keys.stream(QUEUE)
    }

    /// Enqueues a new task as the dispatcher does; the script's reply and the id it was given.
    async fn enqueue_spec(&mut self, spec: &Spec<'_>) -> (EnqueueReply, String) {
        let id = task::new_task_id(QUEUE);
        let mut fields = queued_tool_record(&id, QUEUE, PAYLOAD, spec.max_attempts, TIMEOUT_MS);
        if let Some(k) = spec.idempotency_key {
            fields.push(("idempotency_key", k.to_owned()));
        }
        let rec = NewRecord {
            id: &id,
            queue: QUEUE,
            fields,
            due_ms: spec.due_ms,
            idempotency: spec.idempotency_key.map(|k| (k, Duration::from_secs(600))),
        };
        let reply = scripts::enqueue(&mut self.con, &self.keys, &rec, spec.max_depth)
            .await
            .expect("enqueue");
        (reply, id)
    }

    /// Enqueues a task that goes straight to the stream; its id.
    async fn enqueue(&mut self, max_attempts: u32) -> String {
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

    /// Delivers up to `n` new entries to `consumer` with a real XREADGROUP.
    async fn deliver(&mut self, consumer: &str, n: usize) -> Vec<Delivered> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(n)
            .arg("STREAMS")
            .arg(self.stream())
            .arg(">")
            .query_async(&mut self.con)
            .await
            .expect("XREADGROUP");
        reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| Delivered {
                id: e.get::<String>("id").expect("entry has an id field"),
                entry: e.id,
            })
            .collect()
    }

    async fn deliver_one(&mut self, consumer: &str) -> Delivered {
        let mut got = self.deliver(consumer, 1).await;
        assert_eq!(got.len(), 1, "one entry delivered");
        got.remove(0)
    }

    async fn start(&mut self, consumer: &str, batch: &[Delivered]) -> Vec<Started> {
        scripts::start(
            &mut self.con,
            &self.keys,
            QUEUE,
            consumer,
            NOW,
            &retention(),
            batch,
        )
        .await
        .expect("start")
    }

    /// Enqueues, delivers to `consumer` and starts one task; its delivery.
    async fn running(&mut self, consumer: &str, max_attempts: u32) -> Delivered {
        let id = self.enqueue(max_attempts).await;
        let d = self.deliver_one(consumer).await;
        assert_eq!(d.id, id);
        let s = self.start(consumer, std::slice::from_ref(&d)).await;
        assert_eq!(s[0].status(), StartStatus::Run, "{s:?}");
        d
    }

    async fn complete(&mut self, consumer: &str, d: &Delivered, result: &str) -> CompleteStatus {
        let done = scripts::complete(
            &mut self.con,
            &self.keys,
            QUEUE,
            consumer,
            LATER,
            &retention(),
            &[Completion {
                entry: d.entry.clone(),
                id: d.id.clone(),
                result: result.to_owned(),
            }],
        )
        .await
        .expect("complete");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, d.id);
        done[0].status
    }

    async fn fail(
        &mut self,
        consumer: &str,
        d: &Delivered,
        error: &str,
        mode: FailMode,
    ) -> FailStatus {
        let f = Failure {
            queue: QUEUE,
            entry: &d.entry,
            id: &d.id,
            error,
            mode,
        };
        scripts::fail(&mut self.con, &self.keys, consumer, LATER, &retention(), &f)
            .await
            .expect("fail")
    }

    async fn cancel(&mut self, id: &str) -> scripts::CancelReply {
        scripts::cancel(&mut self.con, &self.keys, QUEUE, id, LATER, &retention())
            .await
            .expect("cancel")
    }

    async fn promote(&mut self, now_ms: u64, id: &str) -> u64 {
        scripts::promote(&mut self.con, &self.keys, QUEUE, now_ms, &[id.to_owned()])
            .await
            .expect("promote")
    }

    async fn hgetall(&mut self, key: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .expect("HGETALL")
    }

    async fn task(&mut self, id: &str) -> HashMap<String, String> {
        let key = self.keys.task(QUEUE, id);
        self.hgetall(&key).await
    }

    /// Asserts the listed stats counters (an absent field counts as 0).
    async fn assert_stats(&mut self, expected: &[(&str, i64)]) {
        let key = self.keys.stats(QUEUE);
        let stats = self.hgetall(&key).await;
        for (field, want) in expected {
            let got: i64 = stats
                .get(*field)
                .map_or(0, |v| v.parse().expect("stats hold integers"));
            assert_eq!(got, *want, "stats field {field}; all stats: {stats:?}");
        }
    }

    async fn xlen(&mut self, key: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .expect("XLEN")
    }

    async fn llen(&mut self, key: &str) -> u64 {
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .expect("LLEN")
    }

    async fn stream_len(&mut self) -> u64 {
        let key = self.stream();
        self.xlen(&key).await
    }

    /// The stream's entries: (entry id, fields).
    async fn xrange(&mut self, key: &str) -> Vec<(String, HashMap<String, String>)> {
        let r: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.con)
            .await
            .expect("XRANGE");
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

    /// The group's pending list: (entry, consumer, idle ms, delivery count).
    async fn pending(&mut self) -> Pending {
        redis::cmd("XPENDING")
            .arg(self.stream())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(100)
            .query_async(&mut self.con)
            .await
            .expect("XPENDING")
    }

    /// Moves `entry` to `consumer`'s pending list, as a reclaimer does.
    async fn xclaim(&mut self, consumer: &str, entry: &str) {
        let claimed: Vec<String> = redis::cmd("XCLAIM")
            .arg(self.stream())
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(entry)
            .arg("JUSTID")
            .query_async(&mut self.con)
            .await
            .expect("XCLAIM");
        assert_eq!(claimed, vec![entry.to_owned()]);
    }

    async fn zscore(&mut self, id: &str) -> Option<f64> {
        redis::cmd("ZSCORE")
            .arg(self.keys.delayed(QUEUE))
            .arg(id)
            .query_async(&mut self.con)
            .await
            .expect("ZSCORE")
    }

    async fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .expect("TTL")
    }

    async fn task_ttl(&mut self, id: &str) -> i64 {
        let key = self.keys.task(QUEUE, id);
        self.ttl(&key).await
    }

    /// Asserts the events stream holds `{id, state}` for this task.
    async fn assert_event(&mut self, id: &str, state: &str) {
        let key = self.keys.events(QUEUE);
        let events = self.xrange(&key).await;
        assert!(
            events
                .iter()
                .any(|(_, f)| names(f, id) && f.get("state").map(String::as_str) == Some(state)),
            "no {state} event for {id}: {events:?}"
        );
    }

    async fn assert_no_event(&mut self, id: &str) {
        let key = self.keys.events(QUEUE);
        let events = self.xrange(&key).await;
        assert!(
            !events.iter().any(|(_, f)| names(f, id)),
            "unexpected event for {id}: {events:?}"
        );
    }
}

/// Whether an event's fields name task `id`: alone (`id`) or in a completion batch (`ids`).
fn names(fields: &HashMap<String, String>, id: &str) -> bool {
    fields.get("id").map(String::as_str) == Some(id)
        || fields
            .get("ids")
            .is_some_and(|ids| ids.split(',').any(|i| i == id))
}

/// The run `started` must be.
fn runnable(started: &Started) -> &Runnable {
    match started {
        Started::Run(run) => run,
        other => panic!("expected a run: {other:?}"),
    }
}

fn ttl_is_result_ttl(ttl: i64) -> bool {
    ttl > 0 && ttl <= i64::try_from(RESULT_TTL_S).expect("small")
}

// ---- 1. enqueue ----------------------------------------------------------------------------

#[tokio::test]
async fn enqueue_writes_a_queued_record_and_one_stream_entry() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;

    let t = env.task(&id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], "0");
    assert_eq!(t["payload"], PAYLOAD);
    let entries = env.xrange(&env.stream()).await;
    assert_eq!(entries.len(), 1);
    assert!(
        !t.contains_key("entry"),
        "a fresh record names no entry: the worker's start writes it"
    );
    assert_eq!(entries[0].1["id"], id);
    assert_eq!(env.task_ttl(&id).await, -1, "a live task never expires");
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
}

#[tokio::test]
async fn idempotency_key_makes_a_second_enqueue_a_duplicate_that_writes_nothing() {
    let mut env = Env::new().await;
    let spec = Spec {
        idempotency_key: Some("order-42"),
        ..Spec::default()
    };
    let (first, first_id) = env.enqueue_spec(&spec).await;
    assert_eq!(first.status, EnqueueStatus::Queued);

    let (second, second_id) = env.enqueue_spec(&spec).await;
    assert_eq!(second.status, EnqueueStatus::Duplicate);
    assert_eq!(
        second.id, first_id,
        "a duplicate answers the first task's id"
    );
    assert!(env.task(&second_id).await.is_empty(), "no second record");
    assert_eq!(env.stream_len().await, 1);
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
    let idem = env.keys.idempotency(QUEUE, "order-42");
    let ttl = env.ttl(&idem).await;
    assert!(ttl > 0 && ttl <= 600, "idempotency key TTL {ttl}");
}

#[tokio::test]
async fn full_queue_refuses_enqueue_and_writes_nothing() {
    let mut env = Env::new().await;
    let spec = Spec {
        max_depth: 1,
        ..Spec::default()
    };
    let (first, _) = env.enqueue_spec(&spec).await;
    assert_eq!(first.status, EnqueueStatus::Queued);

    let (second, second_id) = env.enqueue_spec(&spec).await;
    assert_eq!(second.status, EnqueueStatus::Full);
    assert!(env.task(&second_id).await.is_empty(), "no record");
    assert_eq!(env.stream_len().await, 1);
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
}

#[tokio::test]
async fn enqueue_with_a_due_time_parks_the_task_in_the_delayed_set() {
    let mut env = Env::new().await;
    let due = clock::now_ms() + 60_000;
    let (reply, id) = env
        .enqueue_spec(&Spec {
            due_ms: Some(due),
            ..Spec::default()
        })
        .await;
    assert_eq!(reply.status, EnqueueStatus::Delayed);

    assert_eq!(env.zscore(&id).await, Some(due as f64));
    assert_eq!(
        env.stream_len().await,
        0,
        "not in the stream before it is due"
    );
    let t = env.task(&id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["run_at_ms"], due.to_string());
    assert!(!t.contains_key("entry"));
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
}

// ---- 2. start ------------------------------------------------------------------------------

#[tokio::test]
async fn start_marks_the_task_running_under_its_consumer() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;
    let d = env.deliver_one("w1").await;
    assert_eq!(d.id, id);

    let s = env.start("w1", std::slice::from_ref(&d)).await;
    assert_eq!(s.len(), 1);
    let run = runnable(&s[0]);
    assert_eq!(
        (run.delivered.id.as_str(), run.delivered.entry.as_str()),
        (id.as_str(), d.entry.as_str())
    );
    assert_eq!(
        run.work,
        Ok(Work {
            kind: task::TaskKind::Tool,
            payload: serde_json::from_str(PAYLOAD).expect("payload JSON"),
        })
    );
    assert_eq!(
        (run.attempts, run.max_attempts, run.timeout, run.resumed),
        (1, 3, Some(Duration::from_millis(30_000)), false)
    );

    let t = env.task(&id).await;
    assert_eq!(t["state"], "running");
    assert_eq!(t["attempts"], "1");
    assert_eq!(t["worker"], "w1");
    assert_eq!(t["started_at"], NOW);
    assert_eq!(t["entry"], d.entry);
    let pending = env.pending().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].0.as_str(), pending[0].1.as_str()),
        (d.entry.as_str(), "w1")
    );
    assert_eq!(
        env.stream_len().await,
        1,
        "a running entry stays until it finishes"
    );
    env.assert_stats(&[("queued", 0), ("running", 1)]).await;
}

#[tokio::test]
async fn start_skips_and_drops_entries_of_cancelled_missing_or_superseded_tasks() {
    let mut env = Env::new().await;
    let cancelled = env.enqueue(3).await;
    let missing = env.enqueue(3).await;
    let superseded = env.enqueue(3).await;
    let batch = env.deliver("w1", 3).await;
    assert_eq!(batch.len(), 3);
    assert_eq!(env.pending().await.len(), 3);

    // Cancelled after delivery: the record says so, while the entry still sits pending.
    let key = env.keys.task(QUEUE, &cancelled);
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("state")
        .arg("cancelled")
        .query_async(&mut env.con)
        .await
        .expect("HSET");
    let key = env.keys.task(QUEUE, &missing);
    let () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut env.con)
        .await
        .expect("DEL");
    let key = env.keys.task(QUEUE, &superseded);
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("entry")
        .arg("9999999999999-0")
        .query_async(&mut env.con)
        .await
        .expect("HSET");

    let s = env.start("w1", &batch).await;
    assert_eq!(s.len(), 3);
    for (started, id) in s.iter().zip([&cancelled, &missing, &superseded]) {
        let Started::Skip { delivered, reason } = started else {
            panic!("skipped: {started:?}");
        };
        assert_eq!(&delivered.id, id);
        assert!(!reason.is_empty(), "a skip says why: {started:?}");
    }
    assert_eq!(env.stream_len().await, 0, "skipped entries are deleted");
    assert!(env.pending().await.is_empty(), "skipped entries are acked");
    assert_eq!(env.task(&cancelled).await["state"], "cancelled");
    assert!(env.task(&missing).await.is_empty(), "no record is made up");
    assert_eq!(env.task(&superseded).await["state"], "queued");
    env.assert_stats(&[("running", 0)]).await;
}

#[tokio::test]
async fn start_skips_a_task_cancelled_between_delivery_and_start() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;
    let d = env.deliver_one("w1").await;
    let c = env.cancel(&id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    assert_eq!(
        env.pending().await.len(),
        1,
        "a fresh record names no entry, so the delivered one waits for its start"
    );

    let s = env.start("w1", std::slice::from_ref(&d)).await;
    assert_eq!(s[0].status(), StartStatus::Skip);
    assert!(
        env.pending().await.is_empty(),
        "start acks the entry it skips"
    );
    assert_eq!(env.task(&id).await["state"], "cancelled");
    assert_eq!(env.stream_len().await, 0);
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

// ---- 3. complete ---------------------------------------------------------------------------

#[tokio::test]
async fn completion_acks_and_deletes_the_entry_and_records_the_result() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;

    let result = r#"{"output":{"x":1}}"#;
    assert_eq!(
        env.complete("w1", &d, result).await,
        CompleteStatus::Succeeded
    );

    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["result"], result);
    assert_eq!(t["finished_at"], LATER);
    assert_eq!(
        t["entry"], d.entry,
        "the finished record keeps the entry it ran under"
    );
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    env.assert_event(&d.id, "succeeded").await;
    let ttl = env.task_ttl(&d.id).await;
    assert!(ttl_is_result_ttl(ttl), "finished record TTL {ttl}");
    env.assert_stats(&[("running", 0), ("succeeded", 1)]).await;

    // A repeated completion (at-least-once) changes nothing.
    assert_eq!(
        env.complete("w1", &d, r#"{"output":"again"}"#).await,
        CompleteStatus::Fenced
    );
    assert_eq!(env.task(&d.id).await["result"], result);
    env.assert_stats(&[("running", 0), ("succeeded", 1)]).await;
}

// ---- batches ----------------------------------------------------------------------------------

#[tokio::test]
async fn batches_are_decided_entry_by_entry() {
    let mut env = Env::new().await;
    let ids = [
        env.enqueue(3).await,
        env.enqueue(3).await,
        env.enqueue(3).await,
    ];
    let batch = env.deliver("w1", 3).await;
    let s = env.start("w1", &batch).await;
    for (i, started) in s.iter().enumerate() {
        let run = runnable(started);
        assert_eq!(
            (&run.delivered.id, &run.delivered.entry),
            (&ids[i], &batch[i].entry)
        );
    }
    env.assert_stats(&[("queued", 0), ("running", 3)]).await;

    // The second entry was taken by another worker: only it is fenced.
    env.xclaim("w2", &batch[1].entry).await;
    let completions: Vec<Completion> = batch
        .iter()
        .enumerate()
        .map(|(i, d)| Completion {
            entry: d.entry.clone(),
            id: d.id.clone(),
            result: format!(r#"{{"n":{i}}}"#),
        })
        .collect();
    let done = scripts::complete(
        &mut env.con,
        &env.keys,
        QUEUE,
        "w1",
        LATER,
        &retention(),
        &completions,
    )
    .await
    .expect("complete");
    let statuses: Vec<(String, CompleteStatus)> =
        done.into_iter().map(|c| (c.id, c.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (ids[0].clone(), CompleteStatus::Succeeded),
            (ids[1].clone(), CompleteStatus::Fenced),
            (ids[2].clone(), CompleteStatus::Succeeded),
        ]
    );
    assert_eq!(env.task(&ids[0]).await["result"], r#"{"n":0}"#);
    assert_eq!(env.task(&ids[1]).await["state"], "running");
    assert_eq!(env.task(&ids[2]).await["result"], r#"{"n":2}"#);
    assert_eq!(env.stream_len().await, 1);
    env.assert_stats(&[("running", 1), ("succeeded", 2), ("fenced", 1)])
        .await;
}

#[tokio::test]
async fn start_of_a_batch_skips_only_the_entry_another_consumer_holds() {
    let mut env = Env::new().await;
    for _ in 0..3 {
        env.enqueue(3).await;
    }
    let batch = env.deliver("w1", 3).await;
    env.xclaim("w2", &batch[1].entry).await;
    let s = env.start("w1", &batch).await;
    let statuses: Vec<StartStatus> = s.iter().map(Started::status).collect();
    assert_eq!(
        statuses,
        vec![StartStatus::Run, StartStatus::Skip, StartStatus::Run]
    );
    assert_eq!(env.task(&batch[1].id).await["state"], "queued");
    assert_eq!(
        env.stream_len().await,
        3,
        "a skipped entry held elsewhere is not dropped"
    );
    env.assert_stats(&[("queued", 1), ("running", 2)]).await;
}

#[tokio::test]
async fn enqueue_many_writes_a_batch_in_order_and_honours_keys_within_it() {
    let mut env = Env::new().await;
    let ids: Vec<String> = (0..4).map(|_| task::new_task_id(QUEUE)).collect();
    let recs: Vec<NewRecord<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| NewRecord {
            id,
            queue: QUEUE,
            fields: queued_tool_record(id, QUEUE, PAYLOAD, 3, TIMEOUT_MS),
            due_ms: (i == 3).then(|| clock::now_ms() + 60_000),
            // The first two share a key: the second is a duplicate of the first.
            idempotency: (i < 2).then(|| ("same-key", Duration::from_secs(60))),
        })
        .collect();
    let replies = scripts::enqueue_many(&mut env.con, &env.keys, &recs, 0)
        .await
        .expect("enqueue_many");
    let got: Vec<(EnqueueStatus, String)> = replies
        .into_iter()
        .map(|r| r.map(|r| (r.status, r.id)).expect("per-task reply"))
        .collect();
    assert_eq!(
        got,
        vec![
            (EnqueueStatus::Queued, ids[0].clone()),
            (EnqueueStatus::Duplicate, ids[0].clone()),
            (EnqueueStatus::Queued, ids[2].clone()),
            (EnqueueStatus::Delayed, ids[3].clone()),
        ]
    );
    assert_eq!(env.stream_len().await, 2);
    assert_eq!(env.task(&ids[0]).await["state"], "queued");
    assert!(
        env.task(&ids[1]).await.is_empty(),
        "the duplicate wrote nothing"
    );
    assert!(env.task(&ids[3]).await.contains_key("run_at_ms"));
    env.assert_stats(&[("enqueued", 3), ("queued", 3)]).await;
}

#[tokio::test]
async fn promote_moves_only_the_due_tasks_of_a_batch() {
    let mut env = Env::new().await;
    let now = clock::now_ms();
    let mut ids = Vec::new();
    for due in [now, now + 60_000] {
        let (reply, id) = env
            .enqueue_spec(&Spec {
                due_ms: Some(due),
                ..Spec::default()
            })
            .await;
        assert_eq!(reply.status, EnqueueStatus::Delayed);
        ids.push(id);
    }
    let moved = scripts::promote(&mut env.con, &env.keys, QUEUE, now, &ids)
        .await
        .expect("promote");
    assert_eq!(moved, 1);
    let entries = env.xrange(&env.stream()).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["id"], ids[0]);
    assert_eq!(env.task(&ids[0]).await["entry"], entries[0].0);
    assert_eq!(env.zscore(&ids[0]).await, None);
    assert!(env.zscore(&ids[1]).await.is_some());
    assert!(!env.task(&ids[1]).await.contains_key("entry"));
    env.assert_stats(&[("queued", 2), ("retrying", 0)]).await;
}

// ---- 4. fencing ----------------------------------------------------------------------------

#[tokio::test]
async fn completion_by_a_consumer_that_lost_the_entry_is_fenced_and_writes_nothing() {
    let mut env = Env::new().await;
    let d = env.running("a", 3).await;
    env.xclaim("b", &d.entry).await;

    assert_eq!(
        env.complete("a", &d, r#"{"late":true}"#).await,
        CompleteStatus::Fenced
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "running");
    assert!(!t.contains_key("result"));
    assert_eq!(env.stream_len().await, 1);
    let pending = env.pending().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, "b", "the entry stays with its new owner");
    env.assert_no_event(&d.id).await;
    env.assert_stats(&[("fenced", 1), ("running", 1), ("succeeded", 0)])
        .await;

    assert_eq!(
        env.fail("a", &d, "late error", FailMode::Fail).await,
        FailStatus::Fenced,
        "a late failure is fenced too"
    );
    assert_eq!(env.task(&d.id).await["state"], "running");
    env.assert_stats(&[("fenced", 2), ("running", 1), ("failed", 0)])
        .await;

    assert_eq!(
        env.complete("b", &d, r#"{"ok":true}"#).await,
        CompleteStatus::Succeeded
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["result"], r#"{"ok":true}"#);
    assert!(env.pending().await.is_empty());
    env.assert_stats(&[("fenced", 2), ("running", 0), ("succeeded", 1)])
        .await;
}

// ---- 5. retry, dead letters, replay ----------------------------------------------------------

#[tokio::test]
async fn retryable_failure_waits_in_the_delayed_set_until_promoted() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;
    let due = clock::now_ms() + 5_000;

    assert_eq!(
        env.fail("w1", &d, "boom", FailMode::Retry { due_ms: due })
            .await,
        FailStatus::Retrying
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "retrying");
    assert_eq!(t["error"], "boom");
    assert_eq!(t["run_at_ms"], due.to_string());
    assert!(!t.contains_key("entry"));
    assert_eq!(env.zscore(&d.id).await, Some(due as f64));
    assert_eq!(env.stream_len().await, 0, "the failed entry is deleted");
    assert!(env.pending().await.is_empty(), "and acked");
    assert_eq!(env.task_ttl(&d.id).await, -1);
    env.assert_stats(&[("running", 0), ("retrying", 1), ("retries", 1)])
        .await;

    assert_eq!(env.promote(due - 1, &d.id).await, 0, "not due yet");
    assert_eq!(env.task(&d.id).await["state"], "retrying");
    assert_eq!(env.zscore(&d.id).await, Some(due as f64));
    assert_eq!(env.stream_len().await, 0);

    assert_eq!(env.promote(due, &d.id).await, 1);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "queued");
    assert!(!t.contains_key("run_at_ms"));
    assert_eq!(env.zscore(&d.id).await, None);
    let entries = env.xrange(&env.stream()).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["id"], d.id);
    assert_eq!(t["entry"], entries[0].0);
    assert_ne!(entries[0].0, d.entry, "a fresh entry");
    env.assert_stats(&[("retrying", 0), ("queued", 1), ("running", 0)])
        .await;

    assert_eq!(env.promote(due + 1, &d.id).await, 0, "promoted only once");
    assert_eq!(env.stream_len().await, 1);
}

#[tokio::test]
async fn task_that_fails_every_attempt_is_dead_lettered_and_can_be_replayed() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;
    for attempt in 1..=3u32 {
        let d = env.deliver_one("w1").await;
        assert_eq!(d.id, id);
        let s = env.start("w1", std::slice::from_ref(&d)).await;
        assert_eq!(runnable(&s[0]).attempts, attempt);
        let due = clock::now_ms();
        let st = env
            .fail(
                "w1",
                &d,
                &format!("error {attempt}"),
                FailMode::Retry { due_ms: due },
            )
            .await;
        if attempt < 3 {
            assert_eq!(st, FailStatus::Retrying, "attempt {attempt}");
            assert_eq!(env.promote(due, &id).await, 1);
        } else {
            assert_eq!(st, FailStatus::Dead, "attempt {attempt}");
        }
    }

    let t = env.task(&id).await;
    assert_eq!(t["state"], "dead");
    assert_eq!(t["error"], "error 3");
    assert_eq!(t["attempts"], "3");
    assert_eq!(
        env.task_ttl(&id).await,
        -1,
        "a dead letter is kept until replayed"
    );
    assert_eq!(env.zscore(&id).await, None);
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    let dead_key = env.keys.dead(QUEUE);
    let dead = env.xrange(&dead_key).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["id"], id);
    assert_eq!(dead[0].1["error"], "error 3");
    assert_eq!(dead[0].1["queue"], QUEUE);
    assert_eq!(dead[0].1["attempts"], "3");
    assert_eq!(t["dead_entry"], dead[0].0);
    env.assert_event(&id, "dead").await;
    env.assert_stats(&[
        ("queued", 0),
        ("running", 0),
        ("retrying", 0),
        ("retries", 2),
        ("dead", 1),
    ])
    .await;

    let r = scripts::replay_dead(&mut env.con, &env.keys, QUEUE, &id)
        .await
        .expect("replay_dead");
    assert_eq!(r.status, ReplayStatus::Queued);
    assert_eq!(r.state, "queued");
    let t = env.task(&id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], "0");
    assert!(!t.contains_key("dead_entry"));
    assert!(!t.contains_key("finished_at"));
    assert_eq!(
        env.xlen(&dead_key).await,
        0,
        "the dead-letter entry is removed"
    );
    let entries = env.xrange(&env.stream()).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(t["entry"], entries[0].0);
    env.assert_stats(&[("queued", 1), ("replayed", 1)]).await;

    let again = scripts::replay_dead(&mut env.con, &env.keys, QUEUE, &id)
        .await
        .expect("replay_dead");
    assert_eq!(again.status, ReplayStatus::NotDead);
    let unknown = task::new_task_id(QUEUE);
    let missing = scripts::replay_dead(&mut env.con, &env.keys, QUEUE, &unknown)
        .await
        .expect("replay_dead");
    assert_eq!(missing.status, ReplayStatus::Missing);
    assert_eq!(env.stream_len().await, 1);

    // The replayed task runs with a fresh attempt budget.
    let d = env.deliver_one("w2").await;
    let s = env.start("w2", std::slice::from_ref(&d)).await;
    assert_eq!(runnable(&s[0]).attempts, 1);
}

// ---- 6. permanent failure and abort ----------------------------------------------------------

#[tokio::test]
async fn permanent_failure_ends_failed_without_retry() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;

    assert_eq!(
        env.fail("w1", &d, "unknown tool", FailMode::Fail).await,
        FailStatus::Failed
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "failed");
    assert_eq!(t["error"], "unknown tool");
    assert_eq!(t["finished_at"], LATER);
    assert_eq!(t["attempts"], "1", "attempts left do not matter");
    assert_eq!(env.zscore(&d.id).await, None);
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    assert!(ttl_is_result_ttl(env.task_ttl(&d.id).await));
    env.assert_event(&d.id, "failed").await;
    env.assert_stats(&[("running", 0), ("failed", 1), ("retrying", 0)])
        .await;
}

#[tokio::test]
async fn aborted_attempt_ends_cancelled() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;

    assert_eq!(
        env.fail("w1", &d, "cancelled on request", FailMode::Cancel)
            .await,
        FailStatus::Cancelled
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "cancelled");
    assert_eq!(t["finished_at"], LATER);
    assert_eq!(env.zscore(&d.id).await, None);
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    assert!(ttl_is_result_ttl(env.task_ttl(&d.id).await));
    env.assert_event(&d.id, "cancelled").await;
    env.assert_stats(&[("running", 0), ("cancelled", 1)]).await;
}

// ---- 7. cancel -----------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_a_queued_task_ends_it_and_the_next_start_drops_its_entry() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;

    let c = env.cancel(&id).await;
    assert_eq!(
        (c.status, c.state.as_str()),
        (CancelStatus::Cancelled, "cancelled")
    );
    let t = env.task(&id).await;
    assert_eq!(t["state"], "cancelled");
    assert_eq!(t["finished_at"], LATER);
    assert!(ttl_is_result_ttl(env.task_ttl(&id).await));
    env.assert_event(&id, "cancelled").await;
    env.assert_stats(&[("queued", 0), ("cancelled", 1)]).await;

    // A fresh record names no entry (enqueue cannot know it cheaply), so the entry waits for
    // the next worker, whose start acks and deletes it without running the task.
    assert_eq!(env.stream_len().await, 1);
    let d = env.deliver_one("w1").await;
    let s = env.start("w1", std::slice::from_ref(&d)).await;
    assert!(
        matches!(&s[0], Started::Skip { reason, .. } if reason == "task is cancelled"),
        "{:?}",
        s[0]
    );
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    assert_eq!(env.task(&id).await["state"], "cancelled");
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

#[tokio::test]
async fn cancelling_a_requeued_task_removes_the_entry_its_record_names() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;
    let st = scripts::requeue(&mut env.con, &env.keys, QUEUE, "w1", &d)
        .await
        .expect("requeue");
    assert_eq!(st, RequeueStatus::Queued);
    assert_eq!(env.stream_len().await, 1);

    let c = env.cancel(&d.id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "cancelled");
    assert!(!t.contains_key("entry"));
    assert_eq!(env.stream_len().await, 0);
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

#[tokio::test]
async fn cancelling_a_delayed_task_removes_it_from_the_delayed_set() {
    let mut env = Env::new().await;
    let due = clock::now_ms() + 60_000;
    let (reply, id) = env
        .enqueue_spec(&Spec {
            due_ms: Some(due),
            ..Spec::default()
        })
        .await;
    assert_eq!(reply.status, EnqueueStatus::Delayed);

    let c = env.cancel(&id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    assert_eq!(env.zscore(&id).await, None);
    let t = env.task(&id).await;
    assert_eq!(t["state"], "cancelled");
    assert!(!t.contains_key("run_at_ms"));
    assert_eq!(env.promote(due, &id).await, 0, "nothing left to promote");
    assert_eq!(env.stream_len().await, 0);
    env.assert_stats(&[("queued", 0), ("cancelled", 1)]).await;
}

#[tokio::test]
async fn cancelling_a_retrying_task_removes_it_from_the_delayed_set() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;
    let due = clock::now_ms() + 60_000;
    let st = env
        .fail("w1", &d, "boom", FailMode::Retry { due_ms: due })
        .await;
    assert_eq!(st, FailStatus::Retrying);

    let c = env.cancel(&d.id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    assert_eq!(env.zscore(&d.id).await, None);
    assert_eq!(env.task(&d.id).await["state"], "cancelled");
    env.assert_stats(&[("retrying", 0), ("cancelled", 1)]).await;
}

#[tokio::test]
async fn cancelling_a_running_task_flags_it_and_notifies_workers() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;
    let client = redis::Client::open(shared_redis().url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    let channel = env.keys.cancel_channel();
    pubsub.subscribe(&channel).await.expect("SUBSCRIBE");

    let c = env.cancel(&d.id).await;
    assert_eq!(
        (c.status, c.state.as_str()),
        (CancelStatus::Cancelling, "running")
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "running", "the worker ends it");
    assert_eq!(t["cancel_requested"], "1");
    assert_eq!(env.stream_len().await, 1);
    assert_eq!(env.pending().await.len(), 1);
    env.assert_stats(&[("running", 1), ("cancelled", 0)]).await;

    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("a cancel notice within 5 s")
        .expect("pubsub stream open");
    assert_eq!(msg.get_channel_name(), channel);
    let payload: String = msg.get_payload().expect("text payload");
    assert_eq!(payload, d.id);

    // The worker aborts it.
    let st = env.fail("w1", &d, "cancelled", FailMode::Cancel).await;
    assert_eq!(st, FailStatus::Cancelled);
    env.assert_stats(&[("running", 0), ("cancelled", 1)]).await;
}

#[tokio::test]
async fn cancelling_a_finished_or_unknown_task_changes_nothing() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;
    assert_eq!(
        env.complete("w1", &d, "{}").await,
        CompleteStatus::Succeeded
    );

    let c = env.cancel(&d.id).await;
    assert_eq!(
        (c.status, c.state.as_str()),
        (CancelStatus::Terminal, "succeeded")
    );
    assert_eq!(env.task(&d.id).await["state"], "succeeded");
    env.assert_stats(&[("succeeded", 1), ("cancelled", 0)])
        .await;

    let unknown = task::new_task_id(QUEUE);
    let c = env.cancel(&unknown).await;
    assert_eq!((c.status, c.state.as_str()), (CancelStatus::Missing, ""));
    assert!(env.task(&unknown).await.is_empty(), "no record is made up");
}

#[tokio::test]
async fn redelivery_of_a_cancel_requested_task_ends_it_cancelled() {
    let mut env = Env::new().await;
    let d = env.running("a", 3).await;
    let c = env.cancel(&d.id).await;
    assert_eq!(c.status, CancelStatus::Cancelling);
    // `a` dies before it acts on the notice; `b` reclaims the entry.
    env.xclaim("b", &d.entry).await;

    let s = env.start("b", std::slice::from_ref(&d)).await;
    assert_eq!(s[0].status(), StartStatus::Skip, "{:?}", s[0]);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "cancelled");
    assert!(env.pending().await.is_empty());
    assert_eq!(env.stream_len().await, 0);
    env.assert_event(&d.id, "cancelled").await;
    env.assert_stats(&[("running", 0), ("cancelled", 1)]).await;
}

// ---- 8. attempts used up by lost workers ------------------------------------------------------

#[tokio::test]
async fn redelivery_beyond_max_attempts_is_dead_lettered_at_start() {
    let mut env = Env::new().await;
    // Its only attempt started on `a`, which then died holding the entry.
    let d = env.running("a", 1).await;
    env.xclaim("b", &d.entry).await;

    let s = env.start("b", std::slice::from_ref(&d)).await;
    let Started::Dead { reason, .. } = &s[0] else {
        panic!("dead-lettered: {:?}", s[0]);
    };
    assert!(reason.contains("max_attempts"), "{reason}");

    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty(), "the entry is acked");
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "dead");
    assert_eq!(&t["error"], reason);
    assert!(!t.contains_key("entry"));
    let dead_key = env.keys.dead(QUEUE);
    let dead = env.xrange(&dead_key).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["id"], d.id);
    assert_eq!(dead[0].1["attempts"], "1");
    assert_eq!(t["dead_entry"], dead[0].0);
    env.assert_event(&d.id, "dead").await;
    env.assert_stats(&[("running", 0), ("dead", 1), ("reclaimed", 1)])
        .await;
}

#[tokio::test]
async fn redelivery_within_max_attempts_runs_again_under_the_new_consumer() {
    let mut env = Env::new().await;
    let d = env.running("a", 3).await;
    env.xclaim("b", &d.entry).await;

    let s = env.start("b", std::slice::from_ref(&d)).await;
    assert_eq!(runnable(&s[0]).attempts, 2);
    let t = env.task(&d.id).await;
    assert_eq!(t["worker"], "b");
    assert_eq!(t["attempts"], "2");
    env.assert_stats(&[("running", 1), ("reclaimed", 1)]).await;
}

// ---- 9. requeue and extend -------------------------------------------------------------------

#[tokio::test]
async fn requeue_hands_a_running_task_back_without_counting_the_attempt() {
    let mut env = Env::new().await;
    let d = env.running("w1", 3).await;

    assert_eq!(
        scripts::requeue(&mut env.con, &env.keys, QUEUE, "other", &d)
            .await
            .expect("requeue"),
        RequeueStatus::Fenced,
        "only the holder hands it back"
    );
    assert_eq!(env.task(&d.id).await["state"], "running");

    let st = scripts::requeue(&mut env.con, &env.keys, QUEUE, "w1", &d)
        .await
        .expect("requeue");
    assert_eq!(st, RequeueStatus::Queued);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], "0");
    let entries = env.xrange(&env.stream()).await;
    assert_eq!(
        entries.len(),
        1,
        "the old entry is gone, a new one is there"
    );
    assert_ne!(entries[0].0, d.entry);
    assert_eq!(entries[0].1["id"], d.id);
    assert_eq!(t["entry"], entries[0].0);
    assert!(env.pending().await.is_empty());
    env.assert_stats(&[("running", 0), ("queued", 1), ("handed_back", 1)])
        .await;

    // Another worker picks the fresh entry up as a first attempt.
    let again = env.deliver_one("w2").await;
    let s = env.start("w2", std::slice::from_ref(&again)).await;
    assert_eq!(runnable(&s[0]).attempts, 1);
}

#[tokio::test]
async fn extend_refreshes_owned_entries_and_reports_lost_ones() {
    let mut env = Env::new().await;
    let kept = env.running("w1", 3).await;
    let lost = env.running("w1", 3).await;
    // Age the kept entry as if its task had run for a minute, without a new delivery.
    let _: Vec<String> = redis::cmd("XCLAIM")
        .arg(env.stream())
        .arg(GROUP)
        .arg("w1")
        .arg(0)
        .arg(&kept.entry)
        .arg("IDLE")
        .arg(60_000)
        .arg("JUSTID")
        .query_async(&mut env.con)
        .await
        .expect("XCLAIM IDLE");
    env.xclaim("w2", &lost.entry).await;
    let before = env.pending().await;
    let aged = before
        .iter()
        .find(|p| p.0 == kept.entry)
        .expect("kept pending");
    assert!(aged.2 >= 60_000, "aged idle {}", aged.2);

    let gone = scripts::extend(
        &mut env.con,
        &env.keys,
        QUEUE,
        "w1",
        &[kept.entry.clone(), lost.entry.clone()],
    )
    .await
    .expect("extend");
    assert_eq!(gone, vec![lost.entry.clone()]);

    let after = env.pending().await;
    let fresh = after
        .iter()
        .find(|p| p.0 == kept.entry)
        .expect("kept pending");
    assert_eq!(fresh.1, "w1");
    assert!(fresh.2 < 10_000, "idle reset, got {}", fresh.2);
    assert_eq!(fresh.3, aged.3, "extending does not count as a delivery");
    let other = after
        .iter()
        .find(|p| p.0 == lost.entry)
        .expect("lost pending");
    assert_eq!(other.1, "w2", "the other consumer's entry is left alone");
}

// ---- 10. sessions --------------------------------------------------------------------------

fn message(role: &str, content: &str, task_id: &str) -> String {
    serde_json::json!({"role": role, "content": content, "task_id": task_id}).to_string()
}

#[tokio::test]
async fn session_append_adds_a_turn_once_caps_the_history_and_sets_a_ttl() {
    let mut env = Env::new().await;
    let key = env.keys.session("s1");
    let ttl = Duration::from_secs(900);
    let append = |task: &'static str, n: u32| {
        (
            task,
            message("user", &format!("question {n}"), task),
            message("assistant", &format!("answer {n}"), task),
        )
    };

    let (t1, u1, a1) = append("tool-T1", 1);
    let appended = scripts::session_append(&mut env.con, &env.keys, "s1", t1, &u1, &a1, 4, ttl)
        .await
        .expect("session_append");
    assert!(appended);
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut env.con)
        .await
        .expect("LRANGE");
    assert_eq!(list, vec![u1.clone(), a1.clone()]);
    let got_ttl = env.ttl(&key).await;
    assert!(got_ttl > 0 && got_ttl <= 900, "session TTL {got_ttl}");

    let again = scripts::session_append(&mut env.con, &env.keys, "s1", t1, &u1, &a1, 4, ttl)
        .await
        .expect("session_append");
    assert!(!again, "a re-run of the same task appends nothing");
    assert_eq!(env.llen(&key).await, 2);

    for n in 2..=3 {
        let task = if n == 2 { "tool-T2" } else { "tool-T3" };
        let (t, u, a) = append(task, n);
        let ok = scripts::session_append(&mut env.con, &env.keys, "s1", t, &u, &a, 4, ttl)
            .await
            .expect("session_append");
        assert!(ok);
    }
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut env.con)
        .await
        .expect("LRANGE");
    assert_eq!(list.len(), 4, "capped at max messages");
    assert_eq!(
        list[0],
        message("user", "question 2", "tool-T2"),
        "oldest turn dropped"
    );
    assert_eq!(list[3], message("assistant", "answer 3", "tool-T3"));
}
