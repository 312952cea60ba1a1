//! A tenant's running set (`running_acquire.lua`, `running_refresh.lua`, `ZREM`): slots up to
//! `max_running`, a task that holds one keeps it, a slot lapses one lease after its last
//! refresh, and a lapsed slot is not taken back by its refresh.

use std::time::Duration;

use switchyard_shared::tenant::running::{self, Acquired};

use crate::env::Env;

const TENANT: &str = "tn-1";

async fn acquire(env: &mut Env, task: &str, lease_ms: u64) -> Acquired {
    let lease = Duration::from_millis(lease_ms);
    running::acquire(&mut env.con, &env.keys, TENANT, 2, task, lease)
        .await
        .expect("acquire")
}

#[tokio::test]
async fn slots_are_granted_up_to_the_limit_kept_by_their_task_and_freed_on_release() {
    let mut env = Env::new().await;
    assert_eq!(
        acquire(&mut env, "t1", 60_000).await,
        Acquired::Granted { held: 1 }
    );
    assert_eq!(
        acquire(&mut env, "t2", 60_000).await,
        Acquired::Granted { held: 2 }
    );
    assert_eq!(
        acquire(&mut env, "t3", 60_000).await,
        Acquired::Full { held: 2 }
    );
    // A task run again (reclaimed) keeps its own slot.
    assert_eq!(
        acquire(&mut env, "t1", 60_000).await,
        Acquired::Granted { held: 2 }
    );
    running::release(&mut env.con, &env.keys, TENANT, "t1")
        .await
        .expect("release");
    assert_eq!(
        acquire(&mut env, "t3", 60_000).await,
        Acquired::Granted { held: 2 }
    );
    let key = env.keys.tenant_running(TENANT);
    let ttl: i64 = env.redis("PTTL", &key).await;
    assert!(
        ttl > 59_000 && ttl <= 60_000,
        "the set lives as long as its newest slot: {ttl}"
    );
}

#[tokio::test]
async fn a_slot_lapses_with_its_lease_unless_refreshed_and_stays_lapsed() {
    let mut env = Env::new().await;
    assert!(matches!(
        acquire(&mut env, "kept", 300).await,
        Acquired::Granted { .. }
    ));
    assert!(matches!(
        acquire(&mut env, "dies", 300).await,
        Acquired::Granted { .. }
    ));
    let lease = Duration::from_millis(60_000);
    let ids = vec!["kept".to_owned()];
    // Refreshed before its lapse: kept for a minute; the other one lapses.
    let kept = running::refresh(&mut env.con, &env.keys, TENANT, &ids, lease)
        .await
        .expect("refresh");
    assert_eq!(kept, 1);
    let key = env.keys.tenant_running(TENANT);
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        // Polls Redis' clock through the script: the lapsed slot frees once its score passes.
        if acquire(&mut env, "next", 60_000).await == (Acquired::Granted { held: 2 }) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the unrefreshed slot never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The lapsed slot's refresh does not take it back.
    let dead = vec!["dies".to_owned()];
    let back = running::refresh(&mut env.con, &env.keys, TENANT, &dead, lease)
        .await
        .expect("refresh");
    assert_eq!(back, 0);
    let members: Vec<String> = env.redis("ZRANGE", (&key, 0, -1)).await;
    assert_eq!(members, vec!["kept".to_owned(), "next".to_owned()]);
}
