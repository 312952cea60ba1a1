//! One heartbeat tick against a real Redis: an entry still pending here has its lease kept, an
//! entry another worker claimed stops its attempt, and an entry this worker's own commit just
//! acked does not (it used to be reported as a lost lease, with a warning, after every beat that
//! raced a completion). The beat's registry record lists the models the worker serves.

mod common;

use std::time::Duration;

use common::{QUEUE, context, fresh_run, owner, running};
use switchyard_shared::clock;
use switchyard_shared::keys::GROUP;
use switchyard_shared::scripts::{self, Completion, Delivered};
use switchyard_tests::{connection, shared_redis, unique_prefix};
use switchyard_worker::canceller::Subscription;
use switchyard_worker::context::{InFlight, StopReason, WorkerContext};
use switchyard_worker::heartbeat::{Beat, Heartbeat};

const ME: &str = "worker-me";
const OTHER: &str = "worker-other";

#[tokio::test]
async fn a_beat_stops_only_attempts_whose_entry_another_worker_took() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, &[]);
    let mut con = connection(&url).await;
    let d = running(&mut con, &ctx.keys, ME, 3).await;
    let (kept, taken, committed) = (&d[0], &d[1], &d[2]);

    // Another worker claims one entry, as its reclaimer would.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(ctx.keys.stream(QUEUE))
        .arg(GROUP)
        .arg(OTHER)
        .arg(0)
        .arg(&taken.entry)
        .arg("JUSTID")
        .query_async(&mut con)
        .await
        .expect("XCLAIM");
    // This worker's own commit of another one lands before the beat.
    let flights: Vec<InFlight> = d
        .iter()
        .map(|x| InFlight::new(QUEUE.to_owned(), x.entry.clone()))
        .collect();
    flights[2].mark_committing();
    let now = clock::now_rfc3339();
    let run = fresh_run(&mut con, &ctx.keys, committed).await;
    let completed = scripts::complete(
        &mut con,
        &ctx.batch_call(QUEUE, &now),
        &[Completion {
            entry: committed.entry.clone(),
            id: committed.id.clone(),
            result: "{}".to_owned(),
            attempts: run.attempts,
            started_at: run.started_at,
            record: run.record,
        }],
    )
    .await
    .expect("complete");
    assert_eq!(completed.len(), 1);
    assert_eq!(owner(&mut con, &ctx.keys, &committed.entry).await, None);
    {
        let mut in_flight = ctx.in_flight.lock().expect("in-flight map");
        for (x, f) in d.iter().zip(&flights) {
            in_flight.insert(x.id.clone(), f.clone());
        }
    }

    Heartbeat::new(ctx.clone(), Subscription::default())
        .tick()
        .await
        .expect("beat");

    assert_eq!(
        flights[0].stop_reason(),
        None,
        "{} still held here",
        kept.id
    );
    assert_eq!(
        flights[1].stop_reason(),
        Some(StopReason::LeaseLost),
        "{} was claimed by {OTHER}",
        taken.id
    );
    assert_eq!(
        flights[2].stop_reason(),
        None,
        "{} was acked by this worker's own commit",
        committed.id
    );
    assert_eq!(
        owner(&mut con, &ctx.keys, &kept.entry).await.as_deref(),
        Some(ME)
    );
    assert_eq!(
        owner(&mut con, &ctx.keys, &taken.entry).await.as_deref(),
        Some(OTHER),
        "the beat does not take the entry back"
    );
}

#[tokio::test]
async fn the_record_lists_the_providers_models_and_llm_models() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(
        &url,
        &prefix,
        ME,
        &[
            ("LLM_PROVIDER", "openai,echo"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("OPENAI_MODEL", "gpt-local"),
            ("LLM_MODEL", "echo-2"),
            ("LLM_MODELS", "gpt-local-mini,echo-2"),
        ],
    );
    Heartbeat::new(ctx.clone(), Subscription::default())
        .tick()
        .await
        .expect("beat");
    let mut con = connection(&url).await;
    let listed = switchyard_shared::registry::list(&mut con, &ctx.keys, clock::now_ms())
        .await
        .expect("listing");
    assert_eq!(listed.len(), 1);
    let record = listed[0].record.as_ref().expect("a readable record");
    assert_eq!(record.models, vec!["gpt-local", "echo-2", "gpt-local-mini"]);
}

/// Flights of `d` registered as running here; the flights.
fn register(ctx: &WorkerContext, d: &[Delivered]) -> Vec<InFlight> {
    let flights: Vec<InFlight> = d
        .iter()
        .map(|x| InFlight::new(QUEUE.to_owned(), x.entry.clone()))
        .collect();
    let mut in_flight = ctx.in_flight.lock().expect("in-flight map");
    for (x, f) in d.iter().zip(&flights) {
        in_flight.insert(x.id.clone(), f.clone());
    }
    flights
}

