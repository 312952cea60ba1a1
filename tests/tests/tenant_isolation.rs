//! Tenant isolation (issue 21) through the real dispatcher binary and a real Redis: every route
//! with every kind of key: tenant A's `submit` key on its own task, tenant B's on A's task
//! (404), a `read` key (reads everything, 403 naming the scope on every state-changing route),
//! the admin secret.

use serde_json::{Value, json};
use switchyard_tests::tenants::{call, create_tenant, submit_as, tool_task};
use switchyard_tests::{
    Dispatcher, shared_redis, spawn_dispatcher, spawn_worker, sse, unique_prefix,
};

/// One row: a request and the status each caller must get (A owns the task in `{id}`).
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    /// Statuses for A (`submit`, owner), B (`submit`, stranger), R (`read`), admin; `None`: not
    /// sent with that key (it would change what the next rows see, or wait for a worker).
    expect: [Option<u16>; 4],
}

const fn row(
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    expect: [Option<u16>; 4],
) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

/// Every route of `dispatcher/src/http/mod.rs` and `/v1`, and one no route lists.
fn rows() -> Vec<Row> {
    let chat = json!({"message": "hi", "detach": true});
    let v1 = json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]});
    let batch = json!({"tasks": [tool_task()]});
    let new_tenant = json!({"name": "x", "scopes": ["read"]});
    let (ok, no, nf, fb) = (Some(200), None, Some(404), Some(403));
    let (acc, conflict) = (Some(202), Some(409));
    #[rustfmt::skip]
    let rows = vec![
        row("GET", "/api/tasks/{id}", None, [ok, nf, ok, ok]),
        row("POST", "/api/dead/{id}/retry", None, [conflict, nf, fb, conflict]),
        row("DELETE", "/api/tasks/{id}", None, [no, nf, fb, no]),
        row("POST", "/api/tasks", Some(tool_task()), [acc, acc, fb, acc]),
        row("POST", "/api/tasks/batch", Some(batch), [acc, acc, fb, acc]),
        row("POST", "/api/chat", Some(chat), [Some(504), no, fb, no]),
        row("POST", "/v1/chat/completions", Some(v1), [Some(504), no, fb, no]),
        row("GET", "/v1/models", None, [ok, ok, ok, ok]),
        row("GET", "/api/queues", None, [ok, ok, ok, ok]),
        row("GET", "/api/queues/tool", None, [ok, ok, ok, ok]),
        row("GET", "/api/workers", None, [fb, fb, ok, ok]),
        row("GET", "/api/dead", None, [ok, ok, ok, ok]),
        row("GET", "/api/metrics", None, [fb, fb, ok, ok]),
        row("GET", "/api/health/all", None, [fb, fb, ok, ok]),
        row("GET", "/api/tenants", None, [fb, fb, fb, ok]),
        row("POST", "/api/tenants", Some(new_tenant), [fb, fb, fb, Some(201)]),
        row("GET", "/api/tenants/{tenant}", None, [fb, fb, fb, ok]),
        row("PATCH", "/api/tenants/{tenant}", Some(json!({"rpm": 5})), [fb, fb, fb, ok]),
        row("DELETE", "/api/tenants/{tenant}", None, [fb, fb, fb, ok]),
        // Deny by default: a change to a route nobody listed needs `admin`.
        row("POST", "/api/nope", None, [fb, fb, fb, nf]),
    ];
    rows
}

/// The scope a 403 must name for `method path`.
fn scope_named(method: &str, path: &str) -> &'static str {
    if path.starts_with("/api/tenants") || path == "/api/nope" {
        "admin"
    } else if method == "GET" {
        "read"
    } else {
        "submit"
    }
}

/// Sends every row with every caller's key; what differs from the table.
async fn check_rows(
    d: &Dispatcher,
    callers: &[(&str, &str); 4],
    task: &str,
    tenant: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows() {
        let path = row.path.replace("{id}", task).replace("{tenant}", tenant);
        for ((who, token), want) in callers.iter().zip(row.expect) {
            let Some(want) = want else { continue };
            let resp = call(d, token, row.method, &path, row.body.clone()).await;
            let mut problem = (resp.status != want).then(|| format!("got {}", resp.status));
            let scope = format!("`{}`", scope_named(row.method, row.path));
            if want == 403 && !resp.text().contains(&scope) {
                problem = Some(format!("403 not naming {scope}: {}", resp.text()));
            }
            if let Some(p) = problem {
                failures.push(format!(
                    "{who} {} {}: want {want}, {p}",
                    row.method, row.path
                ));
            }
        }
    }
    failures
}

