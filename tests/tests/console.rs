//! The web console (issue 22 item 1) driven through a real headless Chromium (Debian's
//! `chromium` and `chromedriver`, over WebDriver) against the real dispatcher and worker
//! binaries and a real redis-server: log in (a wrong key refused, the cookie `HttpOnly` and
//! `SameSite=Strict`), watch a task appear live on the overview without a reload, open it,
//! watch a streamed chat's text grow, pause a queue (the worker really takes nothing from it),
//! retry a dead letter, resume, create a read-only tenant and log in with its key: no action is
//! offered and the server refuses the forged request (403 without and with its CSRF token).
//! Screenshots of each page go to `target/ui-screenshots/`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::console;
use switchyard_tests::provider_server::Wire;
use switchyard_tests::webdriver::{Browser, screenshot_dir};
use switchyard_tests::{
    Dispatcher, ProviderServer, Reply, env_pairs, poll_until, shared_redis, spawn_dispatcher,
    spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);
/// How long a task enqueued on a paused queue must stay untouched (as in `pause.rs`).
const QUIET: Duration = Duration::from_millis(1500);

fn shot(name: &str) -> std::path::PathBuf {
    screenshot_dir().join(format!("{name}.png"))
}

async fn login(b: &Browser, d: &Dispatcher, key: &str) {
    b.goto(&format!("{}/ui/login", d.base_url())).await;
    b.type_into("#key", key).await;
    b.click("#login").await;
}

