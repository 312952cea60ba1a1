//! Tenants' worker-side quotas (issue 21, item 2), through the real binaries: workers on one
//! Redis call a local provider server; each tenant's tasks ask for their own model, so the
//! server tells the tenants' calls apart. `max_running` holds a tenant to that many calls at
//! once across the fleet while another tenant runs at full width; `tpm` keeps the tokens the
//! provider sees for a tenant in every rolling window within 10 % of its budget while its work
//! waits, none of its tasks failing; a SIGKILLed worker's slots lapse with its lease.
//!
//! The `tpm` test shortens the window with `LLM_LIMIT_WINDOW_MS` (a tenant's `tpm` counts over
//! the same window as the provider limits: a minute by default), so that two windows fit in
//! 10 s.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::{Value, json};
use switchyard_shared::keys::Keys;
use switchyard_tests::provider_server::{ProviderServer, Reply, Wire};
use switchyard_tests::tenants::{call, create_tenant};
use switchyard_tests::{
    Dispatcher, Worker, connection, env_pairs, poll_until, shared_redis, spawn_dispatcher,
    spawn_worker, unique_prefix,
};

/// A dispatcher and `workers` workers on the provider server with `extra` worker settings; the
/// key prefix.
async fn fleet(
    provider: &ProviderServer,
    workers: usize,
    extra: &[(&'static str, String)],
) -> (Dispatcher, Vec<Worker>, String) {
    let prefix = unique_prefix();
    let d = spawn_dispatcher(shared_redis().url(), &prefix, &[]).await;
    let mut ws = Vec::new();
    for i in 0..workers {
        ws.push(spawn_worker_on(provider, &prefix, &format!("w{i}"), extra).await);
    }
    (d, ws, prefix)
}

async fn spawn_worker_on(
    provider: &ProviderServer,
    prefix: &str,
    id: &str,
    extra: &[(&'static str, String)],
) -> Worker {
    let mut env = provider.worker_env(Wire::OpenAi);
    env.push(("WORKER_QUEUES", "chat".into()));
    env.extend(extra.iter().cloned());
    spawn_worker(shared_redis().url(), prefix, id, &env_pairs(&env)).await
}

/// A chat task for `model` with a message of `chars` characters.
fn chat(model: &str, chars: usize) -> Value {
    json!({"kind": "chat", "payload": {"message": "x".repeat(chars), "model": model}})
}

/// Queues `tasks` in one batch with tenant key `key`; their ids.
async fn submit_batch(d: &Dispatcher, key: &str, tasks: Vec<Value>) -> Vec<String> {
    let r = call(
        d,
        key,
        "POST",
        "/api/tasks/batch",
        Some(json!({ "tasks": tasks })),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("an accepted task").to_owned())
        .collect()
}

async fn all_succeed_first_time(d: &Dispatcher, ids: &[String], within: Duration) {
    for id in ids {
        let t = d.wait_state(id, "succeeded", within).await;
        assert_eq!(t["attempts"], 1, "a task held back is not failed: {t}");
    }
}

/// The workers' metrics, concatenated.
async fn metrics(workers: &[Worker]) -> String {
    let mut text = String::new();
    for w in workers {
        let url = format!("http://127.0.0.1:{}/metrics", w.port());
        let body = reqwest::get(&url).await.expect("metrics").text().await;
        text.push_str(&body.expect("metrics text"));
    }
    text
}

/// When the last call for `model` was answered.
fn last_answer(provider: &ProviderServer, model: &str) -> Instant {
    provider
        .requests()
        .iter()
        .filter(|s| s.model == model)
        .filter_map(|s| s.finished)
        .max()
        .expect("answered calls")
}

#[tokio::test]
async fn max_running_holds_a_tenant_to_its_slots_across_workers_while_another_runs_wide() {
    // Each call takes about 500 ms.
    let provider = ProviderServer::start(Reply::tokens(5).delay(Duration::from_millis(100))).await;
    let (d, workers, _) = fleet(&provider, 2, &[("WORKER_CONCURRENCY", "4".into())]).await;
    let (a, key_a) = create_tenant(
        &d,
        json!({"name": "a", "scopes": ["submit"], "max_running": 2}),
    )
    .await;
    let (_, key_b) = create_tenant(&d, json!({"name": "b", "scopes": ["submit"]})).await;
    let ids_a = submit_batch(&d, &key_a, vec![chat("model-a", 20); 10]).await;
    let ids_b = submit_batch(&d, &key_b, vec![chat("model-b", 20); 8]).await;
    all_succeed_first_time(&d, &ids_a, Duration::from_secs(60)).await;
    all_succeed_first_time(&d, &ids_b, Duration::from_secs(60)).await;
    let (most_a, most_b) = (
        provider.max_concurrent("model-a"),
        provider.max_concurrent("model-b"),
    );
    let (done_a, done_b) = (
        last_answer(&provider, "model-a"),
        last_answer(&provider, "model-b"),
    );
    let first = provider.requests()[0].received;
    eprintln!(
        "max_running 2: tenant a at most {most_a} calls at once, done +{:?}; tenant b at most {most_b}, done +{:?}",
        done_a - first,
        done_b - first
    );
    assert_eq!(most_a, 2, "tenant a ran at its max_running, never above");
    assert!(most_b >= 4, "tenant b was not held to a's slots: {most_b}");
    assert!(
        done_b < done_a,
        "tenant b finished while a still waited for slots"
    );
    let text = metrics(&workers).await;
    assert!(
        text.contains(&format!(
            r#"switchyard_tenant_wait_seconds_count{{tenant="{a}",cause="running"}}"#
        )),
        "{text}"
    );
    assert!(
        !text.contains(r#"cause="tokens""#),
        "no tpm, no token waits: {text}"
    );
}

#[tokio::test]
async fn tpm_keeps_every_rolling_window_of_a_tenant_within_ten_percent_while_another_flows() {
    // Each call: 400 characters (103 tokens as the server counts them) and 5 completion tokens.
    let provider = ProviderServer::start(Reply::tokens(5).count_prompt()).await;
    let window = Duration::from_millis(5_000);
    // N tokens per window: ~28 calls of 108 tokens, so one call is ~4 % of N.
    let n: u64 = 3_000;
    let windows = 2;
    let (d, workers, _) = fleet(
        &provider,
        3,
        // The default WORKER_CONCURRENCY (16): each worker holds up to 64 tasks waiting for a
        // quota without a concurrency slot, so a's whole backlog waits without one and b finds
        // free slots (a backlog beyond the fleet's waiting rooms would fill the workers).
        &[("LLM_LIMIT_WINDOW_MS", window.as_millis().to_string())],
    )
    .await;
    let (a, key_a) = create_tenant(&d, json!({"name": "a", "scopes": ["submit"], "tpm": n})).await;
    let (_, key_b) = create_tenant(&d, json!({"name": "b", "scopes": ["submit"]})).await;
    // More work than the measured windows take: it waits all along.
    let calls = 70;
    let ids_a = submit_batch(&d, &key_a, vec![chat("model-a", 400); calls]).await;
    let first = poll_until("tenant a's first call", Duration::from_secs(30), || async {
        provider.tokens_seen().first().map(|(at, _, _)| *at)
    })
    .await;
    // Tenant b flows while a waits for its budget.
    let sent_b = Instant::now();
    let ids_b = submit_batch(&d, &key_b, vec![chat("model-b", 400); 10]).await;
    all_succeed_first_time(&d, &ids_b, Duration::from_secs(30)).await;
    let b_took = sent_b.elapsed();
    let until = first + window * windows;
    assert!(
        b_took < Duration::from_secs(3),
        "tenant b's tasks flowed past a's waiting ones: {b_took:?}"
    );
    poll_until("the measured windows to pass", window * 4, || async {
        (Instant::now() >= until + Duration::from_millis(200)).then_some(())
    })
    .await;
    let answered_a = provider
        .tokens_seen()
        .iter()
        .filter(|(at, m, _)| m == "model-a" && *at < until)
        .count();
    assert!(
        answered_a < calls,
        "work was waiting until the end of the measure ({answered_a} of {calls} answered)"
    );
    let totals = provider.rolling_windows_of("model-a", window, Duration::from_millis(10), until);
    assert!(totals.len() > 100, "{} windows", totals.len());
    let min = totals.iter().min_by_key(|(_, t)| *t).expect("windows");
    let max = totals.iter().max_by_key(|(_, t)| *t).expect("windows");
    eprintln!(
        "tenant tpm {n} per {window:?}: {} rolling windows; first {} tokens, min {} (+{:?}), max {} (+{:?}); tenant b's 10 tasks done in {b_took:?}",
        totals.len(),
        totals[0].1,
        min.1,
        min.0,
        max.1,
        max.0
    );
    let (lo, hi) = (n * 9 / 10, n * 11 / 10);
    for (at, total) in &totals {
        assert!(
            (lo..=hi).contains(total),
            "the window starting +{at:?} after a's first call saw {total} tokens, not within 10 % of {n}"
        );
    }
    all_succeed_first_time(&d, &ids_a, Duration::from_secs(60)).await;
    let text = metrics(&workers).await;
    for series in [
        format!(r#"switchyard_tenant_wait_seconds_count{{tenant="{a}",cause="tokens"}}"#),
        format!(r#"switchyard_tenant_tokens_total{{tenant="{a}"}}"#),
    ] {
        assert!(text.contains(&series), "{series} in {text}");
    }
}

#[tokio::test]
async fn a_sigkilled_workers_tenant_slots_lapse_with_its_lease() {
    let provider = ProviderServer::start(Reply::tokens(3).delay(Duration::from_millis(50))).await;
    // The first two calls of model-a hang until their worker dies.
    for _ in 0..2 {
        provider.push_for("model-a", Reply::tokens(3).delay(Duration::from_secs(120)));
    }
    let lease = Duration::from_millis(1_500);
    let extra = [
        ("HEARTBEAT_INTERVAL_MS", "300".to_owned()),
        ("LEASE_TIMEOUT_MS", lease.as_millis().to_string()),
    ];
    let (d, mut workers, prefix) = fleet(&provider, 1, &extra).await;
    let (a, key_a) = create_tenant(
        &d,
        json!({"name": "a", "scopes": ["submit"], "max_running": 2}),
    )
    .await;
    // One attempt each: reclaimed from the killed worker they are dead-lettered, never run
    // again, so their slots can only come back by lapsing.
    let mut held = chat("model-a", 20);
    held["max_attempts"] = json!(1);
    let ids_held = submit_batch(&d, &key_a, vec![held.clone(), held]).await;
    poll_until("both calls in flight", Duration::from_secs(30), || async {
        (provider.requests().len() == 2).then_some(())
    })
    .await;
    let mut con = connection(shared_redis().url()).await;
    let running = Keys::new(&prefix).tenant_running(&a);
    let slots: u64 = con.zcard(&running).await.expect("ZCARD");
    assert_eq!(slots, 2, "the killed worker holds both of a's slots");
    workers[0].proc.sigkill();
    let killed = Instant::now();
    workers.push(spawn_worker_on(&provider, &prefix, "w1", &extra).await);
    let ids = submit_batch(&d, &key_a, vec![chat("model-a", 20); 4]).await;
    all_succeed_first_time(&d, &ids, Duration::from_secs(30)).await;
    for id in &ids_held {
        d.wait_state(id, "dead", Duration::from_secs(30)).await;
    }
    let resumed = provider
        .requests()
        .iter()
        .skip(2)
        .map(|s| s.received)
        .min()
        .expect("later calls");
    eprintln!(
        "SIGKILL with both slots held: tenant a's next call {:?} after the kill (lease {lease:?})",
        resumed - killed
    );
    // The killed worker's two calls hang until the server notices their connections closed.
    let most = provider.max_concurrent_after("model-a", Some(killed));
    assert!(most <= 2, "never above max_running: {most}");
    let left: u64 = con.zcard(&running).await.expect("ZCARD");
    assert_eq!(left, 0, "every slot given back or lapsed");
}
