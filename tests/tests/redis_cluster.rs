//! Redis Cluster (issue 20): both binaries in `REDIS_MODE=cluster` against three primaries
//! created with `redis-cli --cluster create`: chat with history (a global session key), a
//! thousand tool tasks over three queues whose hash tags land on three different primaries,
//! retries into the dead letters and replay, a SIGKILLed worker's tasks reclaimed; and the
//! throughput of the same load on one redis-server beside it. With a replica per primary, a
//! primary SIGKILLed under load hands its slots to its replica and no accepted task is lost;
//! over TLS, the lifecycle runs between `rediss://` clients and TLS-only nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::cluster_redis::{ClusterOptions, ClusterSet};
use switchyard_tests::{
    Dispatcher, RedisServer, env_pairs, failover, poll_until, spawn_dispatcher, spawn_worker,
    unique_prefix,
};

const LONG: Duration = Duration::from_secs(120);

/// Submits `n` echo tasks round-robin over the first three `queues` and waits until all
/// succeeded; answers the time taken.
async fn tasks_over_three_queues(d: &Dispatcher, queues: &[String], n: usize) -> Duration {
    let began = Instant::now();
    let mut ids = Vec::new();
    for i in 0..n {
        let q = &queues[i % 3];
        let body =
            json!({"kind": "tool", "queue": q, "payload": {"tool": "echo", "args": {"i": i}}});
        ids.push(d.submit(body).await);
    }
    for id in &ids {
        d.wait_state(id, "succeeded", LONG).await;
    }
    began.elapsed()
}