/// A POST to the console with only `cookie` (and `csrf` when given), as another site would
/// forge it: the status and the `Location`.
async fn forged(d: &Dispatcher, path: &str, cookie: &str, csrf: Option<&str>) -> (u16, String) {
    let client = console::client();
    let body = csrf.map_or_else(String::new, |c| format!("csrf={c}"));
    let r = client
        .post(format!("{}{path}", d.base_url()))
        .header("cookie", format!("sy_session={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("forged request");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status().as_u16(), location)
}

async fn session_cookie(b: &Browser) -> Value {
    b.cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "sy_session")
        .expect("a session cookie")
}

async fn csrf_of_page(b: &Browser) -> String {
    let v = b
        .run(
            "return document.querySelector('input[name=csrf]').value;",
            json!([]),
        )
        .await;
    v.as_str().expect("the page's CSRF token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser_logs_in_watches_live_acts_and_refuses_a_read_only_key() {
    let provider = ProviderServer::start(Reply::tokens(40).delay(Duration::from_millis(120))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = provider.worker_env(Wire::OpenAi);
    let _w = spawn_worker(redis.url(), &prefix, "ui-w1", &env_pairs(&env)).await;
    let b = Browser::start(1280, 860).await;
    let base = d.base_url();

    // Without a session every page leads to the login page; a wrong key is refused.
    b.goto(&format!("{base}/ui/overview")).await;
    assert!(b.url().await.contains("/ui/login"), "{}", b.url().await);
    login(&b, &d, "sy_wrong").await;
    b.wait_for("#refused", LONG).await;
    b.screenshot(&shot("login")).await;

    // The admin key: the overview, with an HttpOnly, SameSite=Strict cookie.
    login(&b, &d, d.secret()).await;
    b.wait_for("#queues-table", LONG).await;
    let cookie = session_cookie(&b).await;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let admin_cookie = cookie["value"].as_str().expect("cookie value").to_owned();

    // A task appears live: the page is not reloaded (a mark set on it survives).
    b.run("window.__kept = 1;", json!([])).await;
    let live = d
        .submit(json!({"kind": "tool", "payload": {"tool": "sleep", "args": {"ms": 1500}}}))
        .await;
    let css = format!("#running [data-task=\"{live}\"]");
    b.wait_for(&css, LONG).await;
    b.wait_for(&format!("#finished [data-task=\"{live}\"]"), LONG)
        .await;
    assert_eq!(b.run("return window.__kept;", json!([])).await, 1);
    // The next snapshot counts it in the last minute's throughput.
    poll_until("the task counted in the chart", LONG, || async {
        (!b.text_of("#rate").await.starts_with("0 ")).then_some(())
    })
    .await;
    b.wait_for("#chart-svg", LONG).await;
    b.screenshot(&shot("overview")).await;

    // Open it from the overview.
    b.click(&format!("#finished [data-task=\"{live}\"] a"))
        .await;
    assert_eq!(b.text_of("#task-state").await, "succeeded");
    b.screenshot(&shot("task-tool")).await;

    // A streamed chat's text grows on its page.
    let chat = d
        .submit(json!({"kind": "chat", "payload": {"session_id": "ui-s1", "message": "count"}}))
        .await;
    b.goto(&format!("{base}/ui/tasks/{chat}")).await;
    let mut seen: Vec<usize> = Vec::new();
    let answer = Reply::tokens(40).answer();
    let began = Instant::now();
    loop {
        let text = b.text_of("#output").await;
        if seen.last() != Some(&text.len()) {
            seen.push(text.len());
        }
        if text == answer || began.elapsed() > LONG {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.text_of("#output").await, answer, "lengths seen: {seen:?}");
    assert!(
        seen.iter()
            .filter(|n| **n > 0 && **n < answer.len())
            .count()
            >= 2,
        "the text grew in steps: {seen:?}"
    );
    poll_until("the page says done", LONG, || async {
        (b.text_of("#output-state").await == "done").then_some(())
    })
    .await;
    b.screenshot(&shot("task-chat")).await;

    // A dead letter.
    let dead = d
        .submit(json!({"kind": "tool", "max_attempts": 1, "payload": {"tool": "fail", "args": {}}}))
        .await;
    d.wait_state(&dead, "dead", LONG).await;

    // Pause the tool queue from its page: the worker takes nothing from it.
    b.goto(&format!("{base}/ui/queues/tool")).await;
    b.click("button.pause").await;
    assert_eq!(b.text_of("#queue-state").await, "paused");
    let (_, q) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(q["paused"], true, "{q}");
    let waiting = d
        .submit(json!({"kind": "tool", "payload": {"tool": "echo", "args": {"n": 7}}}))
        .await;

    // Retry the dead letter while the queue is paused: it is queued and stays there.
    b.goto(&format!("{base}/ui/dead")).await;
    b.wait_for(&format!("a[href=\"/ui/tasks/{dead}\"]"), LONG)
        .await;
    b.screenshot(&shot("dead")).await;
    b.click(&format!("form[action=\"/ui/dead/{dead}/retry\"] button"))
        .await;
    assert_eq!(b.text_of("#task-state").await, "queued");
    tokio::time::sleep(QUIET).await;
    for id in [&waiting, &dead] {
        assert_eq!(
            d.task(id).await["state"],
            "queued",
            "{id} untouched while paused"
        );
    }
    b.goto(&format!("{base}/ui/queues/tool?state=stream")).await;
    b.wait_for(&format!("#tasks a[href=\"/ui/tasks/{waiting}\"]"), LONG)
        .await;
    b.screenshot(&shot("queue-paused")).await;

    // Resume: what waited runs.
    b.click("button.resume").await;
    assert_eq!(b.text_of("#queue-state").await, "running");
    d.wait_state(&waiting, "succeeded", LONG).await;
    d.wait_state(&dead, "dead", LONG).await;
    let (_, q) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(q["counts"]["replayed"], 1, "{q}");

    b.goto(&format!("{base}/ui/workers")).await;
    b.wait_for("#workers", LONG).await;
    assert!(b.text_of("#workers").await.contains("ui-w1"));
    b.screenshot(&shot("workers")).await;

    // An admin action without the CSRF token is refused, even with the admin's cookie.
    let (s, _) = forged(&d, "/ui/queues/tool/pause", &admin_cookie, None).await;
    assert_eq!(s, 403);
    let (s, _) = forged(&d, "/ui/queues/tool/pause", &admin_cookie, Some("00")).await;
    assert_eq!(s, 403);

    // A read-only tenant, created here; its key is shown once.
    b.goto(&format!("{base}/ui/tenants")).await;
    b.type_into("#tenant-name", "auditors").await;
    b.run(
        "document.querySelector('input[value=submit]').checked = false;\
         document.querySelector('input[value=read]').checked = true;",
        json!([]),
    )
    .await;
    b.click("#create-tenant").await;
    let read_key = b.text_of("#new-key").await;
    assert!(read_key.starts_with("sy_"), "{read_key}");
    b.screenshot(&shot("tenants")).await;

    b.click("#logout").await;
    b.wait_for("#key", LONG).await;
    let (s, location) = forged(&d, "/ui/queues/tool/pause", &admin_cookie, None).await;
    assert_eq!(
        (s, location.as_str()),
        (303, "/ui/login?expired=1"),
        "logged out"
    );

    // The read-only key sees the pages and no action.
    login(&b, &d, &read_key).await;
    b.wait_for("#queues-table", LONG).await;
    assert!(b.text_of("#who").await.contains("auditors"));
    b.goto(&format!("{base}/ui/queues/tool?state=dead")).await;
    b.wait_for(&format!("#tasks a[href=\"/ui/tasks/{dead}\"]"), LONG)
        .await;
    assert!(b.find("button.pause").await.is_none());
    b.goto(&format!("{base}/ui/dead")).await;
    b.wait_for(&format!("a[href=\"/ui/tasks/{dead}\"]"), LONG)
        .await;
    assert!(b.find("button.retry").await.is_none());
    assert!(b.find("#retry-all").await.is_none());
    b.screenshot(&shot("dead-read-only")).await;

    // The server refuses what the page does not offer: with its cookie, without and with its
    // CSRF token.
    let read_cookie = session_cookie(&b).await["value"]
        .as_str()
        .expect("cookie")
        .to_owned();
    let read_csrf = csrf_of_page(&b).await;
    for csrf in [None, Some(read_csrf.as_str())] {
        for path in [
            "/ui/queues/tool/pause".to_owned(),
            format!("/ui/dead/{dead}/retry"),
            "/ui/dead/retry-all".to_owned(),
            format!("/ui/dead/{dead}/delete"),
            "/ui/tenants".to_owned(),
        ] {
            let (s, _) = forged(&d, &path, &read_cookie, csrf).await;
            assert_eq!(s, 403, "{path} with csrf {csrf:?}");
        }
    }
    let (_, q) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(q["paused"], false, "{q}");
    assert_eq!(d.task(&dead).await["state"], "dead");
    // The tenants page is the admin's.
    b.goto(&format!("{base}/ui/tenants")).await;
    assert!(b.find("#create-tenant").await.is_none());
}

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
    let big = format!("csrf={csrf}&pad={}", "x".repeat(2 << 20));
    let cases: Vec<(&str, String, Option<String>, u16)> = vec![
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
        ("POST", "/ui/queues/tool/pause".into(), Some(big), 413),
        (
            "POST",
            "/ui/queues/tool/pause".into(),
            Some("csrf=%FF%FE".into()),
            403,
        ),
    ];
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
