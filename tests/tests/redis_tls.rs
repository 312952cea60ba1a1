//! Redis over TLS (issue 20): both binaries reach a TLS-only `redis-server` through `rediss://`
//! with a private CA and a client certificate, and the lifecycle runs end to end; a CA that did
//! not sign the server's certificate stops start-up with a message naming the setting.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::{
    Proc, TlsRedis, bin_path, env_pairs, free_port, poll_until, spawn_dispatcher, spawn_worker,
    unique_prefix,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_runs_over_rediss_with_a_private_ca_and_a_client_certificate() {
    let redis = TlsRedis::start();
    let prefix = unique_prefix();
    let env = redis.env();
    let env = env_pairs(&env);
    let d = spawn_dispatcher(&redis.url(), &prefix, &env).await;
    let _w = spawn_worker(&redis.url(), &prefix, "tls-w1", &env).await;

    d.assert_chat_keeps_history().await;

    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            d.submit(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"i": i}}}))
                .await,
        );
    }
    for id in &ids {
        d.wait_state(id, "succeeded", Duration::from_secs(60)).await;
    }
    // A failing task goes to the dead letters and is replayed, all over TLS.
    let dead = d
        .submit(json!({"kind": "tool", "max_attempts": 1, "payload": {"tool": "fail", "args": {}}}))
        .await;
    let first = d.wait_state(&dead, "dead", Duration::from_secs(30)).await;
    let (s, v) = d.request("GET", "/api/dead", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains(&dead), "{v}");
    let (s, v) = d
        .request("POST", &format!("/api/dead/{dead}/retry"), None)
        .await;
    assert_eq!(s, 202, "{v}");
    poll_until(
        "the replayed task to fail again",
        Duration::from_secs(30),
        || {
            let (d, dead, first) = (&d, &dead, &first);
            async move {
                let t = d.task(dead).await;
                (t["state"] == "dead" && t["finished_at"] != first["finished_at"]).then_some(())
            }
        },
    )
    .await;
}

/// Starts `bin` against the TLS server with `REDIS_TLS_CA_FILE=ca`; answers its exit log.
async fn refused_start(redis: &TlsRedis, bin: &str, ca: &str) -> String {
    let prefix = unique_prefix();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let url = redis.url();
    let mut env = vec![
        ("REDIS_URL", url.as_str()),
        ("REDIS_TLS_CA_FILE", ca),
        ("QUEUE_PREFIX", prefix.as_str()),
    ];
    if bin == "dispatcher" {
        env.push(("DISPATCHER_ADDR", addr.as_str()));
    } else {
        env.extend([("WORKER_PORT", port.as_str()), ("WORKER_BIND", "127.0.0.1")]);
    }
    let p = Proc::spawn(bin, &bin_path(bin), &[], &env);
    let Some(status) = p.wait_exit(Duration::from_secs(30)).await else {
        panic!(
            "{bin} with a wrong CA must exit, not wait: {}",
            p.log_tail(20)
        );
    };
    assert!(!status.success(), "{bin} exited 0 with a wrong CA");
    p.log_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fails_start_up_naming_the_setting() {
    let redis = TlsRedis::start();
    for bin in ["dispatcher", "worker"] {
        let log = refused_start(&redis, bin, &redis.other_ca_file()).await;
        println!(
            "{bin} with another CA: {}",
            log.lines().last().unwrap_or_default()
        );
        assert!(log.contains("REDIS_TLS_CA_FILE"), "{bin}: {log}");
        let log = refused_start(&redis, bin, "/nonexistent/ca.pem").await;
        assert!(log.contains("REDIS_TLS_CA_FILE"), "{bin}: {log}");
    }
}

/// Seconds for `n` echo tasks, each submitted with `wait_ms` (enqueue, run, complete, answer),
/// one at a time: the end-to-end latency of one task.
async fn end_to_end(d: &switchyard_tests::Dispatcher, n: u64) -> f64 {
    let began = std::time::Instant::now();
    for i in 0..n {
        let t = d
            .submit_and_wait(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"i": i}}}))
            .await;
        assert_eq!(t["state"], "succeeded", "{t}");
    }
    began.elapsed().as_secs_f64() / n as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_latency_over_tls_beside_plain_tcp() {
    let tls = TlsRedis::start();
    let plain = switchyard_tests::RedisServer::start();
    let env = tls.env();
    let env = env_pairs(&env);
    let (p1, p2) = (unique_prefix(), unique_prefix());
    let dt = spawn_dispatcher(&tls.url(), &p1, &env).await;
    let _wt = spawn_worker(&tls.url(), &p1, "tls-e2e", &env).await;
    let dp = spawn_dispatcher(plain.url(), &p2, &[]).await;
    let _wp = spawn_worker(plain.url(), &p2, "plain-e2e", &[]).await;
    // Warm up, then alternate rounds so drifts of a shared machine hit both alike.
    end_to_end(&dt, 10).await;
    end_to_end(&dp, 10).await;
    let (mut t, mut p) = (0.0, 0.0);
    for _ in 0..3 {
        t += end_to_end(&dt, 100).await / 3.0;
        p += end_to_end(&dp, 100).await / 3.0;
    }
    println!(
        "end to end, one task at a time: {:.2} ms over rediss://, {:.2} ms over redis:// ({:+.0} %)",
        t * 1e3,
        p * 1e3,
        (t / p - 1.0) * 100.0
    );
}
