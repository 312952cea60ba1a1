//! The web console over plain HTTP: a client that does not follow redirects, and a login that
//! answers the session cookie and its CSRF token.

use crate::Dispatcher;

/// A client for the console: no proxy, redirects answered as they are (303s are checked).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs in with `key`; the `Set-Cookie` header, the cookie pair and the session's CSRF token
/// (read from a page's hidden field; empty for a key that may not read the workers page).
pub async fn login(
    d: &Dispatcher,
    client: &reqwest::Client,
    key: &str,
) -> (String, String, String) {
    let r = client
        .post(format!("{}/ui/login", d.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={key}"))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303, "login answered {}", r.status());
    let set = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let cookie = set.split(';').next().expect("pair").to_owned();
    let page = client
        .get(format!("{}/ui/workers", d.base_url()))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (set, cookie, csrf)
}
