//! Queue pause/resume through the real binaries (issue 22 item 2): a paused queue keeps
//! accepting tasks, the worker stops taking new entries from it within a measured bound (the
//! pub/sub notice, not the heartbeat: the heartbeat here is 3 s), a running task finishes, the
//! state shows in `GET /api/queues`, `GET /api/queues/{q}`, `/api/health/all` and the
//! `switchyard_queue_paused` gauge, and resume runs what waited.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::{
    Dispatcher, Worker, poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);
/// How long after the pause answered a task may still be taken (measured: a few ms).
const STOP_BOUND: Duration = Duration::from_millis(250);
/// How long the tasks enqueued after that must stay untouched.
const QUIET: Duration = Duration::from_millis(1500);

fn echo(n: usize) -> Value {
    json!({"kind": "tool", "payload": {"tool": "echo", "args": {"n": n}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_queue_accepts_tasks_and_the_worker_stops_taking_them_until_resumed() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w = spawn_worker(
        redis.url(),
        &prefix,
        "pw1",
        &[("HEARTBEAT_INTERVAL_MS", "3000")],
    )
    .await;
    d.submit_and_wait(echo(0)).await;

    // A task running when the pause lands finishes.
    let running = d
        .submit(json!({"kind": "tool", "payload": {"tool": "sleep", "args": {"ms": 700}}}))
        .await;
    d.wait_state(&running, "running", LONG).await;

    let (s, v) = d.request("POST", "/api/queues/tool/pause", None).await;
    let paused_at = Instant::now();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["paused"], true, "{v}");
    assert_eq!(v["changed"], true, "{v}");

    // Enqueue a task every few ms for a while after the pause answered.
    let mut sent: Vec<(Duration, String)> = Vec::new();
    let mut n = 1;
    while paused_at.elapsed() < STOP_BOUND + Duration::from_millis(200) {
        let id = d.submit(echo(n)).await;
        sent.push((paused_at.elapsed(), id));
        n += 1;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    d.wait_state(&running, "succeeded", LONG).await;

    // Watch the window: nothing enqueued after STOP_BOUND may start.
    let watch_until = Instant::now() + QUIET;
    let mut taken_late = Vec::new();
    let mut last_taken: Option<Duration> = None;
    while Instant::now() < watch_until {
        for (at, id) in &sent {
            let t = d.task(id).await;
            if t["state"] != "queued" {
                last_taken = last_taken.max(Some(*at));
                if *at > STOP_BOUND {
                    taken_late.push((at.as_millis(), id.clone(), t["state"].clone()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "pause → tasks taken after the pause answered: the last one enqueued at {:?}; first enqueue answered at {} µs; {} tasks sent over {} ms",
        last_taken,
        sent.first().map_or(0, |(at, _)| at.as_micros()),
        sent.len(),
        sent.last().map_or(0, |(at, _)| at.as_millis())
    );
    assert!(
        taken_late.is_empty(),
        "tasks enqueued over {STOP_BOUND:?} after the pause were taken: {taken_late:?}"
    );

    // The state shows everywhere.
    let (_, qs) = d.request("GET", "/api/queues", None).await;
    let tool = qs["queues"]
        .as_array()
        .and_then(|a| a.iter().find(|q| q["queue"] == "tool"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(tool["paused"], true, "{qs}");
    assert!(tool["paused_since_ms"].is_u64(), "{tool}");
    assert!(tool["waiting"].as_u64().unwrap_or(0) > 0, "{tool}");
    let (s, one) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["paused"], true, "{one}");
    let (s, chat) = d.request("GET", "/api/queues/chat", None).await;
    assert_eq!((s, &chat["paused"]), (200, &json!(false)), "{chat}");
    let (_, health) = d.request("GET", "/api/health/all", None).await;
    assert!(
        health["queues"].as_array().is_some_and(|a| a
            .iter()
            .any(|q| q["queue"] == "tool" && q["paused"] == true)),
        "{health}"
    );
    poll_until("the paused gauge", LONG, || async {
        let m = d
            .raw_request("GET", "/metrics", None, &[], None)
            .await
            .text();
        m.contains("switchyard_queue_paused{queue=\"tool\"} 1")
            .then_some(())
    })
    .await;

    // Idempotent.
    let (s, again) = d.request("POST", "/api/queues/tool/pause", None).await;
    assert_eq!(
        (s, &again["changed"], &again["paused"]),
        (200, &json!(false), &json!(true))
    );

    let (s, v) = d.request("POST", "/api/queues/tool/resume", None).await;
    assert_eq!(
        (s, &v["paused"], &v["changed"]),
        (200, &json!(false), &json!(true)),
        "{v}"
    );
    for (_, id) in &sent {
        d.wait_state(id, "succeeded", LONG).await;
    }
    let (s, again) = d.request("POST", "/api/queues/tool/resume", None).await;
    assert_eq!((s, &again["changed"]), (200, &json!(false)), "{again}");
    poll_until("the gauge back at 0", LONG, || async {
        let m = d
            .raw_request("GET", "/metrics", None, &[], None)
            .await
            .text();
        m.contains("switchyard_queue_paused{queue=\"tool\"} 0")
            .then_some(())
    })
    .await;

    // How long after the answer the worker knows (its /health), over a few rounds.
    let mut took = Vec::new();
    for _ in 0..5 {
        took.push(reaction(&d, &w, "pause", true).await);
        took.push(reaction(&d, &w, "resume", false).await);
    }
    took.sort();
    println!(
        "pause/resume answered → worker knows: min {:?}, median {:?}, max {:?} (heartbeat 3 s)",
        took[0],
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(took[took.len() - 1] < STOP_BOUND, "{took:?}");
}

/// Sends `action` on the tool queue and polls the worker's `/health` until it shows the queue
/// `paused` (or not): the time from the answer to then.
async fn reaction(d: &Dispatcher, w: &Worker, action: &str, paused: bool) -> Duration {
    let (s, v) = d
        .request("POST", &format!("/api/queues/tool/{action}"), None)
        .await;
    let answered = Instant::now();
    assert_eq!(s, 200, "{v}");
    loop {
        if let Some((200, h)) = w.get("/health").await {
            let shown = h["paused_queues"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("tool")));
            if shown == paused {
                return answered.elapsed();
            }
        }
        assert!(
            answered.elapsed() < LONG,
            "the worker never saw the {action}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_an_unknown_or_malformed_queue_is_refused_by_name() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    for (method, path, status) in [
        ("POST", "/api/queues/nope/pause", 404),
        ("POST", "/api/queues/nope/resume", 404),
        ("GET", "/api/queues/nope", 404),
        ("POST", "/api/queues/Bad%20Name/pause", 400),
        ("POST", "/api/queues/a*b/resume", 400),
        ("GET", "/api/queues/%7Bx%7D", 400),
    ] {
        let (s, v) = d.request(method, path, None).await;
        assert_eq!(s, status, "{method} {path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("queue"), "{method} {path}: {v}");
    }
    let (s, v) = d.request("GET", "/api/queues/tool/pause", None).await;
    assert_eq!(s, 405, "{v}");
    let r = d
        .raw_request("POST", "/api/queues/tool/pause", None, &[], None)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_every_queue_is_paused_takes_nothing_and_resumes_at_once() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w = spawn_worker(
        redis.url(),
        &prefix,
        "pw-all",
        &[("WORKER_QUEUES", "tool"), ("HEARTBEAT_INTERVAL_MS", "3000")],
    )
    .await;
    d.submit_and_wait(echo(0)).await;
    let (s, v) = d.request("POST", "/api/queues/tool/pause", None).await;
    assert_eq!(s, 200, "{v}");
    poll_until("the worker to know", LONG, || async {
        let (_, h) = w.get("/health").await?;
        (h["paused_queues"] == json!(["tool"])).then_some(())
    })
    .await;
    let id = d.submit(echo(1)).await;
    // Nothing may take it: watch it stay queued for a while.
    let until = Instant::now() + QUIET;
    while Instant::now() < until {
        assert_eq!(d.task(&id).await["state"], "queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = d.request("POST", "/api/queues/tool/resume", None).await;
    let resumed = Instant::now();
    assert_eq!(s, 200, "{v}");
    d.wait_state(&id, "succeeded", LONG).await;
    // Not the heartbeat (3 s) nor a read timeout: the notice.
    println!("resume → task done in {:?}", resumed.elapsed());
    assert!(
        resumed.elapsed() < Duration::from_millis(900),
        "{:?}",
        resumed.elapsed()
    );
}