#[tokio::test]
async fn held_tasks_cost_no_per_task_command_between_lease_refreshes() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix, ME, &[]);
    let mut con = connection(&url).await;
    let d = running(&mut con, &ctx.keys, ME, 100).await;
    let flights = register(&ctx, &d);
    let cancels = Subscription::default();
    cancels.subscribed();
    let mut beat = Heartbeat::new(ctx.clone(), cancels.clone());

    // The first beat refreshes every lease and reads every cancel flag once.
    let first = beat.tick().await.expect("beat 1");
    assert_eq!(first.leases_refreshed, 100, "{first:?}");
    assert_eq!(first.cancels_read, 100, "{first:?}");
    // Within the refresh interval (10 s by default) and under the same subscription, a beat
    // is the registry write alone.
    let second = beat.tick().await.expect("beat 2");
    assert_eq!(second, Beat::default());

    // A task new here has its flag read once: a notice published before it was registered
    // here is caught.
    let late = running(&mut con, &ctx.keys, ME, 1).await;
    let _: () = redis::cmd("HSET")
        .arg(ctx.keys.task(QUEUE, &late[0].id))
        .arg("cancel_requested")
        .arg("1")
        .query_async(&mut con)
        .await
        .expect("flag the task");
    let late_flight = register(&ctx, &late);
    let third = beat.tick().await.expect("beat 3");
    assert_eq!((third.cancels_read, third.cancelled), (1, 1), "{third:?}");
    assert_eq!(late_flight[0].stop_reason(), Some(StopReason::Cancelled));
    assert_eq!(third.leases_refreshed, 0, "{third:?}");

    // A new subscription may have missed notices: every flag is read again, and the leases are
    // checked at once in case the connection trouble cost the registry record.
    let _: () = redis::cmd("HSET")
        .arg(ctx.keys.task(QUEUE, &d[7].id))
        .arg("cancel_requested")
        .arg("1")
        .query_async(&mut con)
        .await
        .expect("flag the task");
    cancels.lost();
    cancels.subscribed();
    let fourth = beat.tick().await.expect("beat 4");
    assert_eq!(fourth.cancels_read, 101, "{fourth:?}");
    assert_eq!(fourth.cancelled, 1, "{fourth:?}");
    assert_eq!(fourth.leases_refreshed, 101, "{fourth:?}");
    assert_eq!(flights[7].stop_reason(), Some(StopReason::Cancelled));
    assert!(
        flights
            .iter()
            .enumerate()
            .all(|(i, f)| i == 7 || f.stop_reason().is_none())
    );

    // Without a subscription every beat reads every flag (the old cost, only while degraded).
    cancels.lost();
    let fifth = beat.tick().await.expect("beat 5");
    assert_eq!(fifth.cancels_read, 101, "{fifth:?}");
    assert_eq!(fifth.leases_refreshed, 0, "{fifth:?}");
}

#[tokio::test]
async fn a_beat_after_a_gap_longer_than_the_record_lives_checks_the_leases_at_once() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    // Record TTL 300 ms; lease refresh every 5 s (far beyond this test).
    let ctx = context(
        &url,
        &prefix,
        ME,
        &[
            ("HEARTBEAT_INTERVAL_MS", "100"),
            ("LEASE_TIMEOUT_MS", "20000"),
        ],
    );
    let mut con = connection(&url).await;
    let d = running(&mut con, &ctx.keys, ME, 2).await;
    let flights = register(&ctx, &d);
    let cancels = Subscription::default();
    cancels.subscribed();
    let mut beat = Heartbeat::new(ctx.clone(), cancels);
    assert_eq!(beat.tick().await.expect("beat 1").leases_refreshed, 2);
    assert_eq!(beat.tick().await.expect("beat 2").leases_refreshed, 0);

    // The process stalls past its record's lifetime; meanwhile a reclaimer takes an entry.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(ctx.keys.stream(QUEUE))
        .arg(GROUP)
        .arg(OTHER)
        .arg(0)
        .arg(&d[1].entry)
        .arg("JUSTID")
        .query_async(&mut con)
        .await
        .expect("XCLAIM");
    let third = beat.tick().await.expect("beat 3");
    assert_eq!(
        (third.leases_refreshed, third.leases_lost),
        (2, 1),
        "{third:?}"
    );
    assert_eq!(flights[0].stop_reason(), None);
    assert_eq!(flights[1].stop_reason(), Some(StopReason::LeaseLost));
}
