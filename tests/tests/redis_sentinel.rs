//! Sentinel failover (issue 20): with tasks flowing through a dispatcher and a worker in
//! `REDIS_MODE=sentinel`, the primary is SIGKILLed; the sentinels promote a replica, the API
//! answers 503 meanwhile and accepts again by itself, the worker resumes, and no process is
//! restarted. With `REDIS_WAIT_REPLICAS=1` every accepted task ends `succeeded`; a write too few
//! replicas acknowledged is answered `503 not_replicated` and a retry with the same idempotency
//! key finds the task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::failover::{self, Failover};
use switchyard_tests::redis_nodes::{base_args, cli, start_node};
use switchyard_tests::sentinel_redis::{MASTER, SentinelSet};
use switchyard_tests::{
    Dispatcher, RedisServer, TempDir, env_pairs, poll_until, spawn_dispatcher, spawn_worker,
    unique_prefix,
};

fn echo(i: u64) -> Value {
    json!({"kind": "tool", "payload": {"tool": "echo", "args": {"i": i}}})
}

/// A primary SIGKILLed under load on `set`, in `REDIS_MODE=sentinel` with `extra` settings.
async fn failover_under_load(mut set: SentinelSet, extra: &[(&str, &str)]) -> Failover {
    let prefix = unique_prefix();
    let urls = set.urls();
    let tls_env = set.client_env();
    let mut env = vec![
        ("REDIS_MODE", "sentinel"),
        ("REDIS_SENTINEL_MASTER", MASTER),
    ];
    env.extend(extra);
    env.extend(env_pairs(&tls_env));
    let d = Arc::new(spawn_dispatcher(&urls, &prefix, &env).await);
    let w = spawn_worker(&urls, &prefix, "sentinel-w1", &env).await;
    let run = failover::under_load(&d, echo, || {
        let old = set.kill_primary();
        let killed_at = Instant::now();
        let new = set.wait_promoted(old, Duration::from_secs(90));
        println!("primary {old} SIGKILLed; sentinels promoted {new}");
        killed_at
    })
    .await;
    assert!(
        w.proc.is_running() && d.proc.is_running(),
        "no process restarted"
    );
    run
}

