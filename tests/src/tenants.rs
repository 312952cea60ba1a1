//! Tenant keys in end-to-end tests (issue 21): requests with any bearer token, tenants created
//! with the admin secret, tool tasks enqueued as a tenant.

use serde_json::{Value, json};

use crate::services::{Dispatcher, Response};

/// Sends `method path` with bearer `token` and an optional JSON body.
pub async fn call(
    d: &Dispatcher,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Response {
    let bytes = body.map(|b| serde_json::to_vec(&b).expect("a JSON value always serializes"));
    d.raw_request(
        method,
        path,
        Some(token),
        &[("content-type", "application/json")],
        bytes,
    )
    .await
}

/// Creates a tenant from `body` with the admin secret (it must answer 201): its id and key.
pub async fn create_tenant(d: &Dispatcher, body: Value) -> (String, String) {
    let r = call(d, d.secret(), "POST", "/api/tenants", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let text = |f: &str| v[f].as_str().expect("id and key").to_owned();
    (text("id"), text("key"))
}

/// The body of an `echo` tool task.
pub fn tool_task() -> Value {
    json!({"kind": "tool", "payload": {"tool": "echo", "args": {"n": 1}}})
}

/// Enqueues a tool task with `token`, which must be accepted (202); its id.
pub async fn submit_as(d: &Dispatcher, token: &str) -> String {
    let r = call(d, token, "POST", "/api/tasks", Some(tool_task())).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().expect("a task id").to_owned()
}
