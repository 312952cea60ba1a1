//! Chaos (issue 3, SPEC §5): thousands of tasks (a quarter of them 300 ms sleeps, so kills
//! interrupt running work) while a worker is SIGKILLed and replaced every
//! second; every accepted task still succeeds, nothing stays pending, and dead consumers leave
//! the group.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamPendingReply;
use serde_json::json;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_tests::{
    Dispatcher, RedisServer, connection, group_consumers, poll_until, spawn_dispatcher,
    spawn_worker, unique_prefix,
};

const QUEUE: &str = "tool";
/// Environment variable overriding how many tasks the chaos test enqueues.
const TASKS_ENV: &str = "SWITCHYARD_CHAOS_TASKS";
const DEFAULT_TASKS: usize = 2_000;
const WORKERS: usize = 4;
const POSTS_IN_FLIGHT: usize = 16;
/// Enqueue pace: echo tasks finish at once, so an unpaced burst would be over before the chaos
/// loop had killed anyone; at this rate the default run spans about ten kills.
const POSTS_PER_SECOND: u32 = 200;
const CHAOS_PERIOD: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(180);

/// Every this-many-th task sleeps briefly, so a kill finds work in flight to interrupt.
const SLOW_EVERY: usize = 4;
const SLOW_MS: u64 = 300;

async fn post_echo(d: &Dispatcher, n: usize) -> String {
    let body = if n.is_multiple_of(SLOW_EVERY) {
        json!({"kind": "tool", "payload": {"tool": "sleep", "args": {"ms": SLOW_MS}}})
    } else {
        json!({"kind": "tool", "payload": {"tool": "echo", "args": {"n": n}}})
    };
    let (status, v) = d.request("POST", "/api/tasks", Some(body)).await;
    assert_eq!(status, 202, "enqueue answered {status}: {v}");
    v["id"].as_str().expect("task id").to_owned()
}

async fn succeeded_count(d: &Dispatcher) -> i64 {
    let (status, v) = d.request("GET", "/api/queues", None).await;
    assert_eq!(status, 200, "GET /api/queues answered {status}: {v}");
    v["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == QUEUE))
        .and_then(|q| q["counts"]["succeeded"].as_i64())
        .unwrap_or(0)
}

async fn consumers(con: &mut MultiplexedConnection, keys: &Keys) -> Vec<String> {
    let all = group_consumers(con, &keys.stream(QUEUE)).await;
    all.into_iter().map(|c| c.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_and_restart_every_second_loses_nothing() {
    let n: usize = std::env::var(TASKS_ENV)
        .ok()
        .map(|v| v.parse().expect("SWITCHYARD_CHAOS_TASKS is a number"))
        .unwrap_or(DEFAULT_TASKS);
    let redis = RedisServer::start();
    let url = redis.url().to_owned();
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let mut con = connection(&url).await;
    let d = Arc::new(spawn_dispatcher(&url, &prefix, &[]).await);
    let mut slots = Vec::new();
    for i in 1..=WORKERS {
        slots.push(spawn_worker(&url, &prefix, &format!("w{i}"), &[]).await);
    }

    let began = Instant::now();
    let mut poster = Some(tokio::spawn({
        let d = d.clone();
        async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let d = d.clone();
                    let due = tokio::time::Instant::from_std(began)
                        + Duration::from_secs(1) * i as u32 / POSTS_PER_SECOND;
                    async move {
                        tokio::time::sleep_until(due).await;
                        post_echo(&d, i).await
                    }
                })
                .buffer_unordered(POSTS_IN_FLIGHT)
                .collect::<Vec<String>>()
                .await
        }
    }));
    let mut ids: Vec<String> = Vec::new();
    let mut kills = 0usize;
    let mut every = tokio::time::interval(CHAOS_PERIOD);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    // Kill and replace one worker per period until every task has succeeded.
    loop {
        every.tick().await;
        if poster.as_ref().is_some_and(|p| p.is_finished())
            && let Some(p) = poster.take()
        {
            ids = p.await.expect("the posting task panicked");
            println!(
                "{} tasks accepted in {} ms",
                ids.len(),
                began.elapsed().as_millis()
            );
        }
        let done = succeeded_count(&d).await;
        if poster.is_none() && done == n as i64 {
            break;
        }
        assert!(
            began.elapsed() < DEADLINE,
            "only {done} of {n} tasks succeeded after {DEADLINE:?} and {kills} kills"
        );
        let slot = kills % WORKERS;
        let id = format!("w{}-r{}", slot + 1, kills / WORKERS + 2);
        slots[slot].proc.sigkill();
        slots[slot] = spawn_worker(&url, &prefix, &id, &[]).await;
        kills += 1;
    }
    let took = began.elapsed();

    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HMGET")
            .arg(keys.task(QUEUE, id))
            .arg("state")
            .arg("attempts");
    }
    let recs: Vec<(Option<String>, Option<u32>)> =
        pipe.query_async(&mut con).await.expect("HMGET records");
    let not_succeeded: Vec<(&String, &Option<String>)> = ids
        .iter()
        .zip(&recs)
        .filter(|(_, (state, _))| state.as_deref() != Some("succeeded"))
        .map(|(id, (state, _))| (id, state))
        .collect();
    assert!(not_succeeded.is_empty(), "not succeeded: {not_succeeded:?}");
    let pending: StreamPendingReply = redis::cmd("XPENDING")
        .arg(keys.stream(QUEUE))
        .arg(GROUP)
        .query_async(&mut con)
        .await
        .expect("XPENDING");
    assert_eq!(pending.count(), 0, "entries left pending");
    let len: u64 = redis::cmd("XLEN")
        .arg(keys.stream(QUEUE))
        .query_async(&mut con)
        .await
        .expect("XLEN");
    assert_eq!(len, 0, "entries left in the stream");

    // The survivors' reclaimers remove the consumers of killed workers once they hold nothing.
    poll_until(
        "every group consumer to be a live worker",
        Duration::from_secs(60),
        || {
            let mut con = con.clone();
            let keys = &keys;
            async move {
                let names = consumers(&mut con, keys).await;
                let mut pipe = redis::pipe();
                for name in &names {
                    pipe.cmd("EXISTS").arg(keys.worker(name));
                }
                let alive: Vec<bool> = if names.is_empty() {
                    Vec::new()
                } else {
                    pipe.query_async(&mut con).await.expect("EXISTS")
                };
                alive.iter().all(|a| *a).then_some(())
            }
        },
    )
    .await;

    let attempts: Vec<u32> = recs.iter().map(|(_, a)| a.unwrap_or(0)).collect();
    let stats: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(keys.stats(QUEUE))
        .query_async(&mut con)
        .await
        .expect("HGETALL stats");
    let stat = |k: &str| stats.get(k).copied().unwrap_or(0);
    println!(
        "chaos: {n} tasks succeeded in {} ms with {kills} kills; {} ran more than once, \
         max attempts {}; stats reclaimed = {}, fenced = {}",
        took.as_millis(),
        attempts.iter().filter(|a| **a > 1).count(),
        attempts.iter().max().copied().unwrap_or(0),
        stat("reclaimed"),
        stat("fenced"),
    );
}