fn report(what: &str, took: Duration) {
    println!(
        "{what}: 1,000 tool tasks over 3 queues in {:.2} s ({:.0} tasks/s, {:.0} per queue)",
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64(),
        1000.0 / 3.0 / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_workers_tasks_are_reclaimed_on_the_cluster() {
    let cluster = ClusterSet::start();
    let urls = cluster.urls();
    let prefix = unique_prefix();
    let queues = cluster.queues_on_distinct_primaries(3);
    let list = queues.join(",");
    let d = spawn_dispatcher(
        &urls,
        &prefix,
        &[("REDIS_MODE", "cluster"), ("QUEUES", &list)],
    )
    .await;
    let wenv = [("REDIS_MODE", "cluster"), ("WORKER_QUEUES", list.as_str())];
    let mut workers = Vec::new();
    for id in ["kw1", "kw2", "kw3"] {
        workers.push(spawn_worker(&urls, &prefix, id, &wenv).await);
    }
    let mut ids = Vec::new();
    for i in 0..30 {
        let body = json!({"kind": "tool", "queue": queues[i % 3],
                          "payload": {"tool": "sleep", "args": {"ms": 3000}}});
        ids.push(d.submit(body).await);
    }
    let running = poll_until("every task to have started", LONG, || {
        let (d, ids) = (&d, &ids);
        async move {
            let mut on = Vec::new();
            for id in ids {
                let t = d.task(id).await;
                if !matches!(t["state"].as_str(), Some("running" | "succeeded")) {
                    return None;
                }
                on.push((
                    id.clone(),
                    t["state"] == "running",
                    t["worker"].as_str().unwrap_or("").to_owned(),
                ));
            }
            Some(on)
        }
    })
    .await;
    let victim = &workers[0];
    victim.proc.sigkill();
    let held: Vec<&String> = running
        .iter()
        .filter(|(_, r, w)| *r && w == victim.id())
        .map(|(id, _, _)| id)
        .collect();
    println!(
        "SIGKILLed {} holding {} running tasks",
        victim.id(),
        held.len()
    );
    for id in &ids {
        d.wait_state(id, "succeeded", LONG).await;
    }
    for id in held {
        let t = d.task(id).await;
        assert_ne!(t["worker"], victim.id(), "{t}");
        assert_eq!(t["attempts"], 2, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lifecycle_runs_on_a_three_primary_cluster() {
    let cluster = ClusterSet::start();
    let urls = cluster.urls();
    let prefix = unique_prefix();
    let mut queues = cluster.queues_on_distinct_primaries(3);
    queues.push("chat".to_owned());
    let list = queues.join(",");
    let env = [("REDIS_MODE", "cluster"), ("QUEUES", list.as_str())];
    let d = spawn_dispatcher(&urls, &prefix, &env).await;
    let wenv = [("REDIS_MODE", "cluster"), ("WORKER_QUEUES", list.as_str())];
    let _w1 = spawn_worker(&urls, &prefix, "cw1", &wenv).await;
    let _w2 = spawn_worker(&urls, &prefix, "cw2", &wenv).await;

    d.assert_chat_keeps_history().await;

    let took = tasks_over_three_queues(&d, &queues, 1000).await;
    report("cluster (3 primaries)", took);
    // The same load on one redis-server in the same run, for the per-queue figure beside it.
    let single = RedisServer::start();
    let prefix1 = unique_prefix();
    let d1 = spawn_dispatcher(single.url(), &prefix1, &env[1..]).await;
    let _s1 = spawn_worker(single.url(), &prefix1, "sw1", &wenv[1..]).await;
    let _s2 = spawn_worker(single.url(), &prefix1, "sw2", &wenv[1..]).await;
    report(
        "single Redis",
        tasks_over_three_queues(&d1, &queues, 1000).await,
    );

    let dead = d
        .submit(
            json!({"kind": "tool", "queue": queues[1], "max_attempts": 2,
                       "payload": {"tool": "fail", "args": {}}}),
        )
        .await;
    let first = d.wait_state(&dead, "dead", LONG).await;
    let (s, v) = d.request("GET", "/api/dead", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v.to_string().contains(&dead),
        "listed over every queue: {v}"
    );
    let (s, v) = d
        .request("POST", &format!("/api/dead/{dead}/retry"), None)
        .await;
    assert_eq!(s, 202, "{v}");
    poll_until("the replayed task to die again", LONG, || {
        let (d, dead, first) = (&d, &dead, &first);
        async move {
            let t = d.task(dead).await;
            (t["state"] == "dead" && t["finished_at"] != first["finished_at"]).then_some(())
        }
    })
    .await;
    let (s, v) = d.request("GET", "/api/queues", None).await;
    assert_eq!(s, 200, "the sampler reads every queue: {v}");
}

fn echo(i: u64) -> Value {
    json!({"kind": "tool", "queue": "tool", "payload": {"tool": "echo", "args": {"i": i}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_hands_its_slots_to_its_replica() {
    let opts = ClusterOptions {
        replicas: 1,
        tls: false,
    };
    let cluster = ClusterSet::start_with(opts, &[]);
    let urls = cluster.urls();
    let prefix = unique_prefix();
    let env = [
        ("REDIS_MODE", "cluster"),
        ("QUEUES", "tool"),
        ("WORKER_QUEUES", "tool"),
    ];
    let d = Arc::new(spawn_dispatcher(&urls, &prefix, &env).await);
    let w = spawn_worker(&urls, &prefix, "cf-w1", &env).await;
    let run = failover::under_load(&d, echo, || {
        let old = cluster.node_of("{tool}");
        cluster.kill(old);
        let killed_at = Instant::now();
        let new = cluster.wait_promoted("{tool}", old, Duration::from_secs(60));
        println!("primary {old} of {{tool}} SIGKILLed; its replica {new} serves the slot");
        killed_at
    })
    .await;
    run.print("cluster, a queue's primary SIGKILLed");
    assert!(
        w.proc.is_running() && d.proc.is_running(),
        "no process restarted"
    );
    assert_eq!(run.lost, 0, "every accepted task ends succeeded");
    assert!(
        run.after_promotion < Duration::from_secs(10),
        "the API accepts within 10 s of the promotion: {:?}",
        run.after_promotion
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lifecycle_runs_on_a_tls_cluster() {
    let opts = ClusterOptions {
        replicas: 0,
        tls: true,
    };
    let cluster = ClusterSet::start_with(opts, &[]);
    let urls = cluster.urls();
    assert!(urls.starts_with("rediss://"), "{urls}");
    let prefix = unique_prefix();
    let mut queues = cluster.queues_on_distinct_primaries(3);
    queues.push("chat".to_owned());
    let list = queues.join(",");
    let tls = cluster.client_env();
    let mut env = vec![
        ("REDIS_MODE", "cluster"),
        ("QUEUES", list.as_str()),
        ("WORKER_QUEUES", list.as_str()),
    ];
    env.extend(env_pairs(&tls));
    let d = spawn_dispatcher(&urls, &prefix, &env).await;
    let _w = spawn_worker(&urls, &prefix, "tls-cw1", &env).await;

    d.assert_chat_keeps_history().await;
    let took = tasks_over_three_queues(&d, &queues, 300).await;
    println!("TLS cluster: 300 tool tasks over 3 queues in {took:?}");
    let (s, v) = d.request("GET", "/api/queues", None).await;
    assert_eq!(s, 200, "the sampler reads every queue over TLS: {v}");
}
