//! `sy tail` run as a process against the real dispatcher, worker and redis-server: the live
//! events of finished tasks in both output modes, `--count`, and an unknown queue.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::cli::{next_line, sy, sy_spawn};
use switchyard_tests::{shared_redis, spawn_dispatcher, spawn_worker, unique_prefix};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_tasks_as_they_finish_in_both_modes() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w = spawn_worker(redis.url(), &prefix, "tail-w1", &[]).await;
    for json_mode in [false, true] {
        let mut args = vec!["tail", "--count", "2", "--queue", "tool"];
        if json_mode {
            args.push("--json");
        }
        let mut tail = sy_spawn(&d, &args);
        let hello = next_line(&mut tail.stderr, "tail's start line", LONG).await;
        assert!(hello.contains("watching finished tasks"), "{hello}");
        let ok = d
            .submit(json!({"kind": "tool", "payload": {"tool": "echo", "args": {}}}))
            .await;
        d.wait_state(&ok, "succeeded", LONG).await;
        let bad = d
            .submit(
                json!({"kind": "tool", "payload": {"tool": "fail", "args": {"permanent": true}}}),
            )
            .await;
        let first = next_line(&mut tail.stdout, "first event", LONG).await;
        let second = next_line(&mut tail.stdout, "second event", LONG).await;
        if json_mode {
            let (f, s): (Value, Value) = (
                serde_json::from_str(&first).expect("a JSON line"),
                serde_json::from_str(&second).expect("a JSON line"),
            );
            assert_eq!(
                (&f["id"], &f["state"], &f["queue"]),
                (&json!(ok), &json!("succeeded"), &json!("tool")),
                "{f}"
            );
            assert_eq!(
                (&s["id"], &s["state"]),
                (&json!(bad), &json!("failed")),
                "{s}"
            );
        } else {
            assert!(
                first.contains(&ok) && first.contains("succeeded"),
                "{first}"
            );
            assert!(
                second.contains(&bad) && second.contains("failed"),
                "{second}"
            );
        }
        let status = tokio::time::timeout(LONG, tail.child.wait())
            .await
            .expect("tail ends after --count events")
            .expect("tail ran");
        assert_eq!(status.code(), Some(0));
    }
    let out = sy(&d, &["tail", "--queue", "nope"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unknown queue"), "{out:?}");
}
