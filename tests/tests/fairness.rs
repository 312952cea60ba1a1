//! Fair dispatch and priorities (issue 21 items 3 and 5) through the real dispatcher and worker
//! binaries and a real Redis. Tasks are `sleep` tools of [`TASK_MS`], so a task's time is known.
//!
//! - Fairness: tenant A floods the queue, then tenant B sends 100 tasks of the same priority;
//!   B's median wait (enqueue → start) with 2 workers must stay far below what A's backlog
//!   takes (plain FIFO would make B wait for all of it), and A must still have work waiting
//!   when B's last task starts. Printed beside B's median wait alone (no A).
//! - Priority: `low` tasks queued, then one `high`: it must start within a few tasks' time;
//!   then, while `high` tasks keep arriving, `low` must get at least 5 % of the starts (the
//!   schedule gives it 10 %) and `high` most of them.
//!
//! The default sizes keep the tests quick; the `#[ignore]`d `*_at_full_size` tests run the
//! issue's sizes (A floods 50,000; 10,000 `low`) for the README's figures.

use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::{Value, json};
use switchyard_shared::keys::Keys;
use switchyard_tests::tenants::{call, create_tenant};
use switchyard_tests::{
    Dispatcher, Worker, connection, poll_until, shared_redis, spawn_dispatcher, spawn_worker,
    unique_prefix,
};

/// How long each task sleeps.
const TASK_MS: u64 = 10;
/// Tasks one worker runs at once.
const CONCURRENCY: &str = "4";

fn sleep_task(priority: &str) -> Value {
    json!({"kind": "tool", "priority": priority,
           "payload": {"tool": "sleep", "args": {"ms": TASK_MS}}})
}

/// A dispatcher and two workers on a fresh prefix; the workers start after `before_workers`
/// has run (so a backlog can be queued first).
struct Fleet {
    d: Dispatcher,
    prefix: String,
    url: String,
    workers: Vec<Worker>,
}

impl Fleet {
    async fn new() -> Self {
        let redis = shared_redis();
        let prefix = unique_prefix();
        let url = redis.url().to_owned();
        let d = spawn_dispatcher(&url, &prefix, &[]).await;
        Self {
            d,
            prefix,
            url,
            workers: Vec::new(),
        }
    }

    async fn start_workers(&mut self, n: usize) {
        for i in 0..n {
            let id = format!("w{i}");
            let env = [
                ("WORKER_QUEUES", "tool"),
                ("WORKER_CONCURRENCY", CONCURRENCY),
            ];
            let w = spawn_worker(&self.url, &self.prefix, &id, &env).await;
            self.workers.push(w);
        }
    }

    /// Enqueues `n` tasks of `priority` with `token`, in batches of 1,000: their ids.
    async fn flood(&self, token: &str, n: usize, priority: &str) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let k = (n - ids.len()).min(1000);
            let tasks: Vec<Value> = (0..k).map(|_| sleep_task(priority)).collect();
            let body = json!({ "tasks": tasks });
            let r = call(&self.d, token, "POST", "/api/tasks/batch", Some(body)).await;
            assert!(r.status == 202 || r.status == 200, "{}", r.text());
            let v = r.json();
            let accepted = v["tasks"].as_array().expect("tasks").iter();
            ids.extend(accepted.map(|t| t["id"].as_str().expect("an id").to_owned()));
        }
        ids
    }

    /// `(created ms, started ms)` of each of `ids` that has started, read from Redis.
    async fn times(&self, ids: &[String]) -> Vec<Option<(i64, i64)>> {
        let keys = Keys::new(self.prefix.clone());
        let mut con = connection(&self.url).await;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET")
                    .arg(keys.task("tool", id))
                    .arg("created_at")
                    .arg("started_at");
            }
            let rows: Vec<(Option<String>, Option<String>)> =
                pipe.query_async(&mut con).await.expect("HMGET");
            out.extend(rows.into_iter().map(|(c, s)| Some((ms(&c?), ms(&s?)))));
        }
        out
    }

    /// Waits until every one of `ids` has finished (its record has `started_at`).
    async fn wait_started(&self, ids: &[String], within: Duration) -> Vec<(i64, i64)> {
        poll_until("tasks started", within, || async {
            let t = self.times(ids).await;
            t.iter()
                .all(Option::is_some)
                .then(|| t.into_iter().flatten().collect())
        })
        .await
    }

    /// A tenant with the `submit` scope and no quota: its id and key.
    async fn tenant_with_id(&self, name: &str) -> (String, String) {
        create_tenant(&self.d, json!({"name": name, "scopes": ["submit"]})).await
    }

    /// A tenant with the `submit` scope and no quota: its key.
    async fn tenant(&self, name: &str) -> String {
        create_tenant(&self.d, json!({"name": name, "scopes": ["submit"]}))
            .await
            .1
    }
}

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .timestamp_millis()
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// A floods `a_tasks`, then B sends 100: B's median wait, and how many of A's were still
/// waiting when B's last one started (from A's start times).
async fn flood_then_b(a_tasks: usize) -> (i64, usize, Duration) {
    let mut f = Fleet::new().await;
    let (a, b) = (f.tenant("a").await, f.tenant("b").await);
    let a_ids = f.flood(&a, a_tasks, "normal").await;
    f.start_workers(2).await;
    // Let the workers get going on A's backlog first.
    poll_until("A's first tasks", Duration::from_secs(30), || async {
        let t = f.times(&a_ids[..50]).await;
        t.iter().all(Option::is_some).then_some(())
    })
    .await;
    let b_ids = f.flood(&b, 100, "normal").await;
    let b_times = f.wait_started(&b_ids, Duration::from_secs(120)).await;
    let b_last_start = b_times.iter().map(|t| t.1).max().expect("100 tasks");
    let b_median = median(b_times.iter().map(|(c, s)| s - c).collect());
    let a_times = f.times(&a_ids).await;
    let a_waiting = a_times
        .iter()
        .filter(|t| t.is_none_or(|(_, s)| s > b_last_start))
        .count();
    let began = Instant::now();
    let drain = Duration::from_secs(60 + a_tasks as u64 / 50);
    f.wait_started(&a_ids, drain).await;
    (b_median, a_waiting, began.elapsed())
}

