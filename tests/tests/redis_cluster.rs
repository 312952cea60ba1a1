//! Redis Cluster (issue 20): both binaries in `REDIS_MODE=cluster` against three primaries
//! created with `redis-cli --cluster create`: chat with history (a global session key), a
//! thousand tool tasks over three queues whose hash tags land on three different primaries,
//! retries into the dead letters and replay.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::cluster_redis::ClusterSet;
use switchyard_tests::{poll_until, spawn_dispatcher, spawn_worker, unique_prefix};

const LONG: Duration = Duration::from_secs(120);

/// Three queue names whose `{queue}` hash tags are served by three different primaries.
fn queues_on_three_primaries(cluster: &ClusterSet) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for i in 0..100 {
        let q = format!("q{i}");
        if seen.insert(cluster.node_of(&format!("{{{q}}}"))) {
            out.push(q);
        }
        if out.len() == 3 {
            return out;
        }
    }
    panic!("no three queues on three primaries among q0..q99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lifecycle_runs_on_a_three_primary_cluster() {
    let cluster = ClusterSet::start();
    let urls = cluster.urls();
    let prefix = unique_prefix();
    let mut queues = queues_on_three_primaries(&cluster);
    queues.push("chat".to_owned());
    let list = queues.join(",");
    let env = [("REDIS_MODE", "cluster"), ("QUEUES", list.as_str())];
    let d = spawn_dispatcher(&urls, &prefix, &env).await;
    let wenv = [("REDIS_MODE", "cluster"), ("WORKER_QUEUES", list.as_str())];
    let _w1 = spawn_worker(&urls, &prefix, "cw1", &wenv).await;
    let _w2 = spawn_worker(&urls, &prefix, "cw2", &wenv).await;

    let (s, first) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"session_id": "s", "message": "I am Ada"})),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let (s, second) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"session_id": "s", "message": "who?"})),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    let answer = second["response"].as_str().unwrap_or_default();
    assert!(
        answer.contains("turn 2") && answer.contains("I am Ada"),
        "{answer}"
    );

    let began = Instant::now();
    let mut ids = Vec::new();
    for i in 0..1000 {
        let q = &queues[i % 3];
        let body =
            json!({"kind": "tool", "queue": q, "payload": {"tool": "echo", "args": {"i": i}}});
        ids.push(d.submit(body).await);
    }
    for id in &ids {
        d.wait_state(id, "succeeded", LONG).await;
    }
    let took = began.elapsed();
    println!(
        "cluster: 1,000 tool tasks over 3 queues on 3 primaries in {:.2} s ({:.0} tasks/s, {:.0} per queue)",
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64(),
        1000.0 / 3.0 / took.as_secs_f64()
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
