//! `start.lua`: a delivered entry becomes running under its consumer, is skipped (cancelled,
//! missing, superseded, held elsewhere), or is dead-lettered when lost workers used up its
//! attempts.

use std::time::Duration;

use switchyard_shared::lane;
use switchyard_shared::scripts::{CancelStatus, StartStatus, Started, Work};
use switchyard_shared::task::TaskKind;

use crate::env::{Env, NOW, PAYLOAD, QUEUE, Spec, runnable};

#[tokio::test]
async fn start_marks_the_task_running_under_its_consumer() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;
    let d = env.deliver_one("w1").await;
    assert_eq!(d.id, id);

    let s = env.start_one("w1", &d).await;
    let run = runnable(&s);
    assert_eq!(
        (run.delivered.id.as_str(), run.delivered.entry.as_str()),
        (id.as_str(), d.entry.as_str())
    );
    assert_eq!(
        run.work,
        Ok(Work {
            kind: TaskKind::Tool,
            payload: serde_json::from_str(PAYLOAD).expect("payload JSON"),
        })
    );
    assert_eq!(
        (run.attempts, run.max_attempts, run.timeout),
        (1, 3, Some(Duration::from_millis(30_000)))
    );
    assert_eq!(run.started_at, NOW);
    assert!(
        run.record.is_some(),
        "the entry's record, for the final write"
    );

    // Running is the entry pending in the group: nothing is written.
    assert!(env.task(&id).await.is_empty(), "no hash while it runs");
    let t = env.lookup(&id).await.expect("readable");
    assert_eq!(t.state.as_str(), "running");
    assert_eq!(t.attempts, 1);
    assert_eq!(t.worker.as_deref(), Some("w1"));
    assert!(t.started_at.is_some());
    let pending = env.pending().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].0.as_str(), pending[0].1.as_str()),
        (d.entry.as_str(), "w1")
    );
    assert_eq!(
        env.stream_len().await,
        1,
        "a running entry stays until it finishes"
    );
    env.assert_stats(&[("queued", 0), ("running", 1)]).await;
}

#[tokio::test]
async fn start_skips_and_drops_entries_of_cancelled_missing_or_superseded_tasks() {
    let mut env = Env::new().await;
    let cancelled = env.enqueue_reference(3).await;
    let missing = env.enqueue_reference(3).await;
    let superseded = env.enqueue_reference(3).await;
    let batch = env.deliver("w1", 3).await;
    assert_eq!(batch.len(), 3);
    assert_eq!(env.pending().await.len(), 3);

    // Cancelled after delivery: the record says so, while the entry still sits pending.
    let key = env.keys.task(QUEUE, &cancelled);
    let () = env.redis("HSET", (key, "state", "cancelled")).await;
    let () = env.redis("DEL", env.keys.task(QUEUE, &missing)).await;
    let key = env.keys.task(QUEUE, &superseded);
    let () = env.redis("HSET", (key, "entry", "9999999999999-0")).await;

    let s = env.start("w1", &batch).await;
    assert_eq!(s.len(), 3);
    for (started, id) in s.iter().zip([&cancelled, &missing, &superseded]) {
        let Started::Skip { delivered, reason } = started else {
            panic!("skipped: {started:?}");
        };
        assert_eq!(&delivered.id, id);
        assert!(!reason.is_empty(), "a skip says why: {started:?}");
    }
    assert_eq!(env.stream_len().await, 0, "skipped entries are deleted");
    assert!(env.pending().await.is_empty(), "skipped entries are acked");
    assert_eq!(env.state(&cancelled).await, "cancelled");
    assert!(env.task(&missing).await.is_empty(), "no record is made up");
    assert_eq!(env.state(&superseded).await, "queued");
    env.assert_stats(&[("running", 0)]).await;
}

#[tokio::test]
async fn start_skips_a_task_cancelled_between_delivery_and_start() {
    let mut env = Env::new().await;
    let id = env.enqueue_reference(3).await;
    let d = env.deliver_one("w1").await;
    assert_eq!(d.id, id);
    // Delivered is running (its entry is pending): the request waits for the worker.
    let c = env.cancel(&id).await;
    assert_eq!(c.status, CancelStatus::Cancelling);
    assert_eq!(env.pending().await.len(), 1);

    let s = env.start_one("w1", &d).await;
    assert_eq!(s.status(), StartStatus::Skip);
    assert!(
        env.pending().await.is_empty(),
        "start acks the entry it skips"
    );
    assert_eq!(env.state(&id).await, "cancelled");
    assert_eq!(env.stream_len().await, 0);
    env.assert_stats(&[("queued", 0), ("running", 0), ("cancelled", 1)])
        .await;
}

#[tokio::test]
async fn start_of_a_batch_skips_only_the_entry_another_consumer_holds() {
    let mut env = Env::new().await;
    for _ in 0..3 {
        env.enqueue(3).await;
    }
    let batch = env.deliver("w1", 3).await;
    env.xclaim("w2", &batch[1].entry).await;
    let s = env.start("w1", &batch).await;
    let statuses: Vec<StartStatus> = s.iter().map(Started::status).collect();
    assert_eq!(
        statuses,
        vec![StartStatus::Run, StartStatus::Skip, StartStatus::Run]
    );
    let t = env.lookup(&batch[1].id).await.expect("readable");
    assert_eq!(
        (t.state.as_str(), t.worker.as_deref()),
        ("running", Some("w2"))
    );
    assert_eq!(
        env.stream_len().await,
        3,
        "a skipped entry held elsewhere is not dropped"
    );
    env.assert_stats(&[("queued", 0), ("running", 3)]).await;
}

