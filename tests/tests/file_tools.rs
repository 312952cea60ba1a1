//! File-tool tasks through the real binaries: a path that can never be read (a symbolic link
//! loop in the sandbox) fails the task at its first attempt, naming the problem, instead of
//! being retried into the dead-letter stream.

use serde_json::json;
use switchyard_tests::{TempDir, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix};

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_file_on_a_symlink_loop_fails_at_the_first_attempt() {
    use std::os::unix::fs::symlink;
    let sandbox = TempDir::new("loop-sandbox");
    symlink(sandbox.path().join("b"), sandbox.path().join("a")).expect("link a -> b");
    symlink(sandbox.path().join("a"), sandbox.path().join("b")).expect("link b -> a");
    let dir = sandbox.path().to_string_lossy().into_owned();
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[("QUEUES", "chat,tool,files")]).await;
    let _w = spawn_worker(
        redis.url(),
        &prefix,
        "w-files",
        &[
            ("WORKER_QUEUES", "files"),
            ("ENABLE_FILE_TOOLS", "true"),
            ("TOOL_SANDBOX_DIR", &dir),
            ("RETRY_BASE_MS", "10"),
        ],
    )
    .await;

    let task = d
        .submit_and_wait(json!({"kind": "tool", "queue": "files", "max_attempts": 3,
                                "payload": {"tool": "read_file", "args": {"path": "a"}}}))
        .await;
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["attempts"], 1, "a link loop is not retried: {task}");
    let error = task["error"].as_str().unwrap_or("");
    assert!(
        error.contains("read_file") && error.contains("\"a\"") && error.contains("link loop"),
        "{error}"
    );
}