/// B's 100 tasks with nothing else queued: their median wait.
async fn b_alone() -> i64 {
    let mut f = Fleet::new().await;
    let b = f.tenant("b").await;
    f.start_workers(2).await;
    let b_ids = f.flood(&b, 100, "normal").await;
    let t = f.wait_started(&b_ids, Duration::from_secs(60)).await;
    let waits: Vec<i64> = t.iter().map(|(c, s)| s - c).collect();
    println!(
        "B alone: first start after {} ms, last after {} ms",
        waits.iter().min().unwrap_or(&0),
        waits.iter().max().unwrap_or(&0)
    );
    median(waits)
}

async fn fairness(a_tasks: usize) {
    let alone = b_alone().await;
    let (with_a, a_waiting, a_rest) = flood_then_b(a_tasks).await;
    println!(
        "fairness: A floods {a_tasks}; B's 100 tasks: median wait {with_a} ms (alone: {alone} ms); \
         A still waiting when B's last started: {a_waiting}; A's rest took {a_rest:?} more"
    );
    // Under FIFO B would start after all of A's backlog: none of A's would be left waiting.
    assert!(
        a_waiting > a_tasks / 2,
        "B's tasks did not overtake A's backlog: {a_waiting} of A's {a_tasks} left"
    );
    // 2 workers × 4 slots, half of them B's: 100 tasks take ~13 task times; far below the
    // backlog's time (a_tasks / 8 task times).
    let backlog_ms = (a_tasks as u64 / 8 * TASK_MS) as i64;
    assert!(
        with_a < backlog_ms / 5,
        "B's median wait {with_a} ms is not far below A's backlog ({backlog_ms} ms)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_tenant_does_not_hold_back_another() {
    fairness(5_000).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "full size for the README figures (A floods 50,000): about two minutes"]
async fn a_flooding_tenant_does_not_hold_back_another_at_full_size() {
    fairness(50_000).await;
}

async fn priority(lows: usize) {
    let mut f = Fleet::new().await;
    let low_ids = f.flood(f.d.secret(), lows, "low").await;
    f.start_workers(2).await;
    poll_until("the first low tasks", Duration::from_secs(30), || async {
        let t = f.times(&low_ids[..20]).await;
        t.iter().all(Option::is_some).then_some(())
    })
    .await;
    let one = f.flood(f.d.secret(), 1, "high").await;
    let one_wait = f.wait_started(&one, Duration::from_secs(30)).await[0];
    let one_wait = one_wait.1 - one_wait.0;
    // High tasks keep arriving: a backlog of them topped up in batches.
    let mut highs = Vec::new();
    for _ in 0..4 {
        highs.extend(f.flood(f.d.secret(), 500, "high").await);
    }
    let high_times = f.wait_started(&highs, Duration::from_secs(120)).await;
    let from = high_times.iter().map(|t| t.1).min().expect("highs");
    let to = high_times.iter().map(|t| t.1).max().expect("highs");
    let low_starts = f
        .times(&low_ids)
        .await
        .iter()
        .flatten()
        .filter(|(_, s)| (from..=to).contains(s))
        .count();
    let share = low_starts as f64 / (low_starts + highs.len()) as f64;
    println!(
        "priority: {lows} low queued; one high waited {one_wait} ms; while 2,000 high ran \
         ({} ms), low got {low_starts} starts = {:.1} % of the starts",
        to - from,
        share * 100.0
    );
    let backlog_ms = (lows as u64 / 8 * TASK_MS) as i64;
    assert!(
        one_wait < backlog_ms / 5,
        "the high task waited {one_wait} ms, not far below the low backlog ({backlog_ms} ms)"
    );
    assert!(
        share >= 0.05,
        "low got {:.1} % of the starts",
        share * 100.0
    );
    assert!(share <= 0.3, "high did not run first: low got {share:.2}");
}

#[tokio::test(flavor = "multi_thread")]
async fn high_overtakes_low_and_low_still_progresses() {
    priority(4_000).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "full size for the README figures (10,000 low)"]
async fn high_overtakes_low_and_low_still_progresses_at_full_size() {
    priority(10_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_priority_is_refused_and_queue_views_show_each_tenants_backlog() {
    let f = Fleet::new().await;
    let a = f.tenant("a").await;
    let bad = json!({"kind": "tool", "priority": "urgent",
                     "payload": {"tool": "echo", "args": {}}});
    let r = call(&f.d, &a, "POST", "/api/tasks", Some(bad)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("priority"), "{}", r.text());
    f.flood(&a, 3, "low").await;
    f.flood(f.d.secret(), 2, "normal").await;
    let mine = call(&f.d, &a, "GET", "/api/queues/tool", None).await.json();
    assert_eq!(mine["waiting"], json!(3), "{mine}");
    assert_eq!(mine["lanes"][0]["priority"], json!("low"), "{mine}");
    assert!(
        mine.get("depth").is_none(),
        "a submit key sees only its own: {mine}"
    );
    let (_, all) = f.d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(all["waiting"], json!(5), "{all}");
    assert_eq!(all["lanes"].as_array().map(Vec::len), Some(2), "{all}");
}

/// A tenant's `low` and `high` tasks (lanes) go through every path a task of the queue's own
/// stream does: a delay and its promotion, retries and dead-lettering, a replay of the dead
/// letter, a cancel while running.
#[tokio::test(flavor = "multi_thread")]
async fn lane_tasks_are_delayed_retried_dead_lettered_replayed_and_cancelled() {
    let mut f = Fleet::new().await;
    let (a_id, a) = f.tenant_with_id("a").await;
    f.start_workers(1).await;
    let send = |body: Value| {
        let (d, a) = (&f.d, a.clone());
        async move {
            let r = call(d, &a, "POST", "/api/tasks", Some(body)).await;
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["id"].as_str().expect("an id").to_owned()
        }
    };
    let delayed = send(json!({"kind": "tool", "priority": "low", "delay_ms": 200,
                              "payload": {"tool": "echo", "args": {"x": 1}}}))
    .await;
    assert!(delayed.starts_with("tool.l.tn-"), "{delayed}");
    let failing = send(
        json!({"kind": "tool", "priority": "high", "max_attempts": 2,
                              "payload": {"tool": "fail", "args": {"message": "boom"}}}),
    )
    .await;
    let long =
        send(json!({"kind": "tool", "payload": {"tool": "sleep", "args": {"ms": 30000}}})).await;
    let within = Duration::from_secs(30);
    let task = |id: String| {
        let (d, a) = (&f.d, a.clone());
        async move {
            call(d, &a, "GET", &format!("/api/tasks/{id}"), None)
                .await
                .json()
        }
    };
    let wait = |id: String, state: &'static str| {
        let task = &task;
        async move {
            poll_until(&format!("{id} {state}"), within, || async {
                let t = task(id.clone()).await;
                (t["state"] == state).then_some(t)
            })
            .await
        }
    };
    assert_eq!(
        wait(delayed.clone(), "succeeded").await["tenant"],
        json!(a_id)
    );
    assert_eq!(wait(failing.clone(), "dead").await["attempts"], json!(2));
    let r = call(
        &f.d,
        &a,
        "POST",
        &format!("/api/dead/{failing}/retry"),
        None,
    )
    .await;
    assert!(r.status < 300, "{}", r.text());
    poll_until("the replayed task dead again", within, || async {
        let t = task(failing.clone()).await;
        (t["state"] == "dead" && t["attempts"] == json!(2)).then_some(())
    })
    .await;
    wait(long.clone(), "running").await;
    let r = call(&f.d, &a, "DELETE", &format!("/api/tasks/{long}"), None).await;
    assert!(r.status < 300, "{}", r.text());
    wait(long, "cancelled").await;
    let (_, q) = f.d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(
        (q["waiting"].clone(), q["pending"].clone()),
        (json!(0), json!(0)),
        "{q}"
    );
}
