//! `sy tenants ls|create|revoke` against the tenants API of issue 21 (`POST`/`GET
//! /api/tenants`, `DELETE /api/tenants/{id}`), both output modes. That API is built on another
//! branch and merged with it; they are
//! written against the routes and shapes the issue defines (201 `{id, name, key, …}`; a `submit`
//! key may enqueue and may not pause, 403; a revoked key is 401).

use serde_json::Value;
use switchyard_tests::cli::sy;
use switchyard_tests::{shared_redis, spawn_dispatcher, spawn_worker, unique_prefix};

fn tenant_ids(v: &Value) -> Vec<String> {
    v["tenants"]
        .as_array()
        .or(v.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_created_listed_used_and_revoked_in_both_modes() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w = spawn_worker(redis.url(), &prefix, "ten-w1", &[]).await;

    let created = sy(
        &d,
        &[
            "tenants", "create", "acme", "--scopes", "submit", "--rpm", "600", "--json",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{created:?}");
    let t = created.json();
    let id = t["id"].as_str().expect("tenant id").to_owned();
    let key = t["key"].as_str().expect("the key, shown once").to_owned();
    let human = sy(&d, &["tenants", "create", "globex", "--scopes", "read"]).await;
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("globex") && human.stderr.contains("shown only this once"),
        "{human:?}"
    );

    let ls = sy(&d, &["tenants", "ls"]).await;
    assert_eq!(ls.code, 0, "{ls:?}");
    assert!(
        ls.stdout.starts_with("ID") && ls.stdout.contains(&id) && ls.stdout.contains("acme"),
        "{ls:?}"
    );
    assert!(!ls.stdout.contains(&key), "the key is never listed: {ls:?}");
    let v = sy(&d, &["tenants", "ls", "--json"]).await.json();
    assert!(tenant_ids(&v).contains(&id), "{v}");

    // The tenant's key: submit yes, pause no (403: exit 1 naming the scope).
    let as_tenant = |args: &[&str]| {
        let mut a = vec!["--token", key.as_str()];
        a.extend_from_slice(args);
        a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()
    };
    let args = as_tenant(&["enqueue", "--wait", "tool", "echo"]);
    let out = sy(&d, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 0, "{out:?}");
    let args = as_tenant(&["pause", "tool"]);
    let out = sy(&d, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("403") && out.stderr.contains("admin"),
        "{out:?}"
    );

    let out = sy(&d, &["tenants", "revoke", &id]).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, format!("tenant {id} revoked").as_str()),
        "{out:?}"
    );
    let args = as_tenant(&["queues"]);
    let out = sy(&d, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");
    let out = sy(&d, &["tenants", "revoke", "no-such-tenant", "--json"]).await;
    assert_eq!(out.code, 4, "{out:?}");
}
