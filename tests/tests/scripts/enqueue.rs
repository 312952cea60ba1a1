//! `enqueue.lua` and the plain XADD for plain records: queued, delayed, duplicate, full.

use std::time::Duration;

use switchyard_shared::clock;
use switchyard_shared::scripts::{self, EnqueueStatus, NewRecord};
use switchyard_shared::task;

use crate::env::{Env, PAYLOAD, QUEUE, Spec, record};

#[tokio::test]
async fn enqueue_writes_a_queued_record_and_one_stream_entry() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;

    // The lean layout: the entry is the queued record, its id the task's; no hash is written.
    assert!(env.task(&id).await.is_empty(), "no hash at enqueue");
    let entries = env.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(id, task::entry_task_id(QUEUE, &entries[0].0));
    let e = &entries[0].1;
    assert!(!e.contains_key("id"), "a fresh entry is not a reference");
    assert_eq!(e["payload"], PAYLOAD);
    assert_eq!(e["kind"], "tool");
    assert_eq!(e["max_attempts"], "3");
    let t = env.lookup(&id).await.expect("readable");
    assert_eq!(t.state.as_str(), "queued");
    assert_eq!(t.attempts, 0);
    assert_eq!(
        t.payload,
        serde_json::from_str::<serde_json::Value>(PAYLOAD).expect("JSON")
    );
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
}

#[tokio::test]
async fn idempotency_key_makes_a_second_enqueue_a_duplicate_that_writes_nothing() {
    let mut env = Env::new().await;
    let spec = Spec {
        idempotency_key: Some("order-42"),
        ..Spec::default()
    };
    let (first, first_id) = env.enqueue_spec(&spec).await;
    assert_eq!(first.status, EnqueueStatus::Queued);

    let (second, second_id) = env.enqueue_spec(&spec).await;
    assert_eq!(second.status, EnqueueStatus::Duplicate);
    assert_eq!(
        second.id, first_id,
        "a duplicate answers the first task's id"
    );
    assert!(env.task(&second_id).await.is_empty(), "no second record");
    assert!(
        env.task(&first_id).await.is_empty(),
        "no hash for the first either"
    );
    assert_eq!(env.stream_len().await, 1);
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
    let ttl: i64 = env
        .redis("TTL", env.keys.idempotency(QUEUE, "order-42"))
        .await;
    assert!(ttl > 0 && ttl <= 600, "idempotency key TTL {ttl}");
}

#[tokio::test]
async fn full_queue_refuses_enqueue_and_writes_nothing() {
    let mut env = Env::new().await;
    let spec = Spec {
        max_depth: 1,
        ..Spec::default()
    };
    let (first, _) = env.enqueue_spec(&spec).await;
    assert_eq!(first.status, EnqueueStatus::Queued);

    let (second, second_id) = env.enqueue_spec(&spec).await;
    assert_eq!(second.status, EnqueueStatus::Full);
    assert!(env.task(&second_id).await.is_empty(), "no record");
    assert_eq!(env.stream_len().await, 1);
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
}

#[tokio::test]
async fn enqueue_with_a_due_time_parks_the_task_in_the_delayed_set() {
    let mut env = Env::new().await;
    let due = clock::now_ms() + 60_000;
    let id = env.enqueue_delayed(due).await;

    assert_eq!(env.zscore(&id).await, Some(due as f64));
    assert_eq!(
        env.stream_len().await,
        0,
        "not in the stream before it is due"
    );
    let t = env.task(&id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["run_at_ms"], due.to_string());
    assert!(!t.contains_key("entry"));
    env.assert_stats(&[("queued", 1), ("enqueued", 1)]).await;
}

#[tokio::test]
async fn enqueue_many_writes_a_batch_in_order_and_honours_keys_within_it() {
    let mut env = Env::new().await;
    let recs: Vec<NewRecord> = (0..4)
        .map(|i| {
            let mut r = record(3);
            r.due_ms = (i == 3).then(|| clock::now_ms() + 60_000);
            // The first two share a key: the second is a duplicate of the first.
            r.task.idempotency_key = (i < 2).then(|| "same-key".to_owned());
            r.idempotency_ttl = Duration::from_secs(60);
            r
        })
        .collect();
    let replies = scripts::enqueue_many(&mut env.con, &env.keys, &recs, 0)
        .await
        .expect("enqueue_many");
    let got: Vec<(EnqueueStatus, String)> = replies
        .into_iter()
        .map(|r| r.map(|r| (r.status, r.id)).expect("per-task reply"))
        .collect();
    // The plain task and the keyed ones are written by different calls of one pipeline, so
    // their entries need not be in the batch's order; each id names its own entry.
    let entries: Vec<String> = env
        .entries()
        .await
        .into_iter()
        .map(|(e, _)| task::entry_task_id(QUEUE, &e))
        .collect();
    assert_eq!(entries.len(), 2);
    let ids = [got[0].1.clone(), got[2].1.clone(), recs[3].task.id.clone()];
    assert!(
        entries.contains(&ids[0]) && entries.contains(&ids[1]),
        "{entries:?}"
    );
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        got,
        vec![
            (EnqueueStatus::Queued, ids[0].clone()),
            (EnqueueStatus::Duplicate, ids[0].clone()),
            (EnqueueStatus::Queued, ids[1].clone()),
            (EnqueueStatus::Delayed, ids[2].clone()),
        ]
    );
    assert_eq!(env.state(&ids[0]).await, "queued");
    assert_eq!(env.state(&ids[1]).await, "queued");
    assert!(
        env.task(&recs[1].task.id).await.is_empty(),
        "the duplicate wrote nothing"
    );
    assert!(env.task(&ids[2]).await.contains_key("run_at_ms"));
    env.assert_stats(&[("enqueued", 3), ("queued", 3)]).await;
}
