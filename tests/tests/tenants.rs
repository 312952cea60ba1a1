//! Tenant keys (issue 21) through the real dispatcher binary and a real Redis: a key's life
//! (create, use, change, revoke → 401 at once here and within `TENANT_CACHE_MS` on a second
//! dispatcher; Redis never holds the key) and the `rpm` quota (429 with `Retry-After`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::tenants::{call, create_tenant, submit_as, tool_task};
use switchyard_tests::{
    Dispatcher, connection, poll_until, shared_redis, spawn_dispatcher, unique_prefix,
};

/// Asserts that no key name or value (strings, hashes) under `prefix` holds `key`.
async fn assert_redis_holds_no(url: &str, prefix: &str, key: &str) {
    let mut con = connection(url).await;
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert!(!names.is_empty());
    for k in &names {
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
        assert!(!k.contains(key) && !text.contains(key), "{k} holds the key");
    }
}

/// Creates a tenant with two scopes and two quotas on `d`, checking the answer: (id, key).
async fn create_team(d: &Dispatcher) -> (String, String) {
    let r = call(
        d,
        d.secret(),
        "POST",
        "/api/tenants",
        Some(
            json!({"name": "team a", "scopes": ["submit", "read"], "tpm": 1000, "max_running": 2}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let text = |f: &str| created[f].as_str().expect("id and key").to_owned();
    assert_eq!(created["scopes"], json!(["submit", "read"]));
    assert_eq!(
        (created["rpm"].clone(), created["tpm"].clone()),
        (Value::Null, json!(1000))
    );
    (text("id"), text("key"))
}

/// Revokes tenant `id` on `d1`: its `key` must answer 401 on `d1` at once and on `d2` within
/// `cache_ms` (plus a margin for a loaded machine); how long `d2` took.
async fn revoke_and_wait(
    d1: &Dispatcher,
    d2: &Dispatcher,
    id: &str,
    key: &str,
    cache_ms: u64,
) -> Duration {
    let revoked_at = Instant::now();
    let del = call(
        d1,
        d1.secret(),
        "DELETE",
        &format!("/api/tenants/{id}"),
        None,
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.text());
    // At once on the dispatcher that revoked it.
    let r1 = call(d1, key, "GET", "/api/queues", None).await;
    assert_eq!(r1.status, 401, "{}", r1.text());
    assert_eq!(r1.json()["error"]["code"], "unauthorized");
    // Within the cache time on the other one.
    poll_until(
        "the revoked key to be refused on the second dispatcher",
        Duration::from_secs(10),
        || async { (call(d2, key, "GET", "/api/queues", None).await.status == 401).then_some(()) },
    )
    .await;
    let took = revoked_at.elapsed();
    // The bound plus a margin for a loaded machine (the poll runs every ~50 ms).
    assert!(
        took < Duration::from_millis(cache_ms + 1500),
        "took {took:?}"
    );
    took
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
    let (id, key) = &create_team(&d1).await;
    let (id, key) = (id.as_str(), key.as_str());

    // Listed without the key; Redis holds no copy of it anywhere.
    let list = call(&d1, d1.secret(), "GET", "/api/tenants", None).await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(key), "{}", list.text());
    assert_eq!(list.json()["tenants"][0]["id"], json!(id));
    assert_redis_holds_no(redis.url(), &prefix, key).await;

    // Used on both dispatchers (the second now remembers it).
    let task = submit_as(&d1, key).await;
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

    let took = revoke_and_wait(&d1, &d2, id, key, cache_ms).await;
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
        submit_as(&d, &limited).await;
    }
    // A batch counts each of its tasks: two do not fit in the one left.
    let batch = json!({"tasks": [tool_task(), tool_task()]});
    let over = call(&d, &limited, "POST", "/api/tasks/batch", Some(batch)).await;
    assert_eq!(over.status, 429, "{}", over.text());
    submit_as(&d, &limited).await;
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
        submit_as(&d, &other).await;
        submit_as(&d, d.secret()).await;
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
