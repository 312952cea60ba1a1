//! Tenants (issue 21) through the real dispatcher binary and a real Redis: every route with
//! every kind of key (tenant A's `submit` key on its own task, tenant B's on A's task, a `read`
//! key, the admin secret), a key's life (create, use, revoke → 401, also on a second dispatcher
//! within `TENANT_CACHE_MS`), and the `rpm` quota (429 with `Retry-After`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::services::Response;
use switchyard_tests::sse;
use switchyard_tests::{
    Dispatcher, connection, poll_until, shared_redis, spawn_dispatcher, unique_prefix,
};

/// Sends `method path` with bearer `token` and an optional JSON body.
async fn call(
    d: &Dispatcher,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Response {
    let bytes = body.map(|b| serde_json::to_vec(&b).expect("JSON"));
    d.raw_request(
        method,
        path,
        Some(token),
        &[("content-type", "application/json")],
        bytes,
    )
    .await
}

/// Creates a tenant with the admin secret: (id, key).
async fn create_tenant(d: &Dispatcher, body: Value) -> (String, String) {
    let r = call(d, d.secret(), "POST", "/api/tenants", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["id"].as_str().expect("id").to_owned(),
        v["key"].as_str().expect("key").to_owned(),
    )
}

fn tool_task() -> Value {
    json!({"kind": "tool", "payload": {"tool": "echo", "args": {"n": 1}}})
}

/// Enqueues a tool task with `token` (no worker runs: it stays queued); its id.
async fn submit(d: &Dispatcher, token: &str) -> String {
    let r = call(d, token, "POST", "/api/tasks", Some(tool_task())).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

/// The status of `GET /api/tasks/{id}/stream` (the SSE stream is dropped once open).
async fn stream_status(d: &Dispatcher, token: &str, id: &str) -> u16 {
    let url = format!("{}/api/tasks/{id}/stream", d.base_url());
    match sse::open("GET", &url, token, None, None).await {
        Ok(_) => 200,
        Err((status, _)) => status,
    }
}

/// One row: a request and the status each caller must get (A owns the task in `{id}`).
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    /// Statuses for A (`submit`, owner), B (`submit`, stranger), R (`read`), admin; `None`: not
    /// sent with that key (it would change what the next rows see).
    expect: [Option<u16>; 4],
}

fn row(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_tenants_apart_and_a_read_key_changes_nothing() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    // A short wait: a chat or /v1 request that passes answers 504 at once (no worker runs).
    let d = spawn_dispatcher(redis.url(), &prefix, &[("WORKER_TIMEOUT_MS", "300")]).await;
    let (a_id, a) = create_tenant(&d, json!({"name": "a", "scopes": ["submit"]})).await;
    let (_, b) = create_tenant(&d, json!({"name": "b", "scopes": ["submit"]})).await;
    let (_, r) = create_tenant(&d, json!({"name": "ops", "scopes": ["read"]})).await;
    let (victim_id, _) = create_tenant(&d, json!({"name": "v", "scopes": ["submit"]})).await;
    let task = submit(&d, &a).await;
    let admin_task = submit(&d, d.secret()).await;

    let chat = json!({"message": "hi", "detach": true});
    let v1 = json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]});
    let patch = json!({"rpm": 5});
    let (ok, no) = (Some(200), None);
    #[rustfmt::skip]
    let rows = [
        row("GET", "/api/tasks/{id}", None, [ok, Some(404), ok, ok]),
        row("POST", "/api/dead/{id}/retry", None, [Some(409), Some(404), Some(403), Some(409)]),
        row("DELETE", "/api/tasks/{id}", None, [no, Some(404), Some(403), no]),
        row("POST", "/api/tasks", Some(tool_task()), [Some(202), Some(202), Some(403), Some(202)]),
        row("POST", "/api/tasks/batch", Some(json!({"tasks": [tool_task()]})), [Some(202), Some(202), Some(403), Some(202)]),
        row("POST", "/api/chat", Some(chat), [Some(504), no, Some(403), no]),
        row("POST", "/v1/chat/completions", Some(v1), [Some(504), no, Some(403), no]),
        row("GET", "/v1/models", None, [ok, ok, ok, ok]),
        row("GET", "/api/queues", None, [Some(403), Some(403), ok, ok]),
        row("GET", "/api/workers", None, [Some(403), Some(403), ok, ok]),
        row("GET", "/api/dead", None, [Some(403), Some(403), ok, ok]),
        row("GET", "/api/metrics", None, [Some(403), Some(403), ok, ok]),
        row("GET", "/api/health/all", None, [Some(403), Some(403), ok, ok]),
        row("GET", "/api/tenants", None, [Some(403), Some(403), Some(403), ok]),
        row("POST", "/api/tenants", Some(json!({"name": "x", "scopes": ["read"]})), [Some(403), Some(403), Some(403), Some(201)]),
        row("PATCH", "/api/tenants/{tenant}", Some(patch), [Some(403), Some(403), Some(403), ok]),
        row("DELETE", "/api/tenants/{tenant}", None, [Some(403), Some(403), Some(403), ok]),
        // Deny by default: a change to a route nobody listed needs `admin`.
        row("POST", "/api/nope", None, [Some(403), Some(403), Some(403), Some(404)]),
    ];
    let callers = [
        ("A", a.as_str()),
        ("B", &b),
        ("read", &r),
        ("admin", d.secret()),
    ];
    let mut failures = Vec::new();
    for row in &rows {
        let path = row
            .path
            .replace("{id}", &task)
            .replace("{tenant}", &victim_id);
        for ((who, token), want) in callers.iter().zip(row.expect) {
            let Some(want) = want else { continue };
            let resp = call(&d, token, row.method, &path, row.body.clone()).await;
            let mut problem = (resp.status != want).then(|| format!("got {}", resp.status));
            if want == 403 {
                let scope = format!("`{}`", scope_named(row.method, row.path));
                if !resp.text().contains(&scope) {
                    problem = Some(format!("403 not naming {scope}: {}", resp.text()));
                }
            }
            if let Some(p) = problem {
                failures.push(format!(
                    "{who} {} {}: want {want}, {p}",
                    row.method, row.path
                ));
            }
        }
    }
    // The stream: the owner and the readers open it, the stranger gets 404.
    for (who, token, want) in [
        ("A", a.as_str(), 200),
        ("B", &b, 404),
        ("read", &r, 200),
        ("admin", d.secret(), 200),
    ] {
        let got = stream_status(&d, token, &task).await;
        if got != want {
            failures.push(format!(
                "{who} GET /api/tasks/{{id}}/stream: want {want}, got {got}"
            ));
        }
    }
    // A task of the admin key belongs to no tenant: hidden from every `submit` key.
    for (who, token, want) in [("A", a.as_str(), 404), ("read", &r, 200)] {
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

    // Nothing above changed A's task; its tenant is recorded; the owner can cancel it.
    let t = call(&d, d.secret(), "GET", &format!("/api/tasks/{task}"), None)
        .await
        .json();
    assert_eq!(t["state"], "queued", "{t}");
    assert_eq!(t["tenant"], json!(a_id), "{t}");
    let cancel = call(&d, &a, "DELETE", &format!("/api/tasks/{task}"), None).await;
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    assert_eq!(
        call(
            &d,
            d.secret(),
            "DELETE",
            &format!("/api/tasks/{admin_task}"),
            None
        )
        .await
        .status,
        200
    );
    // `/v1` refusals are in OpenAI's shape.
    let v1 = call(
        &d,
        &r,
        "POST",
        "/v1/chat/completions",
        Some(json!({"model": "echo", "messages": []})),
    )
    .await;
    assert_eq!(v1.status, 403);
    assert_eq!(
        v1.json()["error"]["code"],
        "insufficient_permissions",
        "{}",
        v1.text()
    );
    assert!(v1.json()["error"]["type"].is_string(), "{}", v1.text());
    // An idempotency key is per tenant: B's equal key neither sees nor dedups against A's task.
    let keyed = json!({"kind": "tool", "idempotency_key": "order-42", "payload": {"tool": "echo"}});
    let mut ids = Vec::new();
    for token in [a.as_str(), &b, &a] {
        let r = call(&d, token, "POST", "/api/tasks", Some(keyed.clone())).await;
        assert!(r.status == 202 || r.status == 200, "{}", r.text());
        ids.push((r.json()["id"].clone(), r.json()["duplicate"].clone()));
    }
    assert_ne!(ids[0].0, ids[1].0, "B got A's task");
    assert_eq!(ids[1].1, json!(false));
    assert_eq!(
        ids[2],
        (ids[0].0.clone(), json!(true)),
        "A's own key dedups"
    );
    // Per-tenant metrics carry the ids of existing tenants.
    let metrics = call(&d, "", "GET", "/metrics", None).await.text();
    assert!(
        metrics.contains(&format!(
            "switchyard_tenant_tasks_enqueued_total{{tenant=\"{a_id}\"}}"
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_works_until_revoked_then_answers_401_everywhere_within_the_cache_time() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let cache_ms = 500u64;
    let cache = cache_ms.to_string();
    let d1 = spawn_dispatcher(redis.url(), &prefix, &[("TENANT_CACHE_MS", &cache)]).await;
    // Same Redis and prefix, same secret: a second dispatcher of the same deployment.
    let d2 = spawn_dispatcher(
        redis.url(),
        &prefix,
        &[
            ("TENANT_CACHE_MS", &cache),
            ("ROOT_NODE_SECRET", d1.secret()),
        ],
    )
    .await;
    let r = call(
        &d1,
        d1.secret(),
        "POST",
        "/api/tenants",
        Some(
            json!({"name": "team a", "scopes": ["submit", "read"], "tpm": 1000, "max_running": 2}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let (id, key) = (
        created["id"].as_str().expect("id"),
        created["key"].as_str().expect("key"),
    );
    assert_eq!(created["scopes"], json!(["submit", "read"]));
    assert_eq!(
        (created["rpm"].clone(), created["tpm"].clone()),
        (Value::Null, json!(1000))
    );

    // Listed without the key; Redis holds no copy of it anywhere.
    let list = call(&d1, d1.secret(), "GET", "/api/tenants", None).await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(key), "{}", list.text());
    assert_eq!(list.json()["tenants"][0]["id"], json!(id));
    let mut con = connection(redis.url()).await;
    let dump: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .expect("KEYS");
    for k in &dump {
        assert!(!k.contains(key), "{k}");
        let kind: String = redis::cmd("TYPE")
            .arg(k)
            .query_async(&mut con)
            .await
            .expect("TYPE");
        let text: String = match kind.as_str() {
            "string" => redis::cmd("GET")
                .arg(k)
                .query_async(&mut con)
                .await
                .expect("GET"),
            "hash" => {
                let h: Vec<String> = redis::cmd("HGETALL")
                    .arg(k)
                    .query_async(&mut con)
                    .await
                    .expect("HGETALL");
                h.join(" ")
            }
            _ => String::new(),
        };
        assert!(!text.contains(key), "{k} holds the key");
    }

    // Used on both dispatchers (the second now remembers it).
    let task = submit(&d1, key).await;
    assert_eq!(
        call(&d2, key, "GET", &format!("/api/tasks/{task}"), None)
            .await
            .status,
        200
    );
    // PATCH changes what it may do.
    let p = call(
        &d1,
        d1.secret(),
        "PATCH",
        &format!("/api/tenants/{id}"),
        Some(json!({"scopes": ["read"], "tpm": null})),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.json()["tpm"], Value::Null);
    assert_eq!(
        call(&d1, key, "POST", "/api/tasks", Some(tool_task()))
            .await
            .status,
        403
    );

    let revoked_at = Instant::now();
    let del = call(
        &d1,
        d1.secret(),
        "DELETE",
        &format!("/api/tenants/{id}"),
        None,
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.text());
    // At once on the dispatcher that revoked it.
    let r1 = call(&d1, key, "GET", "/api/queues", None).await;
    assert_eq!(r1.status, 401, "{}", r1.text());
    assert_eq!(r1.json()["error"]["code"], "unauthorized");
    // Within the cache time on the other one.
    poll_until(
        "the revoked key to be refused on the second dispatcher",
        Duration::from_secs(10),
        || async { (call(&d2, key, "GET", "/api/queues", None).await.status == 401).then_some(()) },
    )
    .await;
    let took = revoked_at.elapsed();
    // The bound plus a margin for a loaded machine (the poll runs every ~50 ms).
    assert!(
        took < Duration::from_millis(cache_ms + 1500),
        "took {took:?}"
    );
    // In OpenAI's shape under /v1; the key's task lives on.
    let v1 = call(&d2, key, "GET", "/v1/models", None).await;
    assert_eq!(v1.status, 401);
    assert_eq!(v1.json()["error"]["code"], "invalid_api_key");
    assert_eq!(
        call(&d1, d1.secret(), "GET", &format!("/api/tasks/{task}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &d1,
            d1.secret(),
            "DELETE",
            &format!("/api/tenants/{id}"),
            None
        )
        .await
        .status,
        404
    );
    println!(
        "revocation reached the second dispatcher after {took:?} (TENANT_CACHE_MS={cache_ms})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_rpm_a_tenant_gets_429_with_retry_after_and_others_do_not() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let (id, limited) =
        create_tenant(&d, json!({"name": "small", "scopes": ["submit"], "rpm": 3})).await;
    let (_, other) = create_tenant(&d, json!({"name": "big", "scopes": ["submit"]})).await;
    for _ in 0..2 {
        submit(&d, &limited).await;
    }
    // A batch counts each of its tasks: two do not fit in the one left.
    let batch = json!({"tasks": [tool_task(), tool_task()]});
    let over = call(&d, &limited, "POST", "/api/tasks/batch", Some(batch)).await;
    assert_eq!(over.status, 429, "{}", over.text());
    submit(&d, &limited).await;
    let over = call(&d, &limited, "POST", "/api/tasks", Some(tool_task())).await;
    assert_eq!(over.status, 429, "{}", over.text());
    assert_eq!(
        over.json()["error"]["code"],
        "rate_limited",
        "{}",
        over.text()
    );
    let retry: u64 = over
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The same quota at /v1, in OpenAI's shape.
    let v1 = json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]});
    let v1 = call(&d, &limited, "POST", "/v1/chat/completions", Some(v1)).await;
    assert_eq!(v1.status, 429, "{}", v1.text());
    assert_eq!(v1.json()["error"]["code"], "rate_limit_exceeded");
    assert!(v1.header("retry-after").is_some());
    // Another tenant and the admin key are not limited by it.
    for _ in 0..5 {
        submit(&d, &other).await;
        submit(&d, d.secret()).await;
    }
    // Refusals did not count: exactly the 3 admitted tasks are in the window.
    let mut con = connection(redis.url()).await;
    let used: u64 = redis::cmd("GET")
        .arg(switchyard_shared::keys::Keys::new(&prefix).tenant_rpm(&id))
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(used, 3);
    let metrics = call(&d, "", "GET", "/metrics", None).await.text();
    assert!(
        metrics.contains(&format!(
            "switchyard_tenant_rate_limited_total{{tenant=\"{id}\"}} 3"
        )),
        "{metrics}"
    );
}
