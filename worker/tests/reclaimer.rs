//! Reclaimer ticks against a real Redis: a dead worker's pending entries (no registry record,
//! idle past the record's lifetime) are claimed and run here, as far as there are free permits,
//! and the dead consumer leaves the group once it holds nothing; a live worker's entries stay
//! with it until they sit idle past `LEASE_TIMEOUT_MS`, when the lease backstop takes them.

mod common;

use std::time::Duration;

use common::{QUEUE, Runs, context, owner, pending, record, running};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamPendingCountReply;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::task::TaskState;
use switchyard_tests::{connection, group_consumers, poll_until, shared_redis, unique_prefix};
use switchyard_worker::canceller::Subscription;
use switchyard_worker::heartbeat::Heartbeat;
use switchyard_worker::reclaimer::{ReclaimReport, Reclaimer};

const ME: &str = "worker-me";
const DEAD: &str = "worker-dead";
const LIVE: &str = "worker-live";

/// A 1 ms heartbeat: a consumer without a record counts as dead after 3 ms idle, and claims
/// need entries idle 1 ms. The lease (60 s) is out of reach of every test but the backstop's,
/// which ages its entries explicitly.
const FAST_DEATH: &[(&str, &str)] = &[
    ("HEARTBEAT_INTERVAL_MS", "1"),
    ("LEASE_TIMEOUT_MS", "60000"),
];
/// The live worker's own settings: its registry record lives three minutes.
const SLOW_BEAT: &[(&str, &str)] = &[
    ("HEARTBEAT_INTERVAL_MS", "60000"),
    ("LEASE_TIMEOUT_MS", "180000"),
];

/// The group's consumers with their pending counts and idle times (ms).
async fn consumers(con: &mut MultiplexedConnection, keys: &Keys) -> Vec<(String, usize, u64)> {
    let all = group_consumers(con, &keys.stream(QUEUE)).await;
    all.into_iter()
        .map(|c| (c.name, c.pending, c.idle as u64))
        .collect()
}

/// Waits (polling Redis, deadline-bound) until `consumer` and each of its pending entries have
/// been idle at least `ms`: what the reclaimer requires of a dead worker.
async fn idle_for(con: &MultiplexedConnection, keys: &Keys, consumer: &str, ms: u64) {
    let what = format!("{consumer} and its entries idle for {ms} ms");
    poll_until(&what, Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let all = consumers(&mut con, keys).await;
            let (_, held, idle) = all.into_iter().find(|c| c.0 == consumer)?;
            let aged: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(keys.stream(QUEUE))
                .arg(GROUP)
                .arg("IDLE")
                .arg(ms)
                .arg("-")
                .arg("+")
                .arg(1_000)
                .arg(consumer)
                .query_async(&mut con)
                .await
                .expect("XPENDING IDLE");
            (idle >= ms && aged.ids.len() == held).then_some(())
        }
    })
    .await;
}

/// Writes `id`'s registry record as its heartbeat would.
async fn register(url: &str, prefix: &str, id: &str) {
    Heartbeat::new(context(url, prefix, id, SLOW_BEAT), Subscription::default())
        .tick()
        .await
        .expect("live worker's beat");
}

