//! `enqueue.lua` and the MULTI block for plain records: queued, delayed, duplicate, full.

use std::time::Duration;

use switchyard_shared::clock;
use switchyard_shared::scripts::{self, EnqueueStatus, NewRecord};
use switchyard_shared::task;

use crate::env::{Env, PAYLOAD, QUEUE, Spec, record};

#[tokio::test]
async fn enqueue_writes_a_queued_record_and_one_stream_entry() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;

    let t = env.task(&id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], "0");
    assert_eq!(t["payload"], PAYLOAD);
    let entries = env.entries().await;
    assert_eq!(entries.len(), 1);
    assert!(
        !t.contains_key("entry"),
        "a fresh record names no entry: the worker's start writes it"
    );
    assert_eq!(entries[0].1["id"], id);
    assert_eq!(env.task_ttl(&id).await, -1, "a live task never expires");
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
    let ids: Vec<String> = (0..4).map(|_| task::new_task_id(QUEUE)).collect();
    let recs: Vec<NewRecord<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| NewRecord {
            due_ms: (i == 3).then(|| clock::now_ms() + 60_000),
            // The first two share a key: the second is a duplicate of the first.
            idempotency: (i < 2).then(|| ("same-key", Duration::from_secs(60))),
            ..record(id, 3)
        })
        .collect();
    let replies = scripts::enqueue_many(&mut env.con, &env.keys, &recs, 0)
        .await
        .expect("enqueue_many");
    let got: Vec<(EnqueueStatus, String)> = replies
        .into_iter()
        .map(|r| r.map(|r| (r.status, r.id)).expect("per-task reply"))
        .collect();
    assert_eq!(
        got,
        vec![
            (EnqueueStatus::Queued, ids[0].clone()),
            (EnqueueStatus::Duplicate, ids[0].clone()),
            (EnqueueStatus::Queued, ids[2].clone()),
            (EnqueueStatus::Delayed, ids[3].clone()),
        ]
    );
    assert_eq!(env.stream_len().await, 2);
    assert_eq!(env.task(&ids[0]).await["state"], "queued");
    assert!(
        env.task(&ids[1]).await.is_empty(),
        "the duplicate wrote nothing"
    );
    assert!(env.task(&ids[3]).await.contains_key("run_at_ms"));
    env.assert_stats(&[("enqueued", 3), ("queued", 3)]).await;
}
