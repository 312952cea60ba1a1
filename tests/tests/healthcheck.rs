//! `worker healthcheck` and `dispatcher healthcheck`: the subcommand container healthchecks run
//! (no shell, no curl). Exit 0 iff the component's own `/health` answers 200.

use std::time::Duration;

use switchyard_tests::{
    Proc, bin_path, free_port, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

/// Runs `<name> healthcheck` with `env` and returns whether it exited 0.
async fn healthcheck(name: &str, env: &[(&str, &str)]) -> bool {
    let p = Proc::spawn(
        &format!("{name}-healthcheck"),
        &bin_path(name),
        &["healthcheck"],
        env,
    );
    let status = p
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the healthcheck exits within its 2 s timeout");
    status.success()
}

#[tokio::test]
async fn worker_healthcheck_passes_against_a_live_worker_and_fails_on_a_closed_port() {
    let prefix = unique_prefix();
    let worker = spawn_worker(shared_redis().url(), &prefix, "hc-1", &[]).await;
    let port = worker.port().to_string();
    assert!(
        healthcheck(
            "worker",
            &[("WORKER_PORT", &port), ("WORKER_BIND", "127.0.0.1")]
        )
        .await,
        "healthcheck against a live worker on :{port}"
    );
    // Defaults to the unspecified bind address, which the check reaches on loopback.
    assert!(healthcheck("worker", &[("WORKER_PORT", &port)]).await);

    let closed = free_port().to_string();
    assert!(
        !healthcheck("worker", &[("WORKER_PORT", &closed)]).await,
        "a closed port is unhealthy"
    );
    // A bad configuration is a failure too, not a crash or a hang.
    assert!(!healthcheck("worker", &[("WORKER_PORT", "0")]).await);
}

#[tokio::test]
async fn dispatcher_healthcheck_follows_dispatcher_addr() {
    let prefix = unique_prefix();
    let dispatcher = spawn_dispatcher(shared_redis().url(), &prefix, &[]).await;
    let addr = dispatcher
        .base_url()
        .trim_start_matches("http://")
        .to_owned();
    assert!(healthcheck("dispatcher", &[("DISPATCHER_ADDR", &addr)]).await);
    let closed = format!("127.0.0.1:{}", free_port());
    assert!(!healthcheck("dispatcher", &[("DISPATCHER_ADDR", &closed)]).await);
}
