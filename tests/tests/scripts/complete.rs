//! `complete.lua`: results recorded under fencing, batch by batch, entry by entry.

use switchyard_shared::scripts::{self, CompleteStatus, Completion, FailMode, FailStatus};

use crate::env::{Env, LATER, runnable};

#[tokio::test]
async fn completion_acks_and_deletes_the_entry_and_records_the_result() {
    let (mut env, d) = Env::with_running("w1", 3).await;

    let result = r#"{"output":{"x":1}}"#;
    assert_eq!(
        env.complete("w1", &d, result).await,
        CompleteStatus::Succeeded
    );

    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["result"], result);
    assert_eq!(t["finished_at"], LATER);
    // One HSET wrote the whole finished record: the entry's fields and the attempt's.
    assert_eq!(t["id"], d.id);
    assert_eq!(t["payload"], crate::env::PAYLOAD);
    assert_eq!(t["created_at"].len(), LATER.len());
    assert_eq!(t["attempts"], "1");
    assert_eq!(t["worker"], "w1");
    assert_eq!(t["started_at"], crate::env::NOW);
    assert!(
        !t.contains_key("entry"),
        "the finished record names no entry"
    );
    env.assert_finished(&d.id, "succeeded").await;
    env.assert_stats(&[("running", 0), ("succeeded", 1)]).await;

    // A repeated completion (at-least-once) changes nothing.
    assert_eq!(
        env.complete("w1", &d, r#"{"output":"again"}"#).await,
        CompleteStatus::Fenced
    );
    assert_eq!(env.task(&d.id).await["result"], result);
    env.assert_stats(&[("running", 0), ("succeeded", 1)]).await;
}

#[tokio::test]
async fn batches_are_decided_entry_by_entry() {
    let mut env = Env::new().await;
    let ids = [
        env.enqueue(3).await,
        env.enqueue(3).await,
        env.enqueue(3).await,
    ];
    let batch = env.deliver("w1", 3).await;
    let s = env.start("w1", &batch).await;
    for (i, started) in s.iter().enumerate() {
        let run = runnable(started);
        assert_eq!(
            (&run.delivered.id, &run.delivered.entry),
            (&ids[i], &batch[i].entry)
        );
    }
    env.assert_stats(&[("queued", 0), ("running", 3)]).await;

    // The second entry was taken by another worker: only it is fenced.
    env.xclaim("w2", &batch[1].entry).await;
    let completions: Vec<Completion> = batch
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let run = env.run_of(d);
            Completion {
                entry: d.entry.clone(),
                id: d.id.clone(),
                result: format!(r#"{{"n":{i}}}"#),
                attempts: run.attempts,
                started_at: run.started_at,
                record: run.record,
            }
        })
        .collect();
    let (con, call) = env.batch_call("w1", LATER);
    let done = scripts::complete(con, &call, &completions)
        .await
        .expect("complete");
    let statuses: Vec<(String, CompleteStatus)> =
        done.into_iter().map(|c| (c.id, c.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (ids[0].clone(), CompleteStatus::Succeeded),
            (ids[1].clone(), CompleteStatus::Fenced),
            (ids[2].clone(), CompleteStatus::Succeeded),
        ]
    );
    assert_eq!(env.task(&ids[0]).await["result"], r#"{"n":0}"#);
    assert_eq!(env.state(&ids[1]).await, "running");
    assert_eq!(env.task(&ids[2]).await["result"], r#"{"n":2}"#);
    assert_eq!(env.stream_len().await, 1);
    env.assert_stats(&[("running", 1), ("succeeded", 2), ("fenced", 1)])
        .await;
}

#[tokio::test]
async fn completion_by_a_consumer_that_lost_the_entry_is_fenced_and_writes_nothing() {
    let (mut env, d) = Env::with_running("a", 3).await;
    env.xclaim("b", &d.entry).await;

    assert_eq!(
        env.complete("a", &d, r#"{"late":true}"#).await,
        CompleteStatus::Fenced
    );
    assert!(env.task(&d.id).await.is_empty(), "nothing written");
    let t = env.lookup(&d.id).await.expect("readable");
    assert_eq!(t.state.as_str(), "running");
    assert_eq!(t.worker.as_deref(), Some("b"));
    assert_eq!(t.result, None);
    assert_eq!(env.stream_len().await, 1);
    let pending = env.pending().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, "b", "the entry stays with its new owner");
    env.assert_no_event(&d.id).await;
    env.assert_stats(&[("fenced", 1), ("running", 1), ("succeeded", 0)])
        .await;

    assert_eq!(
        env.fail("a", &d, "late error", FailMode::Fail).await,
        FailStatus::Fenced,
        "a late failure is fenced too"
    );
    assert_eq!(env.state(&d.id).await, "running");
    env.assert_stats(&[("fenced", 2), ("running", 1), ("failed", 0)])
        .await;

    assert_eq!(
        env.complete("b", &d, r#"{"ok":true}"#).await,
        CompleteStatus::Succeeded
    );
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["result"], r#"{"ok":true}"#);
    assert!(env.pending().await.is_empty());
    env.assert_stats(&[("fenced", 2), ("running", 0), ("succeeded", 1)])
        .await;
}

/// A completion redone after its connection broke (the first call's reply or its `WAIT` lost)
/// is answered fenced; `recorded_as_own` tells that apart from a task another worker took.
#[tokio::test]
async fn a_redone_completion_recognises_its_own_earlier_commit() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    let run = env.run_of(&d);
    let c = Completion {
        entry: d.entry.clone(),
        id: d.id.clone(),
        result: r#"{"output":1}"#.to_owned(),
        attempts: run.attempts,
        started_at: run.started_at.clone(),
        record: run.record.clone(),
    };
    let (con, call) = env.batch_call("w1", LATER);
    let keys = call.keys.clone();
    let first = scripts::complete(&mut *con, &call, std::slice::from_ref(&c)).await;
    assert_eq!(
        first.expect("complete")[0].status,
        CompleteStatus::Succeeded
    );
    let again = scripts::complete(&mut *con, &call, std::slice::from_ref(&c)).await;
    assert_eq!(again.expect("complete")[0].status, CompleteStatus::Fenced);

    let later_attempt = Completion {
        attempts: c.attempts + 1,
        ..c.clone()
    };
    for (consumer, c, want, what) in [
        ("w1", &c, true, "its own success"),
        ("w2", &c, false, "another worker's"),
        ("w1", &later_attempt, false, "another attempt's"),
    ] {
        let own = scripts::recorded_as_own(&mut *con, &keys, crate::env::QUEUE, consumer, c).await;
        assert_eq!(own.expect("lookup"), want, "{what}");
    }
}

/// A task another worker took (its entry claimed away) is fenced and not recognised as own.
#[tokio::test]
async fn a_completion_fenced_by_another_worker_is_not_taken_for_its_own() {
    let (mut env, d) = Env::with_running("w1", 3).await;
    env.xclaim("w2", &d.entry).await;
    assert_eq!(env.complete("w1", &d, "{}").await, CompleteStatus::Fenced);
    let run = env.run_of(&d);
    let c = Completion {
        entry: d.entry.clone(),
        id: d.id.clone(),
        result: "{}".to_owned(),
        attempts: run.attempts,
        started_at: run.started_at,
        record: run.record,
    };
    let (con, call) = env.batch_call("w1", LATER);
    let keys = call.keys.clone();
    let own = scripts::recorded_as_own(&mut *con, &keys, crate::env::QUEUE, "w1", &c).await;
    assert!(!own.expect("lookup"), "the task is still running elsewhere");
}
