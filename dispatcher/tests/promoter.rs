//! One promoter tick against a real Redis: of the tasks parked in a queue's delayed set, exactly
//! those due at the tick's time move to the stream; the rest stay parked.

use std::time::Duration;

use redis::AsyncCommands;
use switchyard_dispatcher::promoter::Promoter;
use switchyard_shared::config::RedisConfig;
use switchyard_shared::keys::Keys;
use switchyard_shared::scripts::{self, EnqueueStatus, NewRecord};
use switchyard_shared::store;
use switchyard_tests::{connection, new_tool_record, shared_redis, unique_prefix};

const QUEUE: &str = "tool";

#[tokio::test]
async fn a_tick_promotes_only_the_tasks_that_are_due() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let mut con = connection(&url).await;
    store::ensure_groups(&mut con, &keys, &[QUEUE.to_owned()])
        .await
        .expect("groups");
    let now_ms = 1_000_000_u64;
    let due_at = [now_ms - 10, now_ms, now_ms + 10];
    let recs: Vec<NewRecord> = due_at
        .iter()
        .map(|&due| NewRecord {
            due_ms: Some(due),
            ..new_tool_record(QUEUE, r#"{"tool":"echo","args":{}}"#, 3, "30000")
        })
        .collect();
    let ids: Vec<String> = recs.iter().map(|r| r.task.id.clone()).collect();
    for r in scripts::enqueue_many(&mut con, &keys, &recs, 0)
        .await
        .expect("enqueue")
    {
        assert_eq!(r.expect("enqueued").status, EnqueueStatus::Delayed);
    }

    let vars = vec![
        ("REDIS_URL".to_owned(), url.clone()),
        ("QUEUE_PREFIX".to_owned(), prefix.clone()),
    ];
    let redis = RedisConfig::from_vars(&vars).expect("redis config");
    let pool = store::create_pool(&redis).expect("pool");
    let promoter = Promoter::new(
        pool,
        keys.clone(),
        vec![QUEUE.to_owned()],
        Duration::from_secs(1),
    );
    assert_eq!(promoter.tick(now_ms).await.expect("tick"), 2);

    let parked: Vec<String> = con
        .zrange(keys.delayed(QUEUE), 0, -1)
        .await
        .expect("ZRANGE");
    assert_eq!(
        parked,
        vec![ids[2].clone()],
        "the task due later stays parked"
    );
    let len: u64 = con.xlen(keys.stream(QUEUE)).await.expect("XLEN");
    assert_eq!(len, 2, "the two due tasks are in the stream");
    assert_eq!(
        promoter.tick(now_ms).await.expect("second tick"),
        0,
        "nothing moves twice"
    );
}
