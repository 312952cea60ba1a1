//! The web console's page timings at scale (issue 22 "Must show"): 50 queues and 1,000,000
//! finished tasks in one redis-server, written by the real path (the `enqueue_many` script,
//! `XREADGROUP`, the `complete` script; 1,000 tasks per call), then each page fetched 20 times
//! by a logged-in client. Prints the median and the worst, client-side on loopback, and the
//! server's own time per route from the dispatcher's `switchyard_http_request_duration_seconds`
//! histogram. A measurement, not a check: ignored by default; run it with
//! `cargo nextest run -p switchyard-tests --test console_scale --run-ignored ignored-only --no-capture`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::streams::StreamReadReply;
use switchyard_shared::keys::{GROUP, Keys};
use switchyard_shared::record::Entry;
use switchyard_shared::scripts::{self, BatchCall, Completion, Retention, Runnable};
use switchyard_tests::console;
use switchyard_tests::{RedisServer, connection, new_tool_record, spawn_dispatcher, unique_prefix};

const QUEUES: usize = 50;
const TASKS: usize = 1_000_000;
const BATCH: usize = 1_000;
const RUNS: usize = 20;

fn queue(i: usize) -> String {
    format!("q{i:02}")
}

/// Writes `TASKS` finished tasks over the queues; the id of one of them.
async fn fill(url: &str, keys: &Keys) -> String {
    let mut con = connection(url).await;
    let retention = Retention {
        result_ttl: Duration::from_secs(86_400),
        events_maxlen: 10_000,
    };
    let queues: Vec<String> = (0..QUEUES).map(queue).collect();
    switchyard_shared::store::ensure_groups(&mut con, keys, &queues)
        .await
        .expect("groups");
    let began = Instant::now();
    let mut some = String::new();
    for round in 0..TASKS / BATCH {
        let q = &queues[round % QUEUES];
        some = finish_batch(&mut con, keys, q, &retention).await;
    }
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await
        .expect("info");
    let used = info
        .lines()
        .find(|l| l.starts_with("used_memory_human:"))
        .unwrap_or_default();
    println!(
        "filled {TASKS} finished tasks over {QUEUES} queues in {:.1} s ({used})",
        began.elapsed().as_secs_f64()
    );
    some
}

/// Enqueues, takes and completes `BATCH` tasks of `q`, as a worker does; the last one's id.
async fn finish_batch(
    con: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
    q: &str,
    retention: &Retention,
) -> String {
    let records: Vec<_> = (0..BATCH)
        .map(|i| {
            new_tool_record(
                q,
                &format!(r#"{{"tool":"echo","args":{{"n":{i}}}}}"#),
                3,
                "30000",
            )
        })
        .collect();
    scripts::enqueue_many(con, keys, &records, 0)
        .await
        .expect("enqueue");
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("fill")
        .arg("COUNT")
        .arg(BATCH)
        .arg("STREAMS")
        .arg(keys.stream(q))
        .arg(">")
        .query_async(con)
        .await
        .expect("read");
    let now = switchyard_shared::clock::now_rfc3339();
    let mut done = Vec::with_capacity(BATCH);
    for e in reply.keys.into_iter().flat_map(|k| k.ids) {
        let fields: HashMap<String, String> = e
            .map
            .keys()
            .filter_map(|k| e.get::<String>(k).map(|v| (k.clone(), v)))
            .collect();
        let Ok(Entry::Fresh(task)) = Entry::decode(q, &e.id, fields) else {
            panic!("a fresh entry");
        };
        let run = Runnable::fresh(e.id.clone(), task, now.clone());
        done.push(Completion {
            entry: run.delivered.entry.clone(),
            id: run.delivered.id.clone(),
            result: r#"{"echo":{"n":1}}"#.to_owned(),
            attempts: run.attempts,
            started_at: run.started_at.clone(),
            record: run.record.clone(),
        });
    }
    let call = BatchCall {
        keys,
        queue: q,
        consumer: "fill",
        now: &now,
        retention,
    };
    scripts::complete(con, &call, &done)
        .await
        .expect("complete");
    done.last().map(|c| c.id.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: fills one million tasks (about a minute); run it on its own"]
async fn console_pages_with_fifty_queues_and_a_million_finished_tasks() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let task = fill(redis.url(), &keys).await;
    let names: Vec<String> = (0..QUEUES).map(queue).collect();
    let d = spawn_dispatcher(redis.url(), &prefix, &[("QUEUES", &names.join(","))]).await;
    let client = console::client();
    let (_, cookie, _) = console::login(&d, &client, d.secret()).await;
    let pages = [
        "/ui/overview".to_owned(),
        "/ui/queues/q00?state=finished".to_owned(),
        "/ui/queues/q00?state=finished&n=100".to_owned(),
        "/ui/queues/q00?state=stream".to_owned(),
        "/ui/queues/q00?state=dead".to_owned(),
        format!("/ui/tasks/{task}"),
        "/ui/workers".to_owned(),
        "/ui/dead".to_owned(),
        "/ui/tenants".to_owned(),
    ];
    println!("| page | median ms | worst ms | bytes |");
    println!("|---|---|---|---|");
    for page in &pages {
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = client
                .get(format!("{}{page}", d.base_url()))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("page");
            assert_eq!(r.status(), 200, "{page}");
            bytes = r.bytes().await.expect("body").len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| `{page}` | {:.2} | {:.2} | {bytes} |",
            ms(times[RUNS / 2]),
            ms(times[RUNS - 1])
        );
    }
    // The live feed: time to its first snapshot (the overview's data), 20 times.
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut r = client
            .get(format!("{}/ui/live", d.base_url()))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("live");
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\n\n") {
            got.extend_from_slice(&r.chunk().await.expect("chunk").expect("more"));
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "| `/ui/live` first snapshot (50 queues) | {:.2} | {:.2} | |",
        ms(times[RUNS / 2]),
        ms(times[RUNS - 1])
    );
    print_server_times(&client, &d.base_url()).await;
}

/// The dispatcher's own time per console route, from its request duration histogram.
async fn print_server_times(client: &reqwest::Client, base: &str) {
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    println!("server time per route (mean over the requests above, from the histogram):");
    let mut sums: HashMap<String, (f64, f64)> = HashMap::new();
    for line in metrics.lines().filter(|l| l.contains("route=\"/ui")) {
        let route = line
            .split("route=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let e = sums.entry(route).or_default();
        if line.starts_with("switchyard_http_request_duration_seconds_sum") {
            e.0 += value;
        }
        if line.starts_with("switchyard_http_request_duration_seconds_count") {
            e.1 += value;
        }
    }
    let mut routes: Vec<_> = sums.into_iter().filter(|(_, (_, n))| *n > 0.0).collect();
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    for (route, (sum, n)) in routes {
        println!(
            "  {route}: {:.2} ms mean over {n} requests",
            sum / n * 1000.0
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
