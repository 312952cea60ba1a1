//! The task lifecycle through the real binaries (issue 2): chat with session history, a thousand
//! tool tasks spread over two workers, retries with growing backoff into the dead-letter stream
//! and replay, timeouts, cancellation of a running task, and start-up refusals.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::{
    Proc, bin_path, connection, poll_until, shared_redis, spawn_dispatcher, spawn_worker,
    unique_prefix,
};

const LONG: Duration = Duration::from_secs(60);

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad timestamp {rfc3339:?}: {e}"))
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_turn_chat_reflects_the_first_turn_and_names_its_worker() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w1 = spawn_worker(redis.url(), &prefix, "w1", &[]).await;
    let w2 = spawn_worker(redis.url(), &prefix, "w2", &[]).await;

    let (s, first) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"session_id": "s1", "message": "my name is Ada"})),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["response"], "echo: my name is Ada (turn 1)");
    let (s, second) = d
        .request(
            "POST",
            "/api/chat",
            Some(json!({"session_id": "s1", "message": "what is my name?"})),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    let answer = second["response"].as_str().expect("response text");
    assert!(answer.contains("turn 2"), "{answer}");
    assert!(
        answer.contains("my name is Ada"),
        "the second answer reflects the first turn: {answer}"
    );
    assert_eq!(second["session_id"], "s1");
    let worker = second["worker_id"].as_str().expect("worker_id");
    assert!([w1.id(), w2.id()].contains(&worker), "{worker}");
    assert!(second["latency_ms"].is_u64());
    assert_eq!(second["provider"], "echo");
    assert!(
        second["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0,
        "{second}"
    );

    // The history lives in Redis as readable JSON: two turns, four messages.
    let mut con = connection(redis.url()).await;
    let history: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}session:s1"))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("lrange");
    assert_eq!(history.len(), 4, "{history:?}");

    let (s, v) = d
        .request("POST", "/api/chat", Some(json!({"session_id": "s1"})))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("message"),
        "{v}"
    );

    let (s, workers) = d.request("GET", "/api/workers", None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = workers["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert!(ids.contains(&"w1") && ids.contains(&"w2"), "{workers}");
    assert_eq!(workers["summary"]["offline"], 0, "{workers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_echo_tasks_all_succeed_spread_over_both_workers() {
    const N: usize = 1_000;
    let redis = shared_redis();
    let prefix = unique_prefix();
    // The default runtime is one thread; the dispatcher and w2 run on a pool, so both are covered.
    let d = spawn_dispatcher(redis.url(), &prefix, &[("RUNTIME_THREADS", "2")]).await;
    let _w1 = spawn_worker(redis.url(), &prefix, "w1", &[]).await;
    let _w2 = spawn_worker(redis.url(), &prefix, "w2", &[("RUNTIME_THREADS", "2")]).await;

    let mut ids = Vec::with_capacity(N);
    for chunk in (0..N).collect::<Vec<_>>().chunks(25) {
        let posts = chunk.iter().map(|i| {
            d.submit(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"i": i}}}))
        });
        ids.extend(futures::future::join_all(posts).await);
    }
    let stream = format!("{prefix}{{tool}}:stream");
    let mut con = connection(redis.url()).await;
    poll_until("all tasks to succeed", LONG, || {
        let d = &d;
        async move {
            let (_, q) = d.request("GET", "/api/queues", None).await;
            let tool = q["queues"]
                .as_array()?
                .iter()
                .find(|q| q["queue"] == "tool")?
                .clone();
            (tool["counts"]["succeeded"] == N).then_some(())
        }
    })
    .await;

    let mut per_worker: HashMap<String, usize> = HashMap::new();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HMGET")
            .arg(format!("{prefix}{{tool}}:task:{id}"))
            .arg("state")
            .arg("worker")
            .arg("result");
    }
    let rows: Vec<(String, String, String)> = pipe.query_async(&mut con).await.expect("records");
    for (i, (state, worker, result)) in rows.into_iter().enumerate() {
        assert_eq!(state, "succeeded");
        let result: Value = serde_json::from_str(&result).expect("result JSON");
        assert_eq!(
            result,
            json!({"output": {"i": i}}),
            "task {i} carries its own result"
        );
        *per_worker.entry(worker).or_default() += 1;
    }
    println!("tasks per worker: {per_worker:?}");
    assert_eq!(
        per_worker.len(),
        2,
        "both workers ran tasks: {per_worker:?}"
    );
    assert!(per_worker.values().all(|n| *n > 0));

    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut con)
        .await
        .expect("xlen");
    assert_eq!(len, 0, "completed entries are acked and deleted");
    let (_, q) = d.request("GET", "/api/queues", None).await;
    let tool = q["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == "tool"))
        .cloned()
        .expect("tool queue");
    assert_eq!(tool["depth"], 0, "{tool}");
    assert_eq!(tool["pending"], 0, "{tool}");
    assert_eq!(tool["counts"]["running"], 0, "{tool}");
    assert_eq!(tool["counts"]["queued"], 0, "{tool}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_task_dies_after_max_attempts_with_growing_delays_and_replays() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[("PROMOTE_INTERVAL_MS", "20")]).await;
    let _w = spawn_worker(
        redis.url(),
        &prefix,
        "w1",
        &[("RETRY_BASE_MS", "400"), ("RETRY_MAX_MS", "10000")],
    )
    .await;
    let id = d
        .submit(json!({"kind": "tool", "max_attempts": 4,
               "payload": {"tool": "fail", "args": {"message": "upstream said no"}}}))
        .await;

    // Record each attempt's start as the worker wrote it.
    let starts: std::sync::Mutex<BTreeMap<u64, i64>> = Default::default();
    let dead = poll_until("the task to be dead", LONG, || {
        let (d, id, starts) = (&d, &id, &starts);
        async move {
            let t = d.task(id).await;
            if let (Some(a), Some(s)) = (t["attempts"].as_u64(), t["started_at"].as_str()) {
                let mut starts = starts.lock().expect("not poisoned");
                starts.entry(a).or_insert_with(|| millis(s));
            }
            (t["state"] == "dead").then_some(t)
        }
    })
    .await;
    let starts = starts.into_inner().expect("not poisoned");
    assert_eq!(dead["attempts"], 4, "{dead}");
    assert_eq!(dead["error"], "upstream said no");
    assert_eq!(starts.len(), 4, "saw every attempt start: {starts:?}");
    let gaps: Vec<i64> = starts
        .values()
        .zip(starts.values().skip(1))
        .map(|(a, b)| b - a)
        .collect();
    println!("delays between attempts (ms): {gaps:?}");
    // Backoff is base·2^(n-1) with its upper half random: [200,400], [400,800], [800,1600].
    assert!(
        gaps.windows(2).all(|w| w[1] > w[0]),
        "delays grow: {gaps:?}"
    );
    assert!(gaps[0] >= 200, "{gaps:?}");

    let (s, list) = d.request("GET", "/api/dead", None).await;
    assert_eq!(s, 200);
    let letter = list["dead"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["id"] == id.as_str()))
        .cloned()
        .expect("the task is listed as dead");
    assert_eq!(letter["error"], "upstream said no");
    assert_eq!(letter["attempts"], 4);

    let (s, v) = d
        .request("POST", &format!("/api/dead/{id}/retry"), None)
        .await;
    assert_eq!(s, 202, "{v}");
    let (s, v) = d
        .request("POST", &format!("/api/dead/{id}/retry"), None)
        .await;
    assert_ne!(s, 202, "a task is replayed once per death: {v}");
    let dead_at = millis(dead["finished_at"].as_str().expect("finished_at"));
    poll_until("the replayed task to run again", LONG, || {
        let (d, id) = (&d, &id);
        async move {
            let t = d.task(id).await;
            let started = t["started_at"].as_str().map(millis)?;
            (started > dead_at).then_some(())
        }
    })
    .await;
    let (_, list) = d.request("GET", "/api/dead", None).await;
    let still_listed = list["dead"]
        .as_array()
        .is_some_and(|l| l.iter().any(|e| e["entry"] == letter["entry"]));
    assert!(
        !still_listed,
        "the replayed dead letter left the dead stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_over_its_timeout_is_cut_off_and_retried() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w = spawn_worker(redis.url(), &prefix, "w1", &[]).await;
    let id = d
        .submit(json!({"kind": "tool", "max_attempts": 1, "timeout_ms": 300,
               "payload": {"tool": "sleep", "args": {"ms": 30000}}}))
        .await;
    let t = d.wait_state(&id, "dead", LONG).await;
    assert!(
        t["error"]
            .as_str()
            .unwrap_or("")
            .contains("timed out after 300 ms"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_task_aborts_it() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w = spawn_worker(redis.url(), &prefix, "w1", &[]).await;
    let id = d
        .submit(json!({"kind": "tool", "payload": {"tool": "sleep", "args": {"ms": 60000}}}))
        .await;
    d.wait_state(&id, "running", LONG).await;
    let (s, v) = d.request("DELETE", &format!("/api/tasks/{id}"), None).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["cancel_requested"], true);
    let t = d.wait_state(&id, "cancelled", LONG).await;
    assert_eq!(t["attempts"], 1);
    let (_, health) = w.get("/health").await.expect("worker health");
    assert_eq!(health["current_tasks"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_ms_returns_the_finished_task() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w = spawn_worker(redis.url(), &prefix, "w1", &[]).await;
    let (s, t) = d
        .request(
            "POST",
            "/api/tasks?wait_ms=10000",
            Some(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"hi": true}}})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["result"], json!({"output": {"hi": true}}));
    assert_eq!(t["worker"], "w1");
}

#[tokio::test]
async fn dispatcher_without_a_secret_refuses_a_public_address() {
    let redis = shared_redis();
    let proc = Proc::spawn(
        "dispatcher-no-secret",
        &bin_path("dispatcher"),
        &[],
        &[("REDIS_URL", redis.url()), ("DISPATCHER_ADDR", "0.0.0.0:0")],
    );
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("it exits");
    assert!(!status.success());
    let log = proc.log_text();
    assert!(log.contains("ROOT_NODE_SECRET is unset"), "{log}");
}

#[tokio::test]
async fn misspelt_variable_stops_the_worker_naming_it() {
    let proc = Proc::spawn(
        "worker-typo",
        &bin_path("worker"),
        &[],
        &[("WORKER_CONCURENCY", "4")],
    );
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("it exits");
    assert!(!status.success());
    let log = proc.log_text();
    assert!(
        log.contains("WORKER_CONCURENCY") && log.contains("WORKER_CONCURRENCY"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_sigterm_answers_waiting_requests_and_exits_0() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = std::sync::Arc::new(spawn_dispatcher(redis.url(), &prefix, &[]).await);
    // No worker: the request would wait its full minute.
    let waiting = tokio::spawn({
        let d = d.clone();
        async move {
            d.request(
                "POST",
                "/api/tasks?wait_ms=60000",
                Some(json!({"kind": "tool", "payload": {"tool": "echo"}})),
            )
            .await
        }
    });
    poll_until("the request to be waiting", LONG, || {
        let d = d.clone();
        async move {
            let (_, h) = d.request("GET", "/api/health/all", None).await;
            (h["waiting_requests"] == 1).then_some(())
        }
    })
    .await;
    let began = std::time::Instant::now();
    d.proc.sigterm();
    let (status, v) = waiting.await.expect("request task");
    assert_eq!(
        status, 202,
        "the waiting request is answered with the task as it is: {v}"
    );
    assert_eq!(v["state"], "queued");
    let exit = d
        .proc
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("dispatcher exits");
    assert!(exit.success(), "exit status {exit:?}");
    println!("dispatcher shutdown took {:?}", began.elapsed());
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_live_worker_with_the_same_id_is_refused() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let _first = spawn_worker(redis.url(), &prefix, "twin", &[]).await;
    let port = switchyard_tests::free_port().to_string();
    let second = Proc::spawn(
        "worker-twin",
        &bin_path("worker"),
        &[],
        &[
            ("REDIS_URL", redis.url()),
            ("QUEUE_PREFIX", &prefix),
            ("WORKER_ID", "twin"),
            ("WORKER_PORT", &port),
            ("WORKER_BIND", "127.0.0.1"),
        ],
    );
    let status = second
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("it exits");
    assert!(!status.success());
    let log = second.log_text();
    assert!(
        log.contains("another live worker already uses WORKER_ID=twin"),
        "{log}"
    );
}