const WAIT_ONE: [(&str, &str); 2] = [
    ("REDIS_WAIT_REPLICAS", "1"),
    ("REDIS_WAIT_TIMEOUT_MS", "500"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_wait_replicas_a_primary_killed_under_load_loses_no_accepted_task() {
    let run = failover_under_load(SentinelSet::start(), &WAIT_ONE).await;
    run.print("REDIS_WAIT_REPLICAS=1");
    assert_eq!(run.lost, 0, "every accepted task ends succeeded");
    assert!(
        run.after_promotion < Duration::from_secs(5),
        "the API accepts within 5 s of the promotion: {:?}",
        run.after_promotion
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_wait_the_api_and_the_worker_recover_from_a_failover() {
    // Losses are possible here (asynchronous replication): the figure is printed, not asserted.
    let run = failover_under_load(SentinelSet::start(), &[]).await;
    run.print("REDIS_WAIT_REPLICAS=0");
    assert!(
        run.after_promotion < Duration::from_secs(5),
        "the API accepts within 5 s of the promotion: {:?}",
        run.after_promotion
    );
}

/// Sentinel over TLS: the binaries find the primary through sentinels they reach over
/// `rediss://` (client certificate), replication and the sentinels' own links are TLS too; the
/// failover under load with `WAIT` loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_a_failover_under_load_loses_no_accepted_task() {
    let run = failover_under_load(SentinelSet::start_tls(), &WAIT_ONE).await;
    run.print("TLS, REDIS_WAIT_REPLICAS=1");
    assert_eq!(run.lost, 0, "every accepted task ends succeeded");
    assert!(
        run.after_promotion < Duration::from_secs(5),
        "the API accepts within 5 s of the promotion: {:?}",
        run.after_promotion
    );
}

/// The figure the issue asks for: losses without `WAIT` over five failovers, each on a fresh
/// set (`cargo nextest run -p switchyard-tests --test redis_sentinel five_failovers
/// --run-ignored all --no-capture`; about a minute each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "five failovers in a row: a measurement, run on demand"]
async fn five_failovers_without_wait_count_the_lost_tasks() {
    let mut lost = 0;
    for i in 1..=5 {
        let run = failover_under_load(SentinelSet::start(), &[]).await;
        run.print(&format!("run {i}, REDIS_WAIT_REPLICAS=0"));
        lost += run.lost;
    }
    println!("REDIS_WAIT_REPLICAS=0: {lost} accepted tasks lost in 5 failovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_refuse_the_enqueue_and_hold_the_completion_until_one_acknowledges() {
    let redis = RedisServer::start();
    let port = redis.port().expect("a local server");
    let prefix = unique_prefix();
    let env = [
        ("REDIS_WAIT_REPLICAS", "1"),
        ("REDIS_WAIT_TIMEOUT_MS", "200"),
    ];
    let d = spawn_dispatcher(redis.url(), &prefix, &env).await;
    let body = json!({"kind": "tool", "idempotency_key": "k1",
                      "payload": {"tool": "echo", "args": {"x": 1}}});
    let (s, v) = d.request("POST", "/api/tasks", Some(body.clone())).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "not_replicated", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("0 of 1 replicas"),
        "{v}"
    );

    // A worker's completion is not done until a replica has it.
    let w = spawn_worker(redis.url(), &prefix, "wait-w1", &env).await;
    poll_until(
        "the worker to wait for a replica",
        Duration::from_secs(30),
        || async {
            w.proc
                .log_text()
                .contains("write not replicated yet")
                .then_some(())
        },
    )
    .await;
    assert!(
        !w.proc.log_text().contains("task succeeded"),
        "reported done before any replica acknowledged"
    );

    let dir = TempDir::new("replica");
    let (_replica, _) = start_node("redis-replica", "redis-server", &[], |p| {
        let mut a = base_args(p, dir.path());
        a.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
        a
    });
    poll_until(
        "the replica to be online",
        Duration::from_secs(30),
        || async {
            let info = cli(port, &[], &["INFO", "replication"]).ok()?;
            info.contains("state=online").then_some(())
        },
    )
    .await;
    // The replica acknowledges once its first REPLCONF ACK arrives: the client retries.
    let v = poll_until(
        "a retry with the same key to be accepted",
        Duration::from_secs(30),
        || {
            let (d, body) = (&d, body.clone());
            async move {
                let (s, v) = d.request("POST", "/api/tasks", Some(body)).await;
                (s == 202 || s == 200).then_some(v)
            }
        },
    )
    .await;
    let id = v["id"].as_str().expect("task id").to_owned();
    assert_eq!(
        v["duplicate"], true,
        "the retry found the task the refused request had written, not a new one: {v}"
    );
    d.wait_state(&id, "succeeded", Duration::from_secs(30))
        .await;
    poll_until(
        "the worker to report the task done",
        Duration::from_secs(30),
        || async { w.proc.log_text().contains("task succeeded").then_some(()) },
    )
    .await;
}

/// Mean time of one sequential `POST /api/tasks` over `n` tasks.
async fn mean_enqueue(d: &Dispatcher, n: u64) -> Duration {
    let began = Instant::now();
    for i in 0..n {
        let (s, v) = d.request("POST", "/api/tasks", Some(echo(i))).await;
        assert_eq!(s, 202, "{v}");
    }
    began.elapsed() / n as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_replicas_accepts_with_a_replica_and_its_cost_is_measured() {
    let redis = RedisServer::start();
    let port = redis.port().expect("a local server");
    let dir = TempDir::new("replica");
    let (_replica, _) = start_node("redis-replica", "redis-server", &[], |p| {
        let mut a = base_args(p, dir.path());
        a.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
        a
    });
    poll_until(
        "the replica to acknowledge",
        Duration::from_secs(30),
        || async {
            let info = cli(port, &[], &["INFO", "replication"]).ok()?;
            info.contains("state=online").then_some(())
        },
    )
    .await;
    let plain = spawn_dispatcher(redis.url(), &unique_prefix(), &[]).await;
    let waiting = spawn_dispatcher(
        redis.url(),
        &unique_prefix(),
        &[
            ("REDIS_WAIT_REPLICAS", "1"),
            ("REDIS_WAIT_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    // Warm both (connections, scripts), then alternate rounds so load drifts hit both alike.
    mean_enqueue(&plain, 20).await;
    mean_enqueue(&waiting, 20).await;
    let (mut a, mut b) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        a += mean_enqueue(&plain, 200).await;
        b += mean_enqueue(&waiting, 200).await;
    }
    println!(
        "enqueue, one at a time: {:.0} µs without WAIT, {:.0} µs with REDIS_WAIT_REPLICAS=1 (+{:.0} µs per task)",
        a.as_micros() as f64 / 3.0,
        b.as_micros() as f64 / 3.0,
        (b.as_micros() as f64 - a.as_micros() as f64) / 3.0
    );
}
