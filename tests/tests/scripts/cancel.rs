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
async fn cancelling_a_queued_task_ends_it_and_removes_its_entry() {
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
    assert_eq!(t["id"], id, "the entry's record moved into the hash");
    assert_eq!(t["payload"], crate::env::PAYLOAD);
    assert_eq!(t["attempts"], "0");
    assert!(ttl_is_result_ttl(env.task_ttl(&id).await));
    env.assert_event(&id, "cancelled").await;
    env.assert_stats(&[("queued", 0), ("cancelled", 1)]).await;

    // The id names the entry, so it goes at once: no worker ever gets it.
    assert_eq!(env.stream_len().await, 0);
    assert!(env.deliver("w1", 1).await.is_empty());
    assert!(env.pending().await.is_empty());
    assert_eq!(env.state(&id).await, "cancelled");
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

#[tokio::test]
async fn a_reference_entry_of_a_cancelled_task_is_dropped_by_start() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    assert_eq!(env.requeue("w1", &d).await, RequeueStatus::Queued);
    let r = env.deliver_one("w2").await;
    assert_eq!(r.id, d.id, "a reference entry names the task");
    // The hash was cancelled behind the reference entry's back (an operator's edit).
    let () = env
        .redis("HSET", (env.keys.task(QUEUE, &d.id), "state", "cancelled"))
        .await;
    let s = env.start_one("w2", &r).await;
    assert!(
        matches!(&s, Started::Skip { reason, .. } if reason == "task is cancelled"),
        "{s:?}"
    );
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
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
    assert_eq!(env.state(&d.id).await, "cancelled");
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
    // Only the request is stored: the entry still holds the record, the group its run.
    let t = env.task(&d.id).await;
    assert_eq!(t.get("cancel_requested").map(String::as_str), Some("1"));
    assert!(!t.contains_key("state"));
    let t = env.lookup(&d.id).await.expect("readable");
    assert_eq!(t.state.as_str(), "running", "the worker ends it");
    assert!(t.cancel_requested);
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
    assert_eq!(env.state(&d.id).await, "succeeded");
    env.assert_stats(&[("succeeded", 1), ("cancelled", 0)])
        .await;

    let unknown = task::new_task_id(QUEUE);
    let c = env.cancel(&unknown).await;
    assert_eq!((c.status, c.state.as_str()), (CancelStatus::Missing, ""));
    assert!(env.task(&unknown).await.is_empty(), "no record is made up");
}
