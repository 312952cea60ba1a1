//! Held tasks (issue 19) across processes: a worker SIGKILLed while it holds many running tasks
//! has every one of them started again elsewhere, once, and none before it died; and a live
//! worker whose lease is refreshed only a few times per `LEASE_TIMEOUT_MS` keeps every long task
//! to the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamPendingCountReply;
use serde_json::json;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_tests::{
    Dispatcher, RedisServer, connection, poll_until, spawn_dispatcher, spawn_worker, unique_prefix,
};

const QUEUE: &str = "tool";
const LONG: Duration = Duration::from_secs(90);

/// Enqueues `n` sleep tasks of `ms` in one batch request; their ids.
async fn enqueue_sleeps(d: &Dispatcher, n: usize, ms: u64) -> Vec<String> {
    let task = json!({"kind": "tool", "payload": {"tool": "sleep", "args": {"ms": ms}}, "timeout_ms": ms * 2});
    let body = json!({"tasks": vec![task; n]});
    let (status, v) = d.request("POST", "/api/tasks/batch", Some(body)).await;
    assert_eq!(status, 202, "batch enqueue answered {status}: {v}");
    let ids: Vec<String> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("accepted").to_owned())
        .collect();
    assert_eq!(ids.len(), n);
    ids
}

/// A task's state, attempts, worker and start time as the reader answers them.
type RawRow = (Option<String>, Option<u32>, Option<String>, Option<String>);

/// (state, attempts, worker, started_at ms) of each task.
async fn rows(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    ids: &[String],
) -> Vec<(String, u32, String, i64)> {
    let raw: Vec<RawRow> = switchyard_tests::task_fields(con, keys, QUEUE, ids)
        .await
        .into_iter()
        .map(|mut f| {
            (
                f.remove("state"),
                f.remove("attempts").and_then(|a| a.parse().ok()),
                f.remove("worker"),
                f.remove("started_at"),
            )
        })
        .collect();
    raw.into_iter()
        .map(|(s, a, w, t)| {
            let ms = t
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .expect("started_at is RFC 3339")
                        .timestamp_millis()
                })
                .unwrap_or(0);
            (
                s.unwrap_or_default(),
                a.unwrap_or(0),
                w.unwrap_or_default(),
                ms,
            )
        })
        .collect()
}