/// The status of `GET /api/tasks/{id}/stream` (the SSE stream is dropped once open).
async fn stream_status(d: &Dispatcher, token: &str, id: &str) -> u16 {
    let url = format!("{}/api/tasks/{id}/stream", d.base_url());
    match sse::open("GET", &url, token, None, None).await {
        Ok(_) => 200,
        Err((status, _)) => status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_tenants_apart_and_a_read_key_changes_nothing() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    // A short wait: a chat or /v1 request that passes answers 504 at once (no worker runs).
    let d = spawn_dispatcher(redis.url(), &prefix, &[("WORKER_TIMEOUT_MS", "300")]).await;
    let (a_id, a) = create_tenant(&d, json!({"name": "a", "scopes": ["submit"]})).await;
    let (_, b) = create_tenant(&d, json!({"name": "b", "scopes": ["submit"]})).await;
    let (_, r) = create_tenant(&d, json!({"name": "ops", "scopes": ["read"]})).await;
    let (victim, _) = create_tenant(&d, json!({"name": "v", "scopes": ["submit"]})).await;
    let task = submit_as(&d, &a).await;
    let admin_task = submit_as(&d, d.secret()).await;
    let callers = [
        ("A", a.as_str()),
        ("B", &b),
        ("read", &r),
        ("admin", d.secret()),
    ];

    let mut failures = check_rows(&d, &callers, &task, &victim).await;
    // The stream: the owner and the readers open it, the stranger gets 404.
    for ((who, token), want) in callers.iter().zip([200, 404, 200, 200]) {
        let got = stream_status(&d, token, &task).await;
        if got != want {
            failures.push(format!(
                "{who} GET /api/tasks/{{id}}/stream: want {want}, got {got}"
            ));
        }
    }
    // A task of the admin key belongs to no tenant: hidden from every `submit` key.
    for ((who, token), want) in callers.iter().zip([404, 404, 200, 200]) {
        let got = call(&d, token, "GET", &format!("/api/tasks/{admin_task}"), None)
            .await
            .status;
        if got != want {
            failures.push(format!(
                "{who} GET the admin's task: want {want}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing above changed A's task; its tenant is recorded; its owner can cancel it.
    let t = call(&d, d.secret(), "GET", &format!("/api/tasks/{task}"), None)
        .await
        .json();
    assert_eq!(
        (&t["state"], &t["tenant"]),
        (&json!("queued"), &json!(a_id)),
        "{t}"
    );
    let cancel = call(&d, &a, "DELETE", &format!("/api/tasks/{task}"), None).await;
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    // Per-tenant metrics carry the ids of existing tenants.
    let metrics = call(&d, "", "GET", "/metrics", None).await.text();
    let series = format!("switchyard_tenant_tasks_enqueued_total{{tenant=\"{a_id}\"}}");
    assert!(metrics.contains(&series), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_refusals_are_openai_shaped_and_idempotency_keys_are_per_tenant() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let (_, a) = create_tenant(&d, json!({"name": "a", "scopes": ["submit"]})).await;
    let (_, b) = create_tenant(&d, json!({"name": "b", "scopes": ["submit"]})).await;
    let (_, r) = create_tenant(&d, json!({"name": "ops", "scopes": ["read"]})).await;

    let body = json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]});
    let v1 = call(&d, &r, "POST", "/v1/chat/completions", Some(body)).await;
    assert_eq!(v1.status, 403, "{}", v1.text());
    let e = &v1.json()["error"];
    assert_eq!(e["code"], "insufficient_permissions", "{}", v1.text());
    assert!(
        e["type"].is_string() && e["message"].is_string(),
        "{}",
        v1.text()
    );

    // B's equal key neither sees nor dedups against A's task; A's own repeat does.
    let keyed = json!({"kind": "tool", "idempotency_key": "order-42", "payload": {"tool": "echo"}});
    let mut answers = Vec::new();
    for token in [a.as_str(), &b, &a] {
        let resp = call(&d, token, "POST", "/api/tasks", Some(keyed.clone())).await;
        assert!(resp.status == 202 || resp.status == 200, "{}", resp.text());
        let v = resp.json();
        answers.push((v["id"].clone(), v["duplicate"].clone()));
    }
    assert_ne!(answers[0].0, answers[1].0, "B got A's task");
    assert_eq!(answers[1].1, json!(false));
    assert_eq!(
        answers[2],
        (answers[0].0.clone(), json!(true)),
        "A's own key dedups"
    );
}

/// The ids `GET /api/dead` (with `query`) lists for `token`, sorted.
async fn dead_ids(d: &Dispatcher, token: &str, query: &str) -> Vec<String> {
    let r = call(d, token, "GET", &format!("/api/dead{query}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut ids: Vec<String> = r.json()["dead"]
        .as_array()
        .expect("dead letters")
        .iter()
        .map(|l| l["id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_key_lists_and_replays_only_its_own_tenants_dead_letters() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w = spawn_worker(redis.url(), &prefix, "w0", &[("WORKER_QUEUES", "tool")]).await;
    let (_, a) = create_tenant(&d, json!({"name": "a", "scopes": ["submit"]})).await;
    let (_, b) = create_tenant(&d, json!({"name": "b", "scopes": ["submit"]})).await;
    let (_, r) = create_tenant(&d, json!({"name": "ops", "scopes": ["read"]})).await;
    let doomed = json!({"kind": "tool", "payload": {"tool": "fail", "args": {"message": "no"}},
        "max_attempts": 1});
    let mut by = Vec::new();
    for token in [a.as_str(), &a, &b, d.secret()] {
        let r = call(&d, token, "POST", "/api/tasks", Some(doomed.clone())).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.json()["id"].as_str().expect("an id").to_owned();
        d.wait_state(&id, "dead", std::time::Duration::from_secs(30))
            .await;
        by.push(id);
    }
    let sorted = |ids: &[String]| {
        let mut v = ids.to_vec();
        v.sort();
        v
    };
    assert_eq!(
        dead_ids(&d, &a, "").await,
        sorted(&by[..2]),
        "A sees its own two"
    );
    assert_eq!(
        dead_ids(&d, &b, "").await,
        sorted(&by[2..3]),
        "B sees its one"
    );
    assert_eq!(
        dead_ids(&d, &r, "").await,
        sorted(&by),
        "a read key sees all"
    );
    assert_eq!(dead_ids(&d, d.secret(), "").await, sorted(&by));
    // The limit counts A's own letters: its newest, past the newer ones of B and the admin.
    assert_eq!(dead_ids(&d, &a, "?limit=1").await, vec![by[1].clone()]);
    for (token, id, want) in [(&b, &by[0], 404), (&a, &by[3], 404), (&a, &by[0], 202)] {
        let path = format!("/api/dead/{id}/retry");
        let got = call(&d, token, "POST", &path, None).await.status;
        assert_eq!(
            got, want,
            "replay of {id}: a submit key replays its own only"
        );
    }
}
