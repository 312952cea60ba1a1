//! `promote.lua`: only the due tasks of a batch leave the delayed set for their stream.

use switchyard_shared::clock;
use switchyard_shared::scripts;

use crate::env::{Env, QUEUE};

#[tokio::test]
async fn promote_moves_only_the_due_tasks_of_a_batch() {
    let mut env = Env::new().await;
    let now = clock::now_ms();
    let ids = vec![
        env.enqueue_delayed(now).await,
        env.enqueue_delayed(now + 60_000).await,
    ];
    let moved = scripts::promote(&mut env.con, &env.keys, QUEUE, now, &ids)
        .await
        .expect("promote");
    assert_eq!(moved, 1);
    let entries = env.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["id"], ids[0]);
    assert_eq!(env.task(&ids[0]).await["entry"], entries[0].0);
    assert_eq!(env.zscore(&ids[0]).await, None);
    assert!(env.zscore(&ids[1]).await.is_some());
    assert!(!env.task(&ids[1]).await.contains_key("entry"));
    env.assert_stats(&[("queued", 2), ("retrying", 0)]).await;
}
