//! The `dispatcher` and `worker` binaries as test services: started with the environment a test
//! needs on free loopback ports, waited for until `/health` answers, and talked to over HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use switchyard_harness::{Readiness, http_ok, start_ready};

use crate::process::spec;
use crate::sse::{self, SseStream};
use crate::{POLL_INTERVAL, Proc, bin_path, free_port, poll_until};

/// How long a binary may take to answer `/health` after start.
const BINARY_START_DEADLINE: Duration = Duration::from_secs(30);

/// Merges `base` and `extra` (extra wins) into an environment.
fn merge_env(base: Vec<(&str, String)>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> =
        base.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// Borrows an owned environment (such as [`ProviderServer::worker_env`](crate::ProviderServer::worker_env))
/// as the pairs [`spawn_worker`] and [`spawn_dispatcher`] take.
pub fn env_pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("cannot build an HTTP client")
}

/// Starts `bin_path(bin)` with `env` and waits until `GET health_url` answers 200. When the
/// caller fixed no port (`port_var` absent), a free one is picked, and a start that failed
/// because someone took it in the meantime is retried on another.
async fn spawn_healthy(
    bin: &str,
    label: &str,
    port_var: &str,
    port_value: impl Fn(u16) -> String,
    env: &BTreeMap<String, String>,
    health_url: impl Fn(&BTreeMap<String, String>) -> String,
) -> (Proc, BTreeMap<String, String>) {
    let program = bin_path(bin);
    let client = http_client();
    let port_fixed = env.contains_key(port_var);
    let policy = Readiness {
        attempts: if port_fixed { 1 } else { 3 },
        deadline: BINARY_START_DEADLINE,
        poll: POLL_INTERVAL,
    };
    let launch = || {
        let mut env = env.clone();
        if !port_fixed {
            env.insert(port_var.to_owned(), port_value(free_port()));
        }
        let url = health_url(&env);
        let proc = spec(label, &program).envs(env.clone()).start()?;
        Ok((proc, url, env))
    };
    match start_ready(&policy, launch, async |url: &str| {
        http_ok(&client, url).await
    })
    .await
    {
        Ok(started) => (started.proc.into(), started.value),
        Err(e) => panic!("{e}"),
    }
}

/// An HTTP answer of the dispatcher, undecoded.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON, or `Value::Null` if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A running `dispatcher` process answering on its own loopback port.
#[derive(Debug)]
pub struct Dispatcher {
    /// The process.
    pub proc: Proc,
    addr: String,
    secret: String,
    client: reqwest::Client,
}

/// Starts the dispatcher on `redis_url` with keys under `prefix` and waits until `/health`
/// answers 200. Sets REDIS_URL, QUEUE_PREFIX, DISPATCHER_ADDR (a free loopback port),
/// ROOT_NODE_SECRET (random) and LOG_LEVEL=info; `extra_env` adds to or overrides them.
pub async fn spawn_dispatcher(
    redis_url: &str,
    prefix: &str,
    extra_env: &[(&str, &str)],
) -> Dispatcher {
    let secret = format!("test-secret-{:016x}", rand::random::<u64>());
    let env = merge_env(
        vec![
            ("REDIS_URL", redis_url.to_owned()),
            ("QUEUE_PREFIX", prefix.to_owned()),
            ("ROOT_NODE_SECRET", secret),
            ("LOG_LEVEL", "info".to_owned()),
        ],
        extra_env,
    );
    let (proc, env) = spawn_healthy(
        "dispatcher",
        "dispatcher",
        "DISPATCHER_ADDR",
        |port| format!("127.0.0.1:{port}"),
        &env,
        |env| format!("http://{}/health", env["DISPATCHER_ADDR"]),
    )
    .await;
    Dispatcher {
        proc,
        addr: env["DISPATCHER_ADDR"].clone(),
        secret: env.get("ROOT_NODE_SECRET").cloned().unwrap_or_default(),
        client: http_client(),
    }
}

impl Dispatcher {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token of `/api/*`.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Two `/api/chat` turns in session `s`: asserts the second answer is turn 2 and carries the
    /// first message (the session's history reached the provider).
    pub async fn assert_chat_keeps_history(&self) {
        let (s, first) = self
            .request(
                "POST",
                "/api/chat",
                Some(serde_json::json!({"session_id": "s", "message": "I am Ada"})),
            )
            .await;
        assert_eq!(s, 200, "{first}");
        let (s, second) = self
            .request(
                "POST",
                "/api/chat",
                Some(serde_json::json!({"session_id": "s", "message": "who?"})),
            )
            .await;
        assert_eq!(s, 200, "{second}");
        let answer = second["response"].as_str().unwrap_or_default();
        assert!(
            answer.contains("turn 2") && answer.contains("I am Ada"),
            "{answer}"
        );
    }

