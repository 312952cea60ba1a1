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

    let admin_cookie = log_in_as_admin(&b, &d).await;
    a_task_appears_live_and_opens(&b, &d).await;
    a_streamed_chat_grows(&b, &d).await;
    let dead = pause_retry_and_resume(&b, &d).await;
    workers_and_forged_admin_actions(&b, &d, &admin_cookie).await;
    let read_key = create_a_read_only_tenant_and_log_out(&b, &d, &admin_cookie).await;
    the_read_only_key_gets_no_action(&b, &d, &read_key, &dead).await;
}

/// Refused with a wrong key, then logged in as admin: the admin's cookie value.
async fn log_in_as_admin(b: &Browser, d: &Dispatcher) -> String {
    let base = d.base_url();
    // Without a session every page leads to the login page; a wrong key is refused.
    b.goto(&format!("{base}/ui/overview")).await;
    assert!(b.url().await.contains("/ui/login"), "{}", b.url().await);
    login(b, d, "sy_wrong").await;
    b.wait_for("#refused", LONG).await;
    b.screenshot(&shot("login")).await;

    // The admin key: the overview, with an HttpOnly, SameSite=Strict cookie.
    login(b, d, d.secret()).await;
    b.wait_for("#queues-table", LONG).await;
    let cookie = session_cookie(b).await;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    cookie["value"].as_str().expect("cookie value").to_owned()
}

async fn a_task_appears_live_and_opens(b: &Browser, d: &Dispatcher) {
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
}

async fn a_streamed_chat_grows(b: &Browser, d: &Dispatcher) {
    let base = d.base_url();
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
}

/// A dead letter retried while its queue is paused, then the queue resumed: the dead task's id.
async fn pause_retry_and_resume(b: &Browser, d: &Dispatcher) -> String {
    let base = d.base_url();
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

    dead
}

async fn workers_and_forged_admin_actions(b: &Browser, d: &Dispatcher, admin_cookie: &str) {
    let base = d.base_url();
    b.goto(&format!("{base}/ui/workers")).await;
    b.wait_for("#workers", LONG).await;
    assert!(b.text_of("#workers").await.contains("ui-w1"));
    b.screenshot(&shot("workers")).await;

    // An admin action without the CSRF token is refused, even with the admin's cookie.
    let (s, _) = forged(d, "/ui/queues/tool/pause", admin_cookie, None).await;
    assert_eq!(s, 403);
    let (s, _) = forged(d, "/ui/queues/tool/pause", admin_cookie, Some("00")).await;
    assert_eq!(s, 403);
}

/// The new tenant's key.
async fn create_a_read_only_tenant_and_log_out(
    b: &Browser,
    d: &Dispatcher,
    admin_cookie: &str,
) -> String {
    let base = d.base_url();
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
    let (s, location) = forged(d, "/ui/queues/tool/pause", admin_cookie, None).await;
    assert_eq!(
        (s, location.as_str()),
        (303, "/ui/login?expired=1"),
        "logged out"
    );

    read_key
}

async fn the_read_only_key_gets_no_action(b: &Browser, d: &Dispatcher, read_key: &str, dead: &str) {
    let base = d.base_url();
    // The read-only key sees the pages and no action.
    login(b, d, read_key).await;
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
    let read_cookie = session_cookie(b).await["value"]
        .as_str()
        .expect("cookie")
        .to_owned();
    let read_csrf = csrf_of_page(b).await;
    for csrf in [None, Some(read_csrf.as_str())] {
        for path in [
            "/ui/queues/tool/pause".to_owned(),
            format!("/ui/dead/{dead}/retry"),
            "/ui/dead/retry-all".to_owned(),
            format!("/ui/dead/{dead}/delete"),
            "/ui/tenants".to_owned(),
        ] {
            let (s, _) = forged(d, &path, &read_cookie, csrf).await;
            assert_eq!(s, 403, "{path} with csrf {csrf:?}");
        }
    }
    let (_, q) = d.request("GET", "/api/queues/tool", None).await;
    assert_eq!(q["paused"], false, "{q}");
    assert_eq!(d.task(dead).await["state"], "dead");
    // The tenants page is the admin's.
    b.goto(&format!("{base}/ui/tenants")).await;
    assert!(b.find("#create-tenant").await.is_none());
}
