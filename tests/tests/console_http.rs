//! The web console over plain HTTP against the real dispatcher (and worker) binaries: a session
//! expires, every bad console request gets its documented error (never a 5xx), and retry all
//! asks with the count before it replays while delete removes a dead letter for good.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::console;
use switchyard_tests::{poll_until, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_expires_and_then_leads_to_the_login_page() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[("UI_SESSION_TTL_S", "1")]).await;
    let client = console::client();
    let (set, cookie, _) = console::login(&d, &client, d.secret()).await;
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=1"),
        "{set}"
    );
    let page = || async {
        let r = client
            .get(format!("{}/ui/workers", d.base_url()))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("page");
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (r.status().as_u16(), location)
    };
    assert_eq!(page().await.0, 200);
    let began = Instant::now();
    poll_until("the session to expire", Duration::from_secs(10), || async {
        (page().await == (303, Some("/ui/login?expired=1".to_owned()))).then_some(())
    })
    .await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}

/// Each bad console request (method, path, form body) and the status it must get.
fn bad_cases(queued: &str, csrf: &str) -> Vec<(&'static str, String, Option<String>, u16)> {
    vec![
        ("GET", "/ui/queues/tool?state=nope".into(), None, 400),
        ("GET", "/ui/queues/tool?after=12".into(), None, 400),
        (
            "GET",
            "/ui/queues/tool?state=delayed&after=-1".into(),
            None,
            400,
        ),
        ("GET", "/ui/queues/tool?n=0".into(), None, 400),
        ("GET", "/ui/queues/tool?n=101".into(), None, 400),
        ("GET", "/ui/queues/tool?n=abc".into(), None, 400),
        ("GET", "/ui/queues/tool?bogus=1".into(), None, 400),
        ("GET", "/ui/queues/nope".into(), None, 404),
        ("GET", "/ui/queues/No%20Way".into(), None, 400),
        ("GET", "/ui/queues/%FF".into(), None, 400),
        ("GET", "/ui/tasks/nope".into(), None, 404),
        ("GET", "/ui/tasks/tool-1-0".into(), None, 404),
        ("GET", "/ui/tasks/nope/stream".into(), None, 404),
        ("GET", "/ui/dead?before=xyz".into(), None, 400),
        ("GET", "/ui/dead?queue=nope".into(), None, 404),
        ("GET", "/ui/nowhere".into(), None, 404),
        ("DELETE", "/ui/overview".into(), None, 405),
        (
            "POST",
            format!("/ui/dead/{queued}/retry"),
            Some(format!("csrf={csrf}")),
            409,
        ),
        (
            "POST",
            format!("/ui/dead/{queued}/delete"),
            Some(format!("csrf={csrf}")),
            409,
        ),
        (
            "POST",
            "/ui/dead/nope/delete".into(),
            Some(format!("csrf={csrf}")),
            404,
        ),
        (
            "POST",
            "/ui/queues/nope/pause".into(),
            Some(format!("csrf={csrf}")),
            404,
        ),
        (
            "POST",
            "/ui/tenants".into(),
            Some(format!("csrf={csrf}&name=")),
            400,
        ),
        (
            "POST",
            "/ui/tenants".into(),
            Some(format!("csrf={csrf}&name=x&scopes=root")),
            400,
        ),
        (
            "POST",
            "/ui/tenants".into(),
            Some(format!("csrf={csrf}&name=x&scopes=read&rpm=0")),
            400,
        ),
        (
            "POST",
            "/ui/tenants/tn-nope".into(),
            Some(format!("csrf={csrf}&rpm=5")),
            404,
        ),
        (
            "POST",
            "/ui/tenants/tn-nope/revoke".into(),
            Some(format!("csrf={csrf}")),
            404,
        ),
        (
            "POST",
            "/ui/queues/tool/pause".into(),
            Some("csrf=%FF%FE".into()),
            403,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_console_requests_get_documented_errors_never_a_5xx() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let client = console::client();
    let (_, cookie, csrf) = console::login(&d, &client, d.secret()).await;
    // A task that is not dead, for the actions on dead letters.
    let queued = d
        .submit(json!({"kind": "tool", "payload": {"tool": "echo", "args": {}}}))
        .await;
    let cases = bad_cases(&queued, &csrf);
    for (method, path, body, want) in cases {
        let url = format!("{}{path}", d.base_url());
        let req = match method {
            "GET" => client.get(url),
            "DELETE" => client.delete(url),
            _ => client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.unwrap_or_default()),
        };
        let r = req.header("cookie", &cookie).send().await.expect("request");
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(
            kind.starts_with("application/json"),
            "{method} {path}: {kind}"
        );
        let v: Value = serde_json::from_str(&text).expect("JSON error");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    // Without a session, or with a made-up one, every page and action leads to the login page.
    for cookie in [
        None,
        Some(format!("sy_session={}", "ab".repeat(32))),
        Some("sy_session=x".into()),
    ] {
        for (method, path) in [
            ("GET", "/ui/overview"),
            ("GET", "/ui/live"),
            ("POST", "/ui/queues/tool/pause"),
        ] {
            let url = format!("{}{path}", d.base_url());
            let mut req = if method == "GET" {
                client.get(url)
            } else {
                client.post(url)
            };
            if let Some(c) = &cookie {
                req = req.header("cookie", c);
            }
            let r = req.send().await.expect("request");
            assert_eq!(r.status(), 303, "{method} {path} with {cookie:?}");
            assert_eq!(r.headers()["location"], "/ui/login?expired=1");
        }
    }
    // A body over MAX_BODY_BYTES: 413, unless the server's close after the limit (with the rest
    // of the body unread) reset the connection before the client read the answer.
    let big = format!("csrf={csrf}&pad={}", "x".repeat(2 << 20));
    let sent = client
        .post(format!("{}/ui/queues/tool/pause", d.base_url()))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await;
    if let Ok(r) = sent {
        assert_eq!(r.status(), 413);
    }
    let (_, q) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(
        q["paused"], false,
        "no refused request changed anything: {q}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_all_confirms_with_the_count_and_delete_removes_a_dead_letter_for_good() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let _w = spawn_worker(redis.url(), &prefix, "ui-dead", &[]).await;
    let client = console::client();
    let (_, cookie, csrf) = console::login(&d, &client, d.secret()).await;
    let post = |path: String, body: String| {
        let req = client
            .post(format!("{}{path}", d.base_url()))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move { req.send().await.expect("post") }
    };
    let mut dead = Vec::new();
    for _ in 0..3 {
        let id = d
            .submit(
                json!({"kind": "tool", "max_attempts": 1, "payload": {"tool": "fail", "args": {}}}),
            )
            .await;
        d.wait_state(&id, "dead", LONG).await;
        dead.push(id);
    }
    // Without `confirm`: a page that asks, with the count, and changes nothing.
    let r = post("/ui/dead/retry-all".into(), format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("page");
    assert!(page.contains(r#"<b id="confirm-count">3</b>"#), "{page}");
    assert_eq!(d.task(&dead[0]).await["state"], "dead");
    // Confirmed, with the queue paused so the replayed tasks stay queued.
    let (s, _) = d.request("POST", "/api/queues/tool/pause", None).await;
    assert_eq!(s, 200);
    let r = post(
        "/ui/dead/retry-all".into(),
        format!("csrf={csrf}&confirm=3"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/ui/dead?done=3+dead+letters+queued+again"
    );
    for id in &dead {
        assert_eq!(d.task(id).await["state"], "queued", "{id}");
    }
    let (_, q) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(
        (q["dead"].clone(), q["counts"]["replayed"].clone()),
        (json!(0), json!(3)),
        "{q}"
    );
    let (s, _) = d.request("POST", "/api/queues/tool/resume", None).await;
    assert_eq!(s, 200);
    for id in &dead {
        d.wait_state(id, "dead", LONG).await;
    }
    // Delete one for good: its record goes, the other two stay.
    let r = post(
        format!("/ui/dead/{}/delete", dead[0]),
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status(), 303);
    let (s, _) = d
        .request("GET", &format!("/api/tasks/{}", dead[0]), None)
        .await;
    assert_eq!(s, 404);
    let (_, list) = d.request("GET", "/api/dead?queue=tool", None).await;
    assert_eq!(list["count"], 2, "{list}");
    assert!(!list.to_string().contains(&dead[0]), "{list}");
}