    /// Sends `method path` with the bearer token and an optional JSON body; answers the status
    /// and the JSON body (`Value::Null` when the body is not JSON).
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut headers = vec![];
        let bytes = body.map(|b| {
            headers.push(("content-type", "application/json"));
            serde_json::to_vec(&b).expect("a JSON value always serializes")
        });
        let r = self
            .raw_request(method, path, Some(&self.secret), &headers, bytes)
            .await;
        (r.status, r.json())
    }

    /// `POST /api/tasks` with `body`, which must be accepted (202); the task id.
    pub async fn submit(&self, body: Value) -> String {
        let (status, v) = self.request("POST", "/api/tasks", Some(body)).await;
        assert_eq!(status, 202, "enqueue answered {status}: {v}");
        v["id"].as_str().expect("task id").to_owned()
    }

    /// `POST /api/tasks?wait_ms=30000` with `body`: the finished task (it must finish within
    /// the 30 s).
    pub async fn submit_and_wait(&self, body: Value) -> Value {
        let (status, task) = self
            .request("POST", "/api/tasks?wait_ms=30000", Some(body))
            .await;
        assert_eq!(status, 200, "the task finished within 30 s: {task}");
        task
    }

    /// `GET /api/tasks/{id}`, which must answer 200.
    pub async fn task(&self, id: &str) -> Value {
        let (status, v) = self.request("GET", &format!("/api/tasks/{id}"), None).await;
        assert_eq!(status, 200, "GET task answered {status}: {v}");
        v
    }

    /// Polls task `id` until it is in `state`; panics after `within`.
    pub async fn wait_state(&self, id: &str, state: &str, within: Duration) -> Value {
        poll_until(&format!("task {id} to be {state}"), within, || async {
            let t = self.task(id).await;
            (t["state"] == state).then_some(t)
        })
        .await
    }

    /// A streamed `POST /api/chat` of `body`, opened (its status checked).
    pub async fn chat_stream(&self, body: Value) -> SseStream {
        let url = format!("{}/api/chat", self.base_url());
        match sse::open("POST", &url, &self.secret, Some(&body), None).await {
            Ok(s) => s,
            Err((status, v)) => panic!("POST /api/chat stream answered {status}: {v}"),
        }
    }

    /// `GET /api/tasks/{id}/stream`, resuming after event `last` when given.
    pub async fn task_stream(&self, id: &str, last: Option<&str>) -> SseStream {
        let url = format!("{}/api/tasks/{id}/stream", self.base_url());
        match sse::open("GET", &url, &self.secret, None, last).await {
            Ok(s) => s,
            Err((status, v)) => panic!("GET stream answered {status}: {v}"),
        }
    }

    /// Sends `method path` with exactly the given bearer `token` (none: no Authorization
    /// header), extra `headers`, and raw `body` bytes, for bad-input tests.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|_| panic!("invalid HTTP method {method:?} in a test"));
        let url = format!("{}{path}", self.base_url());
        let mut req = self.client.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("HTTP request to {url} failed: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading the answer of {url} failed: {e}"))
            .to_vec();
        Response {
            status,
            headers,
            body,
        }
    }
}

/// A running `worker` process with its health server on a loopback port.
#[derive(Debug)]
pub struct Worker {
    /// The process.
    pub proc: Proc,
    id: String,
    port: u16,
    client: reqwest::Client,
}

/// Starts a worker with consumer name `id` on `redis_url` with keys under `prefix` and waits
/// until its `/health` answers 200. Sets REDIS_URL, QUEUE_PREFIX, WORKER_ID, WORKER_PORT (free),
/// WORKER_BIND=127.0.0.1 and LOG_LEVEL=info; `extra_env` adds to or overrides them.
pub async fn spawn_worker(
    redis_url: &str,
    prefix: &str,
    id: &str,
    extra_env: &[(&str, &str)],
) -> Worker {
    let env = merge_env(
        vec![
            ("REDIS_URL", redis_url.to_owned()),
            ("QUEUE_PREFIX", prefix.to_owned()),
            ("WORKER_ID", id.to_owned()),
            ("WORKER_BIND", "127.0.0.1".to_owned()),
            ("LOG_LEVEL", "info".to_owned()),
        ],
        extra_env,
    );
    let (proc, env) = spawn_healthy(
        "worker",
        &format!("worker-{id}"),
        "WORKER_PORT",
        |port| port.to_string(),
        &env,
        |env| format!("http://127.0.0.1:{}/health", env["WORKER_PORT"]),
    )
    .await;
    let port = env["WORKER_PORT"]
        .parse()
        .expect("WORKER_PORT given to a test worker is a port number");
    Worker {
        proc,
        id: env.get("WORKER_ID").cloned().unwrap_or_default(),
        port,
        client: http_client(),
    }
}

impl Worker {
    /// Its consumer name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Port of its health server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET path` on its health server; the status and JSON body (`Value::Null` if not JSON),
    /// or `None` if it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let r = self.client.get(&url).send().await.ok()?;
        let status = r.status().as_u16();
        let body = r.bytes().await.ok()?;
        Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_env_overrides_the_defaults() {
        let env = merge_env(
            vec![
                ("LOG_LEVEL", "info".to_owned()),
                ("REDIS_URL", "x".to_owned()),
            ],
            &[("LOG_LEVEL", "debug"), ("WORKER_QUEUES", "tool")],
        );
        assert_eq!(env["LOG_LEVEL"], "debug");
        assert_eq!(env["REDIS_URL"], "x");
        assert_eq!(env["WORKER_QUEUES"], "tool");
    }
}
