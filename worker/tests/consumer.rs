//! Consumer ticks against a real Redis: one tick reads as many fresh entries as there are free
//! permits (at most `WORKER_BATCH_SIZE`) and starts each under this worker; with no permit free
//! it reads one and, if shutdown comes first, leaves it pending here; an entry without a task id
//! is discarded; a vanished group is re-created.

mod common;

use std::time::Duration;

use common::{QUEUE, Runs, context, enqueue, pending, record};
use redis::streams::StreamInfoGroupsReply;
use switchyard_shared::keys::GROUP;
use switchyard_shared::task::TaskState;
use switchyard_tests::{connection, shared_redis, unique_prefix};
use switchyard_worker::consumer::Consumer;
use tokio_util::sync::CancellationToken;

const ME: &str = "worker-me";
/// Short blocking reads: a tick that finds nothing returns soon.
const SETTINGS: &[(&str, &str)] = &[("WORKER_BLOCK_MS", "100")];

/// One tick, bounded: a tick that waits for capacity it will never get fails the test.
async fn tick(consumer: &mut Consumer, shutdown: &CancellationToken) -> usize {
    tokio::time::timeout(Duration::from_secs(10), consumer.tick(shutdown))
        .await
        .expect("the tick returned within 10 s")
        .expect("tick")
}

#[tokio::test]
async fn a_tick_starts_as_many_entries_as_permits_and_batch_size_allow() {
    // (free permits, WORKER_BATCH_SIZE, entries queued, entries started)
    for (permits, batch, queued, started) in [(2, "64", 5, 2), (8, "3", 5, 3), (8, "64", 5, 5)] {
        let url = shared_redis().url().to_owned();
        let prefix = unique_prefix();
        let ctx = context(
            &url,
            &prefix,
            ME,
            &[SETTINGS, &[("WORKER_BATCH_SIZE", batch)]].concat(),
        );
        let keys = &ctx.keys;
        let mut con = connection(&url).await;
        let ids = enqueue(&mut con, keys, queued).await;
        let runs = Runs::new(&ctx, permits);
        let case = format!("{permits} permits, batch {batch}");

        let n = tick(
            &mut Consumer::new(ctx.clone(), runs.runner.clone()),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(n, started, "{case}");
        runs.settle().await;
        // Entries are read in order: the first `started` ran here, the rest were never read.
        for (i, id) in ids.iter().enumerate() {
            let t = record(&mut con, keys, id).await;
            if i < started {
                assert_eq!(t.state, TaskState::Succeeded, "{case}: {t:?}");
                assert_eq!((t.attempts, t.worker.as_deref()), (1, Some(ME)), "{t:?}");
            } else {
                assert_eq!(
                    (t.state, t.attempts),
                    (TaskState::Queued, 0),
                    "{case}: {t:?}"
                );
            }
        }
        assert_eq!(pending(&mut con, keys).await, vec![], "{case}");
    }
}

#[tokio::test]
async fn a_tick_without_a_free_permit_reads_one_entry_and_keeps_it_pending_at_shutdown() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, SETTINGS);
    let keys = &ctx.keys;
    let mut con = connection(&url).await;
    let ids = enqueue(&mut con, keys, 3).await;
    let runs = Runs::new(&ctx, 1);
    let _busy = runs
        .runner
        .permits()
        .clone()
        .try_acquire_owned()
        .expect("the only permit");
    let shutdown = CancellationToken::new();
    shutdown.cancel();

    let n = tick(
        &mut Consumer::new(ctx.clone(), runs.runner.clone()),
        &shutdown,
    )
    .await;
    assert_eq!(n, 0);
    let held = pending(&mut con, keys).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        held[0].1, ME,
        "left pending under this consumer for the hand-back"
    );
    // Delivered is running (its entry pending here); the rest wait. Nothing was written for
    // any of them: no attempt ran.
    for id in &ids {
        let t = record(&mut con, keys, id).await;
        let hash: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys.task(common::QUEUE, id))
            .query_async(&mut con)
            .await
            .expect("HGETALL");
        assert!(hash.is_empty(), "nothing written: {hash:?}");
        let expected = if held[0].0 == switchyard_shared::task::entry_of(id).expect("entry id") {
            TaskState::Running
        } else {
            TaskState::Queued
        };
        assert_eq!(t.state, expected, "{t:?}");
    }
}

#[tokio::test]
async fn a_tick_discards_an_entry_without_a_task_id_and_starts_the_rest() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, SETTINGS);
    let keys = &ctx.keys;
    let mut con = connection(&url).await;
    let stream = keys.stream(QUEUE);
    let first = enqueue(&mut con, keys, 1).await;
    let stray: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("not-an-id")
        .arg("x")
        .query_async(&mut con)
        .await
        .expect("XADD");
    let last = enqueue(&mut con, keys, 1).await;
    let runs = Runs::new(&ctx, 8);

    let n = tick(
        &mut Consumer::new(ctx.clone(), runs.runner.clone()),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(n, 2);
    runs.settle().await;
    for id in first.iter().chain(&last) {
        let t = record(&mut con, keys, id).await;
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    }
    let left: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg(&stray)
        .arg(&stray)
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    assert_eq!(left, vec![], "the stray entry was deleted");
    assert_eq!(pending(&mut con, keys).await, vec![]);
}

#[tokio::test]
async fn a_tick_after_the_stream_vanished_recreates_the_group_and_the_next_reads() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, SETTINGS);
    let keys = &ctx.keys;
    let mut con = connection(&url).await;
    enqueue(&mut con, keys, 1).await;
    let _: i64 = redis::cmd("DEL")
        .arg(keys.stream(QUEUE))
        .query_async(&mut con)
        .await
        .expect("DEL");
    let runs = Runs::new(&ctx, 8);
    let mut consumer = Consumer::new(ctx.clone(), runs.runner.clone());

    let n = tick(&mut consumer, &CancellationToken::new()).await;
    assert_eq!(n, 0);
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys.stream(QUEUE))
        .query_async(&mut con)
        .await
        .expect("XINFO GROUPS: the stream exists again");
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec![GROUP]);
    let ids = enqueue(&mut con, keys, 1).await;
    let n = tick(&mut consumer, &CancellationToken::new()).await;
    assert_eq!(n, 1, "the next tick reads from the new group");
    runs.settle().await;
    let t = record(&mut con, keys, &ids[0]).await;
    assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
}
