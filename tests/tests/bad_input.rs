//! A few hundred generated bad requests against the real dispatcher binary and a real Redis
//! (issue 16): every route and every body field, wrong types, huge numbers, deep nesting, bytes
//! that are not UTF-8 in paths, headers and bodies, trailing data, wrong methods and content
//! types, bad, missing, unknown or revoked tokens, tenant keys without the route's scope
//! (issue 21), broken framing, on `/api` and `/v1`. Then: no 5xx, every refusal in the
//! README's error shape (OpenAI's under `/v1`), nothing enqueued, no key outside the layout of
//! `shared/src/keys.rs`, and the process still runs a task end to end.
//!
//! The seed is fixed so CI sends the same requests each run; set `SWITCHYARD_BAD_INPUT_SEED` to
//! try others. A failure prints the seed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use switchyard_shared::keys::{KeyKind, Keys};
use switchyard_tests::bad_requests::{self, Case, Expect, Target};
use switchyard_tests::raw_http::{self, RawAnswer};
use switchyard_tests::{
    Dispatcher, connection, poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

const SEED_ENV: &str = "SWITCHYARD_BAD_INPUT_SEED";
const DEFAULT_SEED: u64 = 0x5EED_0016;
const CASES: usize = 400;
const MAX_BODY_BYTES: usize = 65_536;
/// Bound of one exchange; every answer here comes in milliseconds.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

fn seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// Whether `answer` is what `case` must get; `Err` says what is wrong.
fn judge(case: &Case, answer: Result<RawAnswer, String>) -> Result<(), String> {
    let a = answer?;
    let body = String::from_utf8_lossy(&a.body);
    let short: String = body.chars().take(200).collect();
    if a.status >= 500 {
        return Err(format!("{} {short}", a.status));
    }
    if a.is_event_stream() {
        return Err(format!("{}: opened an SSE stream", a.status));
    }
    match case.expect {
        Expect::Protocol if a.status == 400 && a.body.is_empty() => Ok(()),
        Expect::Protocol => Err(format!(
            "expected the bare 400 of a request that is not HTTP, got {} {short}",
            a.status
        )),
        Expect::Refused(statuses) | Expect::OpenAi(statuses) => {
            if !statuses.contains(&a.status) {
                return Err(format!(
                    "expected one of {statuses:?}, got {} {short}",
                    a.status
                ));
            }
            let ct = a.header("content-type").unwrap_or_default();
            if !ct.starts_with("application/json") {
                return Err(format!("{}: content type {ct:?}: {short}", a.status));
            }
            let v = a.json();
            let text = |f: &str| v["error"][f].as_str().is_some_and(|s| !s.is_empty());
            let shaped = match case.expect {
                // OpenAI's `{"error": {"message", "type", "param", "code"}}`; param and code
                // may be null.
                Expect::OpenAi(_) => {
                    text("message")
                        && text("type")
                        && v["error"].get("param").is_some()
                        && v["error"].get("code").is_some()
                }
                _ => text("code") && text("message"),
            };
            if shaped {
                Ok(())
            } else {
                Err(format!("{}: not the error shape: {short}", a.status))
            }
        }
    }
}

/// Every key under the test's prefix, with its kind if the layout builds it.
async fn keys_by_kind(url: &str, prefix: &str) -> Vec<(String, Option<KeyKind>)> {
    let layout = Keys::new(prefix);
    let mut con = connection(url).await;
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await
            .expect("SCAN");
        out.extend(keys.into_iter().map(|k| {
            let kind = layout.recognise(&k);
            (k, kind)
        }));
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

async fn enqueue_echo(d: &Dispatcher) -> String {
    let (status, v) = d
        .request(
            "POST",
            "/api/tasks",
            Some(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"n": 1}}})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().expect("an id").to_owned()
}

