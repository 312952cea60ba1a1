//! `cancel.lua`: a waiting task (queued, requeued, delayed, retrying) ends cancelled at once, a
//! running one is flagged and its worker notified, a finished or unknown one is left alone.

use std::time::Duration;

use futures::StreamExt;
use switchyard_shared::clock;
use switchyard_shared::scripts::{
    CancelStatus, CompleteStatus, FailMode, FailStatus, RequeueStatus, Started,
};
use switchyard_shared::task;
use switchyard_tests::shared_redis;

use crate::env::{Env, LATER, QUEUE, ttl_is_result_ttl};

#[tokio::test]
async fn cancelling_a_queued_task_ends_it_and_the_next_start_drops_its_entry() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;

    let c = env.cancel(&id).await;
    assert_eq!(
        (c.status, c.state.as_str()),
        (CancelStatus::Cancelled, "cancelled")
    );
    let t = env.task(&id).await;
    assert_eq!(t["state"], "cancelled");
    assert_eq!(t["finished_at"], LATER);
    assert!(ttl_is_result_ttl(env.task_ttl(&id).await));
    env.assert_event(&id, "cancelled").await;
    env.assert_stats(&[("queued", 0), ("cancelled", 1)]).await;

    // A fresh record names no entry (enqueue cannot know it cheaply), so the entry waits for
    // the next worker, whose start acks and deletes it without running the task.
    assert_eq!(env.stream_len().await, 1);
    let d = env.deliver_one("w1").await;
    let s = env.start_one("w1", &d).await;
    assert!(
        matches!(&s, Started::Skip { reason, .. } if reason == "task is cancelled"),
        "{s:?}"
    );
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    assert_eq!(env.task(&id).await["state"], "cancelled");
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

#[tokio::test]
async fn cancelling_a_requeued_task_removes_the_entry_its_record_names() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    assert_eq!(env.requeue("w1", &d).await, RequeueStatus::Queued);
    assert_eq!(env.stream_len().await, 1);

    let c = env.cancel(&d.id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "cancelled");
    assert!(!t.contains_key("entry"));
    assert_eq!(env.stream_len().await, 0);
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

#[tokio::test]
async fn cancelling_a_delayed_task_removes_it_from_the_delayed_set() {
    let mut env = Env::new().await;
    let due = clock::now_ms() + 60_000;
    let id = env.enqueue_delayed(due).await;

    let c = env.cancel(&id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    assert_eq!(env.zscore(&id).await, None);
    let t = env.task(&id).await;
    assert_eq!(t["state"], "cancelled");
    assert!(!t.contains_key("run_at_ms"));
    assert_eq!(env.promote(due, &id).await, 0, "nothing left to promote");
    assert_eq!(env.stream_len().await, 0);
    env.assert_stats(&[("queued", 0), ("cancelled", 1)]).await;
}

#[tokio::test]
async fn cancelling_a_retrying_task_removes_it_from_the_delayed_set() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    let due = clock::now_ms() + 60_000;
    let st = env
        .fail("w1", &d, "boom", FailMode::Retry { due_ms: due })
        .await;
    assert_eq!(st, FailStatus::Retrying);

    let c = env.cancel(&d.id).await;
    assert_eq!(c.status, CancelStatus::Cancelled);
    assert_eq!(env.zscore(&d.id).await, None);
    assert_eq!(env.task(&d.id).await["state"], "cancelled");
    env.assert_stats(&[("retrying", 0), ("cancelled", 1)]).await;
}

#[tokio::test]
async fn cancelling_a_running_task_flags_it_and_notifies_workers() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    let client = redis::Client::open(shared_redis().url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    let channel = env.keys.cancel_channel();
    pubsub.subscribe(&channel).await.expect("SUBSCRIBE");

    let c = env.cancel(&d.id).await;
    assert_eq!(
        (c.status, c.state.as_str()),
        (CancelStatus::Cancelling, "running")
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "running", "the worker ends it");
    assert_eq!(t["cancel_requested"], "1");
    assert_eq!(env.stream_len().await, 1);
    assert_eq!(env.pending().await.len(), 1);
    env.assert_stats(&[("running", 1), ("cancelled", 0)]).await;

    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("a cancel notice within 5 s")
        .expect("pubsub stream open");
    assert_eq!(msg.get_channel_name(), channel);
    let payload: String = msg.get_payload().expect("text payload");
    assert_eq!(payload, d.id);

    // The worker aborts it.
    let st = env.fail("w1", &d, "cancelled", FailMode::Cancel).await;
    assert_eq!(st, FailStatus::Cancelled);
    env.assert_stats(&[("running", 0), ("cancelled", 1)]).await;
}

#[tokio::test]
async fn cancelling_a_finished_or_unknown_task_changes_nothing() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    assert_eq!(
        env.complete("w1", &d, "{}").await,
        CompleteStatus::Succeeded
    );

    let c = env.cancel(&d.id).await;
    assert_eq!(
        (c.status, c.state.as_str()),
        (CancelStatus::Terminal, "succeeded")
    );
    assert_eq!(env.task(&d.id).await["state"], "succeeded");
    env.assert_stats(&[("succeeded", 1), ("cancelled", 0)])
        .await;

    let unknown = task::new_task_id(QUEUE);
    let c = env.cancel(&unknown).await;
    assert_eq!((c.status, c.state.as_str()), (CancelStatus::Missing, ""));
    assert!(env.task(&unknown).await.is_empty(), "no record is made up");
}