#[tokio::test]
async fn redelivery_of_a_cancel_requested_task_ends_it_cancelled() {
    let (mut env, d) = Env::with_running("a", 3).await;
    let c = env.cancel(&d.id).await;
    assert_eq!(c.status, CancelStatus::Cancelling);
    // `a` dies before it acts on the notice; `b` reclaims the entry.
    env.xclaim("b", &d.entry).await;

    let s = env.start_one("b", &d).await;
    assert_eq!(s.status(), StartStatus::Skip, "{s:?}");
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "cancelled");
    assert!(env.pending().await.is_empty());
    assert_eq!(env.stream_len().await, 0);
    env.assert_event(&d.id, "cancelled").await;
    env.assert_stats(&[("running", 0), ("cancelled", 1)]).await;
}

// ---- attempts used up by lost workers ----

#[tokio::test]
async fn redelivery_beyond_max_attempts_is_dead_lettered_at_start() {
    let mut env = Env::new().await;
    // Its only attempt started on `a`, which then died holding the entry.
    let d = env.running("a", 1).await;
    env.xclaim("b", &d.entry).await;

    let s = env.start_one("b", &d).await;
    let Started::Dead { reason, .. } = &s else {
        panic!("dead-lettered: {s:?}");
    };
    assert!(reason.contains("max_attempts"), "{reason}");

    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty(), "the entry is acked");
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "dead");
    assert_eq!(&t["error"], reason);
    assert!(!t.contains_key("entry"));
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["id"], d.id);
    assert_eq!(dead[0].1["attempts"], "1");
    assert_eq!(t["dead_entry"], dead[0].0);
    env.assert_event(&d.id, "dead").await;
    env.assert_stats(&[("running", 0), ("dead", 1), ("reclaimed", 1)])
        .await;
}

#[tokio::test]
async fn redelivery_within_max_attempts_runs_again_under_the_new_consumer() {
    let (mut env, d) = Env::with_running("a", 3).await;
    env.xclaim("b", &d.entry).await;

    let s = env.start_one("b", &d).await;
    assert_eq!(runnable(&s).attempts, 2);
    assert!(env.task(&d.id).await.is_empty(), "a run writes nothing");
    let t = env.lookup(&d.id).await.expect("readable");
    assert_eq!(t.worker.as_deref(), Some("b"));
    assert_eq!(t.attempts, 2, "the delivery count counts the attempts");
    env.assert_stats(&[("running", 1), ("reclaimed", 1)]).await;
}

#[tokio::test]
async fn start_runs_a_record_it_cannot_read_with_the_reason_its_attempt_fails_for() {
    let mut env = Env::new().await;
    let bad_payload = env.enqueue_reference(3).await;
    let bad_kind = env.enqueue_reference(3).await;
    let batch = env.deliver("w1", 2).await;
    let key = env.keys.task(QUEUE, &bad_payload);
    let () = env.redis("HSET", (key, "payload", "{not json")).await;
    let key = env.keys.task(QUEUE, &bad_kind);
    let () = env.redis("HSET", (key, "kind", "bogus")).await;

    // Not a reply error: the rest of the batch starts, and the worker fails these for good.
    let s = env.start("w1", &batch).await;
    assert_eq!(s.len(), 2);
    assert_eq!(
        runnable(&s[0]).work,
        Err("task record holds no valid payload".to_owned())
    );
    assert_eq!(
        runnable(&s[1]).work,
        Err(r#"task record has unknown kind Some("bogus")"#.to_owned())
    );
    env.assert_stats(&[("queued", 0), ("running", 2)]).await;
}

#[tokio::test]
async fn a_run_carries_its_tenant_from_the_hash_or_the_entry() {
    let mut env = Env::new().await;
    // Born delayed, then promoted: the hash holds the record.
    let (_, held) = env
        .enqueue_spec(&Spec {
            due_ms: Some(1),
            tenant: Some("tn-a"),
            ..Spec::default()
        })
        .await;
    assert_eq!(env.promote(1, &held).await, 1);
    let d = env.deliver_one("w1").await;
    assert_eq!(d.id, held);
    let s = env.start_one("w1", &d).await;
    assert!(runnable(&s).record.is_none(), "run from the hash");
    assert_eq!(runnable(&s).tenant.as_deref(), Some("tn-a"));
    // Born in its stream: the entry holds it, tenant included.
    let (_, fresh) = env
        .enqueue_spec(&Spec {
            tenant: Some("tn-b"),
            ..Spec::default()
        })
        .await;
    // A tenant's task waits in its lane ([`switchyard_shared::lane`]).
    let lane = lane::lane_of(lane::Priority::Normal, Some("tn-b"));
    let source = lane::source(QUEUE, lane.as_deref());
    let got = env.deliver_from(&source, "w1", 1).await;
    assert_eq!(got.len(), 1, "one entry delivered from the lane {source}");
    let d = got.into_iter().next().expect("one entry");
    assert_eq!(d.id, fresh);
    // A fresh entry runs at once, with no start script: its run is decoded from the entry.
    assert_eq!(env.run_of(&d).tenant.as_deref(), Some("tn-b"));
}
