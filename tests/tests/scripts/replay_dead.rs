//! `replay_dead.lua`: a task whose every attempt failed is dead-lettered by `fail.lua`, and a
//! replay queues it again with a fresh attempt budget.

use switchyard_shared::clock;
use switchyard_shared::scripts::{self, FailMode, FailStatus, ReplayStatus};
use switchyard_shared::task;

use crate::env::{Env, QUEUE, runnable};

/// Runs every attempt of task `id` on `w1`, each failing with a retryable `error N`.
async fn fail_every_attempt(env: &mut Env, id: &str) {
    for attempt in 1..=3u32 {
        let d = env.deliver_one("w1").await;
        assert_eq!(d.id, id);
        let s = env.start_one("w1", &d).await;
        assert_eq!(runnable(&s).attempts, attempt);
        let due = clock::now_ms();
        let st = env
            .fail(
                "w1",
                &d,
                &format!("error {attempt}"),
                FailMode::Retry { due_ms: due },
            )
            .await;
        if attempt < 3 {
            assert_eq!(st, FailStatus::Retrying, "attempt {attempt}");
            assert_eq!(env.promote(due, id).await, 1);
        } else {
            assert_eq!(st, FailStatus::Dead, "attempt {attempt}");
        }
    }
}

#[tokio::test]
async fn task_that_fails_every_attempt_is_dead_lettered_and_can_be_replayed() {
    let mut env = Env::new().await;
    let id = env.enqueue(3).await;
    fail_every_attempt(&mut env, &id).await;

    let t = env.task(&id).await;
    assert_eq!(t["state"], "dead");
    assert_eq!(t["error"], "error 3");
    assert_eq!(t["attempts"], "3");
    assert_eq!(
        env.task_ttl(&id).await,
        -1,
        "a dead letter is kept until replayed"
    );
    assert_eq!(env.zscore(&id).await, None);
    assert_eq!(env.stream_len().await, 0);
    assert!(env.pending().await.is_empty());
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["id"], id);
    assert_eq!(dead[0].1["error"], "error 3");
    assert_eq!(dead[0].1["queue"], QUEUE);
    assert_eq!(dead[0].1["attempts"], "3");
    assert_eq!(t["dead_entry"], dead[0].0);
    env.assert_event(&id, "dead").await;
    env.assert_stats(&[
        ("queued", 0),
        ("running", 0),
        ("retrying", 0),
        ("retries", 2),
        ("dead", 1),
    ])
    .await;

    let r = scripts::replay_dead(&mut env.con, &env.keys, QUEUE, &id)
        .await
        .expect("replay_dead");
    assert_eq!(r.status, ReplayStatus::Queued);
    assert_eq!(r.state, "queued");
    let t = env.task(&id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], "0");
    assert!(!t.contains_key("dead_entry"));
    assert!(!t.contains_key("finished_at"));
    assert!(
        env.dead_letters().await.is_empty(),
        "the dead-letter entry is removed"
    );
    let entries = env.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(t["entry"], entries[0].0);
    env.assert_stats(&[("queued", 1), ("replayed", 1)]).await;

    let again = scripts::replay_dead(&mut env.con, &env.keys, QUEUE, &id)
        .await
        .expect("replay_dead");
    assert_eq!(again.status, ReplayStatus::NotDead);
    let unknown = task::new_task_id(QUEUE);
    let missing = scripts::replay_dead(&mut env.con, &env.keys, QUEUE, &unknown)
        .await
        .expect("replay_dead");
    assert_eq!(missing.status, ReplayStatus::Missing);
    assert_eq!(env.stream_len().await, 1);

    // The replayed task runs with a fresh attempt budget.
    let d = env.deliver_one("w2").await;
    let s = env.start_one("w2", &d).await;
    assert_eq!(runnable(&s).attempts, 1);
}
