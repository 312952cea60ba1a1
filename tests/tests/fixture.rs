//! Checks of the test fixture itself: that its Redis servers and processes behave as the
//! end-to-end tests rely on.

use std::path::Path;
use std::time::Duration;

use redis::AsyncCommands;
use switchyard_tests::{Proc, RedisServer, connection, poll_until, shared_redis, unique_prefix};

#[tokio::test]
async fn shared_redis_answers_and_is_the_same_server_every_time() {
    let url = shared_redis().url().to_owned();
    assert_eq!(shared_redis().url(), url);
    let mut con = connection(&url).await;
    let key = format!("{}probe", unique_prefix());
    let () = con.set(&key, "1").await.expect("SET");
    let v: String = con.get(&key).await.expect("GET");
    assert_eq!(v, "1");
}

#[tokio::test]
async fn aof_server_keeps_its_data_across_stop_and_restart_and_cleans_up_on_drop() {
    let mut redis = RedisServer::start_with_aof();
    let dir = redis
        .data_dir()
        .expect("a local server has a data dir")
        .to_owned();
    let url = redis.url().to_owned();
    let mut con = connection(&url).await;
    let () = con.set("k", "kept").await.expect("SET");

    redis.stop();
    assert!(!redis.is_running());
    assert!(dir.is_dir(), "stop keeps the data dir");
    assert!(
        redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .is_err(),
        "a stopped server refuses connections"
    );

    redis.restart();
    assert_eq!(redis.url(), url, "restart keeps the port");
    let mut con = connection(&url).await;
    let v: Option<String> = con.get("k").await.expect("GET");
    assert_eq!(v.as_deref(), Some("kept"));

    drop(redis);
    assert!(!dir.exists(), "drop removes the data dir");
}

#[tokio::test]
async fn proc_gets_a_clean_environment_and_logs_its_output() {
    let p = Proc::spawn(
        "env-probe",
        Path::new("/bin/sh"),
        &["-c", "env; echo done"],
        &[("SWITCHYARD_PROBE", "42")],
    );
    let status = p.wait_exit(Duration::from_secs(10)).await.expect("exits");
    assert!(status.success());
    let log = p.log_text();
    assert!(log.contains("SWITCHYARD_PROBE=42"), "{log}");
    assert!(log.contains("PATH="), "{log}");
    assert!(
        !log.contains("CARGO"),
        "the test's environment leaks: {log}"
    );
    assert!(!p.is_running());
}

#[tokio::test]
async fn proc_stops_on_sigterm_and_on_sigkill() {
    let p = Proc::spawn(
        "sleeper",
        Path::new("/bin/sh"),
        &[
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ],
        &[],
    );
    poll_until("the sleeper to start", Duration::from_secs(10), || async {
        p.log_text().contains("ready").then_some(())
    })
    .await;
    assert!(p.is_running());
    p.sigterm();
    let status = p.wait_exit(Duration::from_secs(10)).await.expect("exits");
    assert_eq!(status.code(), Some(3));
    assert!(p.log_text().contains("got-term"));

    let q = Proc::spawn("sleeper", Path::new("/bin/sh"), &["-c", "sleep 30"], &[]);
    assert!(q.wait_exit(Duration::from_millis(100)).await.is_none());
    q.sigkill();
    assert!(!q.is_running());
    let log = q.log_path().to_owned();
    drop(q);
    assert!(!log.exists(), "a passing test leaves no log behind");
}