/// Creates a tenant with `scopes`: its id and key.
async fn tenant(d: &Dispatcher, scopes: serde_json::Value) -> (String, String) {
    let (status, v) = d
        .request(
            "POST",
            "/api/tenants",
            Some(json!({"name": "bad-input", "scopes": scopes})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let text = |f: &str| v[f].as_str().expect("id and key").to_owned();
    (text("id"), text("key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_bad_requests_are_refused_in_the_error_shape_and_leave_no_stray_keys() {
    let seed = seed();
    let redis = shared_redis();
    let prefix = unique_prefix();
    let max_body = MAX_BODY_BYTES.to_string();
    // A short chat wait: a chat request that wrongly passed would answer 504 at once.
    let d = spawn_dispatcher(
        redis.url(),
        &prefix,
        &[("MAX_BODY_BYTES", &max_body), ("WORKER_TIMEOUT_MS", "2000")],
    )
    .await;
    // A queued task (no worker yet), so requests about a task get past the lookup.
    let queued = enqueue_echo(&d).await;
    let (tenant_id, submit_key) = tenant(&d, json!(["submit"])).await;
    let (_, read_key) = tenant(&d, json!(["read"])).await;
    let (revoked_id, revoked_key) = tenant(&d, json!(["submit", "read"])).await;
    let (status, v) = d
        .request("DELETE", &format!("/api/tenants/{revoked_id}"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    let target = Target {
        secret: d.secret().to_owned(),
        task_id: queued.clone(),
        max_body_bytes: MAX_BODY_BYTES,
        tenant_id,
        submit_key,
        read_key,
        revoked_key,
    };
    let cases = bad_requests::cases(seed, &target, CASES);
    let covered = bad_requests::coverage(&cases);
    for route in bad_requests::route_names() {
        assert!(
            covered.iter().any(|(r, _)| *r == route),
            "no case for {route}"
        );
    }

    let addr = d.base_url().trim_start_matches("http://").to_owned();
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut defects: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let answer = raw_http::send(&addr, &case.request, ANSWER_DEADLINE).await;
        let class = case.defect.split([' ', ':']).next().unwrap_or_default();
        *defects.entry(class).or_default() += 1;
        if let Ok(a) = &answer {
            *statuses.entry(a.status).or_default() += 1;
        }
        if let Err(problem) = judge(case, answer) {
            failures.push(format!("#{i} {} [{}]: {problem}", case.route, case.defect));
        }
    }
    println!(
        "seed {seed}: {} cases over {} (route, defect) pairs; defects {defects:?}; statuses {statuses:?}",
        cases.len(),
        covered.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed} (rerun with {SEED_ENV}={seed}): {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(d.proc.is_running(), "the dispatcher died");
    assert!(
        !d.proc.log_text().contains("panicked"),
        "{}",
        d.proc.log_tail(30)
    );

    let keys = keys_by_kind(redis.url(), &prefix).await;
    let strangers: Vec<_> = keys.iter().filter(|(_, k)| k.is_none()).collect();
    assert!(
        strangers.is_empty(),
        "keys outside the layout: {strangers:?}"
    );
    let tasks: Vec<_> = keys
        .iter()
        .filter(|(_, k)| *k == Some(KeyKind::Task))
        .map(|(key, _)| key)
        .collect();
    // The lean layout: the one queued task is its stream entry alone, with no hash.
    assert!(tasks.is_empty(), "a task hash was written: {tasks:?}");
    let mut con = switchyard_tests::connection(redis.url()).await;
    let entries: Vec<String> = redis::cmd("XRANGE")
        .arg(Keys::new(&prefix).stream("tool"))
        .arg("-")
        .arg("+")
        .query_async::<redis::streams::StreamRangeReply>(&mut con)
        .await
        .expect("XRANGE")
        .ids
        .into_iter()
        .map(|e| switchyard_shared::task::entry_task_id("tool", &e.id))
        .collect();
    assert_eq!(
        entries,
        vec![queued.clone()],
        "a bad request enqueued a task"
    );

    // Still serving: a worker runs the queued task and a new one to completion.
    let _w = spawn_worker(redis.url(), &prefix, "bad-input-w", &[]).await;
    let fresh = enqueue_echo(&d).await;
    for id in [queued, fresh] {
        poll_until(&format!("{id} to succeed"), Duration::from_secs(30), || {
            let (d, id) = (&d, &id);
            async move {
                let (status, v) = d.request("GET", &format!("/api/tasks/{id}"), None).await;
                (status == 200 && v["state"] == "succeeded").then_some(())
            }
        })
        .await;
    }
    let keys = keys_by_kind(redis.url(), &prefix).await;
    let strangers: Vec<_> = keys.iter().filter(|(_, k)| k.is_none()).collect();
    assert!(
        strangers.is_empty(),
        "keys outside the layout: {strangers:?}"
    );
}
