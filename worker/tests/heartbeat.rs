//! One heartbeat tick against a real Redis: an entry still pending here has its lease kept, an
//! entry another worker claimed stops its attempt, and an entry this worker's own commit just
//! acked does not (it used to be reported as a lost lease, with a warning, after every beat that
//! raced a completion). The beat's registry record lists the models the worker serves.

mod common;

use common::{QUEUE, context, owner, running};
use switchyard_shared::clock;
use switchyard_shared::keys::GROUP;
use switchyard_shared::scripts::{self, Completion};
use switchyard_tests::{connection, shared_redis, unique_prefix};
use switchyard_worker::context::{InFlight, StopReason};
use switchyard_worker::heartbeat::Heartbeat;

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
    let completed = scripts::complete(
        &mut con,
        &ctx.batch_call(QUEUE, &now),
        &[Completion {
            entry: committed.entry.clone(),
            id: committed.id.clone(),
            result: "{}".to_owned(),
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

    Heartbeat::new(ctx.clone()).tick().await.expect("beat");

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
    Heartbeat::new(ctx.clone()).tick().await.expect("beat");
    let mut con = connection(&url).await;
    let listed = switchyard_shared::registry::list(&mut con, &ctx.keys, clock::now_ms())
        .await
        .expect("listing");
    assert_eq!(listed.len(), 1);
    let record = listed[0].record.as_ref().expect("a readable record");
    assert_eq!(record.models, vec!["gpt-local", "echo-2", "gpt-local-mini"]);
}