#[tokio::test]
async fn a_tick_claims_a_dead_workers_entries_and_leaves_a_live_workers_alone() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, FAST_DEATH);
    let keys = &ctx.keys;
    let mut con = connection(&url).await;
    register(&url, &prefix, LIVE).await;
    let dead = running(&mut con, keys, DEAD, 2).await;
    let live = running(&mut con, keys, LIVE, 2).await;
    let after = ctx.cfg.registry_ttl().as_millis() as u64;
    idle_for(&con, keys, DEAD, after).await;
    idle_for(&con, keys, LIVE, after).await;
    let runs = Runs::new(&ctx, 8);
    let mut reclaimer = Reclaimer::new(ctx.clone(), runs.runner.clone());

    let report = reclaimer.tick().await.expect("tick");
    assert_eq!(
        report,
        ReclaimReport {
            from_dead: 2,
            from_expired_leases: 0,
            consumers_removed: 0,
        }
    );
    runs.settle().await;
    for d in &dead {
        let t = record(&mut con, keys, &d.id).await;
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert_eq!((t.attempts, t.worker.as_deref()), (2, Some(ME)), "{t:?}");
    }
    for d in &live {
        assert_eq!(owner(&mut con, keys, &d.entry).await.as_deref(), Some(LIVE));
        let t = record(&mut con, keys, &d.id).await;
        assert_eq!(t.state, TaskState::Running, "{t:?}");
        assert_eq!((t.attempts, t.worker.as_deref()), (1, Some(LIVE)), "{t:?}");
    }

    // The dead consumer holds nothing now: the next tick removes it from the group.
    let report = reclaimer.tick().await.expect("second tick");
    assert_eq!(
        report,
        ReclaimReport {
            from_dead: 0,
            from_expired_leases: 0,
            consumers_removed: 1,
        }
    );
    let names: Vec<String> = consumers(&mut con, keys)
        .await
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(!names.iter().any(|n| n == DEAD), "{names:?}");
    assert!(names.iter().any(|n| n == LIVE), "{names:?}");
}

#[tokio::test]
async fn a_tick_claims_no_more_of_a_dead_workers_entries_than_it_has_free_permits() {
    // (free permits, entries claimed)
    for (permits, claimed) in [(0, 0), (1, 1), (2, 2), (8, 3)] {
        let url = shared_redis().url().to_owned();
        let prefix = unique_prefix();
        let ctx = context(&url, &prefix, ME, FAST_DEATH);
        let keys = &ctx.keys;
        let mut con = connection(&url).await;
        running(&mut con, keys, DEAD, 3).await;
        idle_for(&con, keys, DEAD, ctx.cfg.registry_ttl().as_millis() as u64).await;
        let runs = Runs::new(&ctx, permits);

        let report = Reclaimer::new(ctx.clone(), runs.runner.clone())
            .tick()
            .await
            .expect("tick");
        assert_eq!(report.from_dead, claimed, "{permits} permits: {report:?}");
        assert_eq!(report.consumers_removed, 0, "{permits} permits");
        runs.settle().await;
        let left = pending(&mut con, keys).await;
        assert_eq!(left.len(), 3 - claimed, "{permits} permits: {left:?}");
        assert!(left.iter().all(|(_, c)| c == DEAD), "{left:?}");
    }
}

#[tokio::test]
async fn a_tick_takes_a_live_workers_entries_only_once_their_lease_expired() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, &[("LEASE_TIMEOUT_MS", "60000")]);
    let keys = &ctx.keys;
    let mut con = connection(&url).await;
    register(&url, &prefix, LIVE).await;
    let live = running(&mut con, keys, LIVE, 3).await;
    let (expired, fresh) = live.split_at(2);
    // Ages two entries past the lease: their owner has not refreshed them for two minutes.
    for d in expired {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(keys.stream(QUEUE))
            .arg(GROUP)
            .arg(LIVE)
            .arg(0)
            .arg(&d.entry)
            .arg("IDLE")
            .arg(120_000)
            .arg("JUSTID")
            .query_async(&mut con)
            .await
            .expect("XCLAIM IDLE");
    }
    let runs = Runs::new(&ctx, 8);

    let report = Reclaimer::new(ctx.clone(), runs.runner.clone())
        .tick()
        .await
        .expect("tick");
    assert_eq!(
        report,
        ReclaimReport {
            from_dead: 0,
            from_expired_leases: 2,
            consumers_removed: 0,
        }
    );
    runs.settle().await;
    for d in expired {
        let t = record(&mut con, keys, &d.id).await;
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert_eq!((t.attempts, t.worker.as_deref()), (2, Some(ME)), "{t:?}");
    }
    assert_eq!(
        owner(&mut con, keys, &fresh[0].entry).await.as_deref(),
        Some(LIVE)
    );
    let t = record(&mut con, keys, &fresh[0].id).await;
    assert_eq!((t.state, t.attempts), (TaskState::Running, 1), "{t:?}");
}
