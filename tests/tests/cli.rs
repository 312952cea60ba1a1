//! `sy`, the command line (issue 22 item 3), run as a process against the real dispatcher,
//! worker and redis-server: every command in both output modes (tables and `--json`), the exit
//! codes and the error messages. (`sy tenants` waits for the tenants API of issue 21.)

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::cli::{sy, sy_with_input};
use switchyard_tests::{
    Dispatcher, Worker, free_port, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);

async fn fleet() -> (Dispatcher, Worker) {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let w = spawn_worker(redis.url(), &prefix, "cli-w1", &[]).await;
    (d, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_workers_enqueue_and_task_in_both_modes() {
    let (d, w) = fleet().await;

    let out = sy(&d, &["queues"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let header = out.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("QUEUE") && header.contains("STATE"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("tool ") && l.contains("active")),
        "{out:?}"
    );
    let v = sy(&d, &["queues", "--json"]).await.json();
    assert!(
        v["queues"].as_array().is_some_and(|qs| qs
            .iter()
            .any(|q| q["queue"] == "chat" && q["paused"] == false)),
        "{v}"
    );

    let out = sy(&d, &["workers"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("WORKER"), "{out:?}");
    assert!(out.stdout.lines().any(|l| l.starts_with(w.id())), "{out:?}");
    let v = sy(&d, &["--json", "workers"]).await.json();
    assert!(
        v["workers"]
            .as_array()
            .is_some_and(|ws| ws.iter().any(|x| x["id"] == w.id())),
        "{v}"
    );

    // Enqueue without waiting: the id, in both modes.
    let out = sy(&d, &["enqueue", "tool", "echo", "--args", r#"{"a":1}"#]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let id = out
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        id.starts_with("tool-") && out.stdout.contains("queued on queue tool"),
        "{out:?}"
    );
    let v = sy(&d, &["enqueue", "tool", "echo", "--json"]).await.json();
    assert!(
        v["id"].as_str().is_some_and(|i| i.starts_with("tool-")),
        "{v}"
    );

    // --wait: the finished task.
    let out = sy(
        &d,
        &["enqueue", "--wait", "tool", "echo", "--args", r#"{"b":2}"#],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("state") && l.ends_with("succeeded")),
        "{out:?}"
    );
    let out = sy(
        &d,
        &[
            "enqueue",
            "chat",
            "hello there",
            "--wait",
            "--wait-secs",
            "10",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["state"], "succeeded", "{v}");
    assert!(
        v["result"]["response"]
            .as_str()
            .is_some_and(|r| r.contains("echo: hello there")),
        "{v}"
    );

    // A task that fails: exit 5, in both modes, naming the failure.
    let fail = [
        "enqueue",
        "--wait",
        "--max-attempts",
        "1",
        "tool",
        "fail",
        "--args",
        r#"{"message":"boom","permanent":true}"#,
    ];
    let out = sy(&d, &fail).await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains("failed") && out.stderr.contains("boom"),
        "{out:?}"
    );
    let out = sy(&d, &[&fail[..], &["--json"]].concat()).await;
    assert_eq!(
        (out.code, &out.json()["state"]),
        (5, &json!("failed")),
        "{out:?}"
    );

    // sy task, both modes; an unknown id is exit 4.
    d.wait_state(&id, "succeeded", LONG).await;
    let out = sy(&d, &["task", &id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("state") && l.ends_with("succeeded")),
        "{out:?}"
    );
    let v = sy(&d, &["task", &id, "--json"]).await.json();
    assert_eq!(
        (&v["id"], &v["result"]["output"]),
        (&json!(id), &json!({"a": 1})),
        "{v}"
    );
    let out = sy(&d, &["task", "tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_unreachable_and_refused_have_their_exit_codes() {
    let (d, _w) = fleet().await;
    let out = sy(&d, &["enqueue", "tool", "echo", "--args", "nope"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--args"), "{out:?}");
    let out = sy(&d, &["frobnicate"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = sy(&d, &["--url", &url, "queues"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("cannot reach the dispatcher") && out.stderr.contains(&url),
        "{out:?}"
    );
    let out = sy(&d, &["--token", "wrong", "queues", "--json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("401") && out.stderr.contains("wrong bearer token"),
        "{out:?}"
    );
    let out = sy(&d, &["enqueue", "tool", "nosuchtool"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nosuchtool"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_in_both_modes_hold_and_release_a_queue() {
    let (d, _w) = fleet().await;
    let out = sy(&d, &["pause", "tool"]).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "queue tool paused"),
        "{out:?}"
    );
    let v = sy(&d, &["pause", "tool", "--json"]).await.json();
    assert_eq!(
        (&v["paused"], &v["changed"]),
        (&json!(true), &json!(false)),
        "{v}"
    );
    let out = sy(&d, &["queues"]).await;
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("tool ") && l.contains("paused")),
        "{out:?}"
    );

    let id = d
        .submit(json!({"kind": "tool", "payload": {"tool": "echo", "args": {}}}))
        .await;
    // Held while paused (the bound is measured in tests/tests/pause.rs).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.task(&id).await["state"], "queued");

    let v = sy(&d, &["resume", "tool", "--json"]).await.json();
    assert_eq!(
        (&v["paused"], &v["changed"]),
        (&json!(false), &json!(true)),
        "{v}"
    );
    d.wait_state(&id, "succeeded", LONG).await;
    let out = sy(&d, &["resume", "tool"]).await;
    assert_eq!(
        out.stdout.trim(),
        "queue tool was already resumed; nothing changed",
        "{out:?}"
    );

    let out = sy(&d, &["pause", "nope"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("no queue \"nope\""), "{out:?}");
    let out = sy(&d, &["pause", "Bad Name", "--json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not a queue name"), "{out:?}");
}

fn dead_ids(v: &Value) -> Vec<String> {
    v["dead"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_retried_in_both_modes() {
    let (d, _w) = fleet().await;
    let dies = json!({"kind": "tool", "max_attempts": 1, "payload": {"tool": "fail", "args": {"message": "always"}}});
    let a = d.submit(dies.clone()).await;
    let b = d.submit(dies).await;
    d.wait_state(&a, "dead", LONG).await;
    d.wait_state(&b, "dead", LONG).await;

    let out = sy(&d, &["dead", "ls"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("ID"), "{out:?}");
    assert!(
        out.stdout.contains(&a) && out.stdout.contains(&b) && out.stdout.contains("always"),
        "{out:?}"
    );
    let v = sy(&d, &["dead", "ls", "--queue", "tool", "--json"])
        .await
        .json();
    let ids = dead_ids(&v);
    assert!(ids.contains(&a) && ids.contains(&b), "{v}");

    let out = sy(&d, &["dead", "retry", &a]).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, format!("{a} queued again").as_str()),
        "{out:?}"
    );
    d.wait_state(&a, "dead", LONG).await;
    let v = sy(&d, &["dead", "retry", &b, "--json"]).await.json();
    assert_eq!(v["state"], "queued", "{v}");
    d.wait_state(&b, "dead", LONG).await;
    let out = sy(&d, &["dead", "retry", "tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5"]).await;
    assert_eq!(out.code, 4, "{out:?}");

    // retry-all: refuses without a terminal unless --yes.
    let out = sy(&d, &["dead", "retry-all"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");
    let v = sy(&d, &["dead", "retry-all", "--yes", "--json"])
        .await
        .json();
    assert!(v["retried"].as_u64().is_some_and(|n| n >= 2), "{v}");
    d.wait_state(&a, "dead", LONG).await;
    d.wait_state(&b, "dead", LONG).await;
    let out = sy(&d, &["dead", "retry-all", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("dead letters queued again"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_and_keeps_its_session_in_both_modes() {
    let (d, _w) = fleet().await;
    let out = sy(&d, &["chat", "my name is Ada"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "echo: my name is Ada (turn 1)",
        "{out:?}"
    );
    let session = out
        .stderr
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(!session.is_empty(), "{out:?}");
    let out = sy(&d, &["chat", "--session", &session, "what is my name?"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("turn 2") && out.stdout.contains("my name is Ada"),
        "{out:?}"
    );

    // Lines on stdin: one session for all of them.
    let out = sy_with_input(&d, &["chat"], Some("first\nsecond\n")).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].contains("echo: first (turn 1)") && lines[1].contains("echo: second (turn 2"),
        "{out:?}"
    );

    let out = sy(
        &d,
        &["chat", "--json", "--session", &session, "json please"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let events = out.json_lines();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert!(kinds.contains(&"delta"), "{kinds:?}");
    let done = &events[events.len() - 1]["data"];
    assert_eq!(done["session_id"], json!(session), "{done}");
    assert!(
        done["response"]
            .as_str()
            .is_some_and(|r| r.contains("turn 3")),
        "{done}"
    );

    let out = sy(&d, &["chat", "--session", "not a session!", "hi"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("session_id"), "{out:?}");
}
