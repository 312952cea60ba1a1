//! `requeue.lua`: the holder of a running task hands it back under a fresh entry, and the
//! attempt is not counted.

use switchyard_shared::scripts::RequeueStatus;

use crate::env::{Env, runnable};

#[tokio::test]
async fn requeue_hands_a_running_task_back_without_counting_the_attempt() {
    let (mut env, d) = Env::with_running("w1", 3).await;

    assert_eq!(
        env.requeue("other", &d).await,
        RequeueStatus::Fenced,
        "only the holder hands it back"
    );
    assert_eq!(env.state(&d.id).await, "running");

    assert_eq!(env.requeue("w1", &d).await, RequeueStatus::Queued);
    let t = env.task(&d.id).await;
    assert_eq!(t["state"], "queued");
    assert_eq!(t["attempts"], "0");
    assert_eq!(
        t["payload"],
        crate::env::PAYLOAD,
        "the entry's record moved into the hash"
    );
    let entries = env.entries().await;
    assert_eq!(
        entries.len(),
        1,
        "the old entry is gone, a new one is there"
    );
    assert_ne!(entries[0].0, d.entry);
    assert_eq!(entries[0].1["id"], d.id);
    assert_eq!(t["entry"], entries[0].0);
    assert!(env.pending().await.is_empty());
    env.assert_stats(&[("running", 0), ("queued", 1), ("handed_back", 1)])
        .await;

    // Another worker picks the fresh entry up as a first attempt.
    let again = env.deliver_one("w2").await;
    let s = env.start_one("w2", &again).await;
    assert_eq!(runnable(&s).attempts, 1);
}
