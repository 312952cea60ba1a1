//! `fail.lua`: a failed attempt waits out its backoff, fails for good, or ends cancelled.

use switchyard_shared::clock;
use switchyard_shared::scripts::{FailMode, FailStatus};

use crate::env::{Env, LATER};

#[tokio::test]
async fn retryable_failure_waits_in_the_delayed_set_until_promoted() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    let due = clock::now_ms() + 5_000;

    assert_eq!(
        env.fail("w1", &d, "boom", FailMode::Retry { due_ms: due })
            .await,
        FailStatus::Retrying
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "retrying");
    assert_eq!(t["error"], "boom");
    assert_eq!(t["run_at_ms"], due.to_string());
    assert!(!t.contains_key("entry"));
    assert_eq!(env.zscore(&d.id).await, Some(due as f64));
    assert_eq!(env.stream_len().await, 0, "the failed entry is deleted");
    assert!(env.pending().await.is_empty(), "and acked");
    assert_eq!(env.task_ttl(&d.id).await, -1);
    env.assert_stats(&[("running", 0), ("retrying", 1), ("retries", 1)])
        .await;

    assert_eq!(env.promote(due - 1, &d.id).await, 0, "not due yet");
    assert_eq!(env.state(&d.id).await, "retrying");
    assert_eq!(env.zscore(&d.id).await, Some(due as f64));
    assert_eq!(env.stream_len().await, 0);

    assert_eq!(env.promote(due, &d.id).await, 1);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "queued");
    assert!(!t.contains_key("run_at_ms"));
    assert_eq!(env.zscore(&d.id).await, None);
    let entries = env.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["id"], d.id);
    assert_eq!(t["entry"], entries[0].0);
    assert_ne!(entries[0].0, d.entry, "a fresh entry");
    env.assert_stats(&[("retrying", 0), ("queued", 1), ("running", 0)])
        .await;

    assert_eq!(env.promote(due + 1, &d.id).await, 0, "promoted only once");
    assert_eq!(env.stream_len().await, 1);
}

#[tokio::test]
async fn permanent_failure_ends_failed_without_retry() {
    let (mut env, d) = Env::with_running("w1", 3).await;

    assert_eq!(
        env.fail("w1", &d, "unknown tool", FailMode::Fail).await,
        FailStatus::Failed
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "failed");
    assert_eq!(t["error"], "unknown tool");
    assert_eq!(t["finished_at"], LATER);
    assert_eq!(t["attempts"], "1", "attempts left do not matter");
    env.assert_finished(&d.id, "failed").await;
    env.assert_stats(&[("running", 0), ("failed", 1), ("retrying", 0)])
        .await;
}

#[tokio::test]
async fn aborted_attempt_ends_cancelled() {
    let (mut env, d) = Env::with_running("w1", 3).await;

    assert_eq!(
        env.fail("w1", &d, "cancelled on request", FailMode::Cancel)
            .await,
        FailStatus::Cancelled
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "cancelled");
    assert_eq!(t["finished_at"], LATER);
    env.assert_finished(&d.id, "cancelled").await;
    env.assert_stats(&[("running", 0), ("cancelled", 1)]).await;
}
