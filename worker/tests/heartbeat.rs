//! One heartbeat tick against a real Redis: an entry still pending here has its lease kept, an
//! entry another worker claimed stops its attempt, and an entry this worker's own commit just
//! acked does not (it used to be reported as a lost lease, with a warning, after every beat that
//! raced a completion). The beat's registry record lists the models the worker serves.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamPendingCountReply, StreamReadReply};
use switchyard_shared::config::{RedisConfig, WorkerConfig};
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::scripts::{self, Completion, Delivered, NewRecord, Retention};
use switchyard_shared::{clock, store, task};
use switchyard_tests::{connection, queued_tool_record, shared_redis, unique_prefix};
use switchyard_worker::context::{InFlight, StopReason, WorkerContext};
use switchyard_worker::heartbeat::Heartbeat;
use tokio_util::sync::CancellationToken;

const QUEUE: &str = "tool";
const ME: &str = "worker-me";
const OTHER: &str = "worker-other";

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn context(url: &str, prefix: &str) -> Arc<WorkerContext> {
    context_with(url, prefix, &[])
}

fn context_with(url: &str, prefix: &str, settings: &[(&str, &str)]) -> Arc<WorkerContext> {
    let redis = RedisConfig::from_vars(&vars(&[("REDIS_URL", url), ("QUEUE_PREFIX", prefix)]))
        .expect("redis config");
    let mut pairs = vec![("WORKER_QUEUES", QUEUE), ("WORKER_ID", ME)];
    pairs.extend_from_slice(settings);
    let cfg = WorkerConfig::from_vars(&vars(&pairs)).expect("worker config");
    Arc::new(WorkerContext {
        id: ME.to_owned(),
        pool: store::create_pool(&redis).expect("pool"),
        keys: Keys::new(prefix),
        retention: Retention {
            result_ttl: Duration::from_secs(3_600),
            events_maxlen: 1_000,
        },
        redis,
        cfg,
        in_flight: Mutex::new(HashMap::new()),
        processed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        started_at: clock::now_rfc3339(),
        draining: CancellationToken::new(),
    })
}

/// Enqueues `n` echo tasks, delivers them to `ME` and starts them; their deliveries.
async fn running(con: &mut MultiplexedConnection, keys: &Keys, n: usize) -> Vec<Delivered> {
    store::ensure_groups(con, keys, &[QUEUE.to_owned()])
        .await
        .expect("groups");
    let ids: Vec<String> = (0..n).map(|_| task::new_task_id(QUEUE)).collect();
    let recs: Vec<NewRecord<'_>> = ids
        .iter()
        .map(|id| NewRecord {
            id,
            queue: QUEUE,
            fields: queued_tool_record(id, QUEUE, r#"{"tool":"echo","args":{}}"#, 3, "30000"),
            due_ms: None,
            idempotency: None,
        })
        .collect();
    for r in scripts::enqueue_many(con, keys, &recs, 0)
        .await
        .expect("enqueue")
    {
        r.expect("enqueued");
    }
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(ME)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(keys.stream(QUEUE))
        .arg(">")
        .query_async(con)
        .await
        .expect("XREADGROUP");
    let delivered: Vec<Delivered> = reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| Delivered {
            id: e.get::<String>("id").expect("entry has an id"),
            entry: e.id,
        })
        .collect();
    assert_eq!(delivered.len(), n, "every task delivered");
    let retention = Retention {
        result_ttl: Duration::from_secs(3_600),
        events_maxlen: 1_000,
    };
    let now = clock::now_rfc3339();
    let started = scripts::start(con, keys, QUEUE, ME, &now, &retention, &delivered)
        .await
        .expect("start");
    assert_eq!(started.len(), n, "every task started");
    delivered
}

async fn owner(con: &mut MultiplexedConnection, keys: &Keys, entry: &str) -> Option<String> {
    let reply: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(keys.stream(QUEUE))
        .arg(GROUP)
        .arg(entry)
        .arg(entry)
        .arg(1)
        .query_async(con)
        .await
        .expect("XPENDING");
    reply.ids.into_iter().next().map(|p| p.consumer)
}

#[tokio::test]
async fn a_beat_stops_only_attempts_whose_entry_another_worker_took() {
    let url = shared_redis().url().to_owned();
    let prefix = unique_prefix();
    let ctx = context(&url, &prefix);
    let mut con = connection(&url).await;
    let d = running(&mut con, &ctx.keys, 3).await;
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
        &ctx.keys,
        QUEUE,
        ME,
        &now,
        &ctx.retention,
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
    let ctx = context_with(
        &url,
        &prefix,
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
