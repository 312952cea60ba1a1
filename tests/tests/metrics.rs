//! Observability through the real binaries (issue 5): both `/metrics` endpoints expose the
//! metric families the dashboard uses, with values that follow the system (queue depth rises
//! while no worker runs and falls once one does), and `GET /api/metrics` summarises the last
//! minute per worker.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::{poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix};

const LONG: Duration = Duration::from_secs(60);

/// The value of the sample `name{labels…}` in a Prometheus text page, if present. `labels` must
/// all appear in the sample's label set.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse().ok())?
        })
        .next()
}

async fn scrape(url: &str) -> String {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("scraping {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("reading {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_queue_and_the_workers() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let dispatcher_metrics = format!("{}/metrics", d.base_url());

    for i in 0..20 {
        let (s, v) = d
            .request(
                "POST",
                "/api/tasks",
                Some(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"i": i}}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
    }
    // No worker yet: the sampled depth rises to the backlog.
    poll_until("depth gauge to show the backlog", LONG, || {
        let url = dispatcher_metrics.clone();
        async move {
            let page = scrape(&url).await;
            (sample(&page, "switchyard_queue_depth", &[("queue", "tool")]) == Some(20.0))
                .then_some(())
        }
    })
    .await;
    let page = scrape(&dispatcher_metrics).await;
    assert_eq!(
        sample(
            &page,
            "switchyard_tasks_enqueued_total",
            &[("queue", "tool"), ("kind", "tool")]
        ),
        Some(20.0)
    );
    assert_eq!(
        sample(&page, "switchyard_queue_waiting", &[("queue", "tool")]),
        Some(20.0)
    );
    assert_eq!(
        sample(
            &page,
            "switchyard_tasks",
            &[("queue", "tool"), ("state", "queued")]
        ),
        Some(20.0)
    );
    assert!(
        sample(
            &page,
            "switchyard_http_requests_total",
            &[("route", "/api/tasks"), ("status", "202")]
        )
        .is_some_and(|n| n >= 20.0),
        "{page}"
    );
    assert!(
        page.contains("# TYPE switchyard_http_request_duration_seconds histogram"),
        "{page}"
    );

    let w = spawn_worker(redis.url(), &prefix, "w1", &[]).await;
    poll_until("depth gauge to fall to zero", LONG, || {
        let url = dispatcher_metrics.clone();
        async move {
            let page = scrape(&url).await;
            let done = sample(
                &page,
                "switchyard_tasks_finished_total",
                &[("queue", "tool"), ("state", "succeeded")],
            );
            (sample(&page, "switchyard_queue_depth", &[("queue", "tool")]) == Some(0.0)
                && done == Some(20.0))
            .then_some(())
        }
    })
    .await;
    let page = scrape(&dispatcher_metrics).await;
    assert_eq!(
        sample(&page, "switchyard_workers", &[("status", "idle")]),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "switchyard_task_latency_seconds_count",
            &[("queue", "tool"), ("state", "succeeded")]
        ) == Some(20.0),
        "{page}"
    );

    let worker_page = scrape(&format!("http://127.0.0.1:{}/metrics", w.port())).await;
    assert_eq!(
        sample(
            &worker_page,
            "switchyard_worker_attempts_total",
            &[("queue", "tool"), ("outcome", "succeeded")]
        ),
        Some(20.0),
        "{worker_page}"
    );
    assert_eq!(
        sample(
            &worker_page,
            "switchyard_worker_run_seconds_count",
            &[("queue", "tool"), ("task", "echo")]
        ),
        Some(20.0),
        "{worker_page}"
    );
    assert_eq!(
        sample(&worker_page, "switchyard_worker_in_flight", &[]),
        Some(0.0),
        "{worker_page}"
    );
    assert!(
        worker_page.contains("switchyard_worker_wait_seconds_bucket"),
        "{worker_page}"
    );

    let (s, summary) = d.request("GET", "/api/metrics", None).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["last_minute"]["succeeded"], 20, "{summary}");
    assert!(
        summary["last_minute"]["latency_ms"]["p99"].is_u64(),
        "{summary}"
    );
    let workers = summary["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0]["id"], "w1");
    poll_until("w1's heartbeat to report its count", LONG, || {
        let d = &d;
        async move {
            let (_, s) = d.request("GET", "/api/metrics", None).await;
            (s["workers"][0]["processed"] == 20).then_some(())
        }
    })
    .await;
}