async fn stat(con: &mut MultiplexedConnection, keys: &Keys, name: &str) -> i64 {
    let v: Option<i64> = redis::cmd("HGET")
        .arg(keys.stats(QUEUE))
        .arg(name)
        .query_async(con)
        .await
        .expect("HGET stats");
    v.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_holding_many_tasks_has_each_started_again_once_elsewhere() {
    const TASKS: usize = 200;
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let mut con = connection(redis.url()).await;
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let room = [("WORKER_CONCURRENCY", "200")];
    let victim = spawn_worker(redis.url(), &prefix, "victim", &room).await;
    let ids = enqueue_sleeps(&d, TASKS, 60_000).await;
    poll_until("the victim to run every task", LONG, || {
        let mut con = con.clone();
        let (keys, ids) = (&keys, &ids);
        async move {
            let r = rows(&mut con, keys, ids).await;
            r.iter()
                .all(|(s, _, w, _)| s == "running" && w == "victim")
                .then_some(())
        }
    })
    .await;
    let _s1 = spawn_worker(redis.url(), &prefix, "s1", &room).await;
    let _s2 = spawn_worker(redis.url(), &prefix, "s2", &room).await;
    // The survivors are up and reclaiming; while the victim lives, none of its tasks moves.
    poll_until("both survivors to beat", LONG, || {
        let mut con = con.clone();
        let keys = &keys;
        async move {
            let mut pipe = redis::pipe();
            pipe.cmd("EXISTS").arg(keys.worker("s1"));
            pipe.cmd("EXISTS").arg(keys.worker("s2"));
            let alive: (bool, bool) = pipe.query_async(&mut con).await.expect("EXISTS");
            (alive == (true, true)).then_some(())
        }
    })
    .await;
    let before = rows(&mut con, &keys, &ids).await;
    assert!(
        before
            .iter()
            .all(|(s, a, w, _)| s == "running" && *a == 1 && w == "victim"),
        "a task moved while its worker lived"
    );
    assert_eq!(stat(&mut con, &keys, "reclaimed").await, 0);

    let kill_ms = chrono::Utc::now().timestamp_millis();
    victim.proc.sigkill();
    let after = poll_until("every task to start again on a survivor", LONG, || {
        let mut con = con.clone();
        let (keys, ids) = (&keys, &ids);
        async move {
            let r = rows(&mut con, keys, ids).await;
            r.iter()
                .all(|(s, a, w, _)| s == "running" && *a >= 2 && (w == "s1" || w == "s2"))
                .then_some(r)
        }
    })
    .await;
    let mut by_worker: HashMap<&str, usize> = HashMap::new();
    let mut delays: Vec<i64> = Vec::new();
    for (_, attempts, worker, started) in &after {
        assert_eq!(*attempts, 2, "started exactly once more");
        *by_worker.entry(worker).or_default() += 1;
        delays.push(started - kill_ms);
    }
    delays.sort_unstable();
    let (median, worst) = (delays[delays.len() / 2], delays[delays.len() - 1]);
    println!(
        "{TASKS} tasks restarted after SIGKILL: median {median} ms, worst {worst} ms, by worker {by_worker:?}"
    );
    assert!(
        worst < 15_000,
        "a task restarted only {worst} ms after the kill"
    );
    // Each entry is pending once, under a survivor, delivered twice: none runs twice now.
    let pending: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(keys.stream(QUEUE))
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(TASKS * 2)
        .query_async(&mut con)
        .await
        .expect("XPENDING");
    assert_eq!(pending.ids.len(), TASKS);
    assert!(
        pending
            .ids
            .iter()
            .all(|p| p.times_delivered == 2 && p.consumer != "victim")
    );
    assert_eq!(stat(&mut con, &keys, "reclaimed").await, TASKS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_workers_keep_long_tasks_with_a_lease_refreshed_a_few_times_per_lease() {
    // The defaults scaled down 15 times: a 2 s lease (30 s) refreshed every ~0.7 s (10 s), three
    // times per lease and only every seventh 100 ms beat; each task runs 3.5 leases (the issue's
    // 60 s task under the default lease is 2).
    const TASKS: usize = 100;
    const LEASE_MS: u64 = 2_000;
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let con = connection(redis.url()).await;
    let env = [
        ("LEASE_TIMEOUT_MS", "2000"),
        ("HEARTBEAT_INTERVAL_MS", "100"),
        ("WORKER_CONCURRENCY", "50"),
    ];
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w1 = spawn_worker(redis.url(), &prefix, "w1", &env).await;
    let _w2 = spawn_worker(redis.url(), &prefix, "w2", &env).await;
    let ids = enqueue_sleeps(&d, TASKS, 7 * LEASE_MS / 2).await;

    // While they run, the idle time of their entries stays under the lease.
    let max_idle = Arc::new(AtomicU64::new(0));
    let done = poll_until("every task to succeed", LONG, || {
        let mut con = con.clone();
        let (keys, ids) = (&keys, &ids);
        let max_idle = max_idle.clone();
        async move {
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(keys.stream(QUEUE))
                .arg(GROUP)
                .arg("-")
                .arg("+")
                .arg(TASKS)
                .query_async(&mut con)
                .await
                .expect("XPENDING");
            for p in &pending.ids {
                max_idle.fetch_max(p.last_delivered_ms as u64, Ordering::Relaxed);
            }
            let r = rows(&mut con, keys, ids).await;
            r.iter().all(|(s, _, _, _)| s == "succeeded").then_some(r)
        }
    })
    .await;
    let mut con = con;
    let max_idle = max_idle.load(Ordering::Relaxed);
    println!("{TASKS} tasks of 7 s under a 2 s lease: largest entry idle time seen {max_idle} ms");
    assert!(max_idle < LEASE_MS, "an entry sat idle {max_idle} ms");
    assert!(done.iter().all(|(_, a, _, _)| *a == 1), "a task ran twice");
    assert_eq!(stat(&mut con, &keys, "reclaimed").await, 0, "reclaimed");
    assert_eq!(stat(&mut con, &keys, "fenced").await, 0, "fenced");
}
