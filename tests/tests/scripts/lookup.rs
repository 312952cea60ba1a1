//! `lookup.lua`: one task read in every state wherever the lean layout keeps it (its stream
//! entry, the group's pending list, its hash), with the same fields.

use switchyard_shared::clock;
use switchyard_shared::scripts::{CompleteStatus, FailMode, FailStatus};
use switchyard_shared::task::{self, TaskState};

use crate::env::{Env, LATER, QUEUE};

#[tokio::test]
async fn a_task_reads_alike_from_its_entry_its_pending_entry_and_its_hash() {
    let mut env = Env::new().await;
    let id = env.enqueue(2).await;
    let queued = env.lookup(&id).await.expect("queued: read from its entry");
    assert_eq!((queued.state, queued.attempts), (TaskState::Queued, 0));
    assert_eq!(queued.id, id);
    assert_eq!(queued.queue, QUEUE);
    assert_eq!(queued.max_attempts, 2);
    assert_eq!(queued.worker, None);

    let d = env.deliver_one("w1").await;
    let running = env
        .lookup(&id)
        .await
        .expect("running: its entry is pending");
    assert_eq!((running.state, running.attempts), (TaskState::Running, 1));
    assert_eq!(running.worker.as_deref(), Some("w1"));
    let started = running.started_at.expect("a start time");
    let since = chrono::DateTime::parse_from_rfc3339(&started).expect("RFC 3339");
    let age = clock::now_ms() as i64 - since.timestamp_millis();
    assert!((0..60_000).contains(&age), "started {age} ms ago");
    assert_eq!(
        (running.payload, running.created_at),
        (queued.payload.clone(), queued.created_at.clone()),
        "the same record as while queued"
    );

    let due = clock::now_ms() + 60_000;
    let st = env
        .fail("w1", &d, "boom", FailMode::Retry { due_ms: due })
        .await;
    assert_eq!(st, FailStatus::Retrying);
    let retrying = env.lookup(&id).await.expect("retrying: read from its hash");
    assert_eq!(
        (retrying.state, retrying.attempts),
        (TaskState::Retrying, 1)
    );
    assert_eq!(retrying.run_at_ms, Some(due));
    assert_eq!(retrying.error.as_deref(), Some("boom"));
    assert_eq!(retrying.created_at, queued.created_at);

    // Promoted under a reference entry, then delivered: running again, the second attempt.
    assert_eq!(env.promote(due, &id).await, 1);
    assert_eq!(env.state(&id).await, "queued");
    let again = env.deliver_one("w2").await;
    assert_eq!(again.id, id, "the reference entry names the task");
    assert_ne!(again.entry, d.entry);
    let running = env
        .lookup(&id)
        .await
        .expect("running from a reference entry");
    assert_eq!((running.state, running.attempts), (TaskState::Running, 2));
    assert_eq!(running.worker.as_deref(), Some("w2"));

    let s = env.start_one("w2", &again).await;
    assert_eq!(crate::env::runnable(&s).attempts, 2);
    assert_eq!(
        env.complete("w2", &again, "{}").await,
        CompleteStatus::Succeeded
    );
    let done = env.lookup(&id).await.expect("finished: read from its hash");
    assert_eq!((done.state, done.attempts), (TaskState::Succeeded, 2));
    assert_eq!(done.worker.as_deref(), Some("w2"));
    assert_eq!(done.finished_at.as_deref(), Some(LATER));
    assert_eq!(done.payload, queued.payload);
}

#[tokio::test]
async fn an_unknown_or_malformed_id_reads_as_missing() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;
    let entry = task::entry_of(&id).expect("an entry id");
    let (ms, seq) = entry.split_once('-').expect("ms-seq");
    let next = format!("{QUEUE}-{ms}-{}", seq.parse::<u64>().expect("seq") + 1);
    assert!(env.lookup(&next).await.is_none(), "no entry of that id");
    assert!(env.lookup(&task::new_task_id(QUEUE)).await.is_none());
    assert!(env.lookup(&id).await.is_some());
}
