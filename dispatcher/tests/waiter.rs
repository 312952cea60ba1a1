//! Events-tail ticks against a real Redis: a tick wakes the request registered for a task whose
//! terminal event arrived, and not a request waiting for another task.

use std::time::Duration;

use switchyard_dispatcher::recent::Recent;
use switchyard_dispatcher::waiter::{EventTail, Waiter};
use switchyard_shared::config::RedisConfig;
use switchyard_shared::events;
use switchyard_shared::keys::Keys;
use switchyard_shared::task;
use switchyard_tests::{connection, shared_redis, unique_prefix};

const QUEUE: &str = "tool";

#[tokio::test]
async fn a_tick_wakes_only_the_requests_whose_task_finished() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let mut con = connection(&url).await;
    let vars = vec![
        ("REDIS_URL".to_owned(), url.clone()),
        ("QUEUE_PREFIX".to_owned(), prefix.clone()),
    ];
    let redis = RedisConfig::from_vars(&vars).expect("redis config");
    let waiter = Waiter::default();
    let mut tail = EventTail::new(
        waiter.clone(),
        Recent::default(),
        redis,
        &keys,
        &[QUEUE.to_owned()],
    );
    // The first tick places the cursor after the newest event (none yet) and finds nothing.
    assert_eq!(tail.tick().await.expect("first tick"), 0);

    let (done, other) = (task::new_task_id(QUEUE), task::new_task_id(QUEUE));
    let mut done_wait = waiter.register(&done);
    let mut other_wait = waiter.register(&other);
    let _: String = redis::cmd("XADD")
        .arg(keys.events(QUEUE))
        .arg("*")
        .arg(events::ID)
        .arg(&done)
        .arg(events::STATE)
        .arg("succeeded")
        .query_async(&mut con)
        .await
        .expect("XADD");

    assert_eq!(tail.tick().await.expect("second tick"), 1);
    assert!(done_wait.wait(Duration::ZERO).await, "{done} was woken");
    assert!(
        !other_wait.wait(Duration::from_millis(10)).await,
        "{other} was not"
    );
}
