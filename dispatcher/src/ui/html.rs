//! The console's HTML: escaping, the page frame (navigation, who is signed in, the logout form
//! with its CSRF token), small builders, and the answers every page and action gives.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::UiSession;
use crate::http::access::Need;

/// `s` safe inside HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one query-string value.
pub fn query_value(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The fields of a form body (`application/x-www-form-urlencoded`); the last of a repeated name
/// wins, except that [`form_all`] reads every value.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Every value of field `name` of a form body.
pub fn form_all(body: &[u8], name: &str) -> Vec<String> {
    url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The hidden CSRF field every action form carries.
pub fn csrf_field(s: &UiSession) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&s.csrf)
    )
}

/// A one-button action form posting to `action` (hidden for a session that may not act: the
/// server refuses it anyway).
pub fn button(s: &UiSession, need: Need, action: &str, label: &str, class: &str) -> String {
    if !s.caller.admits(need) {
        return String::new();
    }
    format!(
        r#"<form method="post" action="{}" class="inline">{}<button class="{class}" type="submit">{}</button></form>"#,
        esc(action),
        csrf_field(s),
        esc(label)
    )
}

/// A whole page: `title`, the navigation with `active` marked, and `body`.
pub fn page(s: &UiSession, active: &str, title: &str, body: &str) -> Response {
    let mut nav = String::new();
    let links: [(&str, &str, Need); 4] = [
        ("overview", "/ui/overview", Need::Read),
        ("workers", "/ui/workers", Need::Read),
        ("dead letters", "/ui/dead", Need::Read),
        ("tenants", "/ui/tenants", Need::Admin),
    ];
    for (name, href, need) in links {
        if s.caller.admits(need) {
            let class = if name == active { "active" } else { "" };
            let _ = write!(nav, r#"<a class="{class}" href="{href}">{name}</a>"#);
        }
    }
    let who = match s.caller.tenant() {
        None => "admin".to_owned(),
        Some(t) => format!(
            "{} ({})",
            t.name,
            t.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · switchyard</title><link rel="stylesheet" href="/ui/assets/app.css"><script src="/ui/assets/app.js" defer></script></head><body><header><strong>switchyard</strong><nav>{nav}</nav><span class="who" id="who">{who}</span><form method="post" action="/ui/logout" class="inline">{csrf}<button type="submit" id="logout">log out</button></form></header><main><h1>{title}</h1>{body}</main></body></html>"#,
        title = esc(title),
        who = esc(&who),
        csrf = csrf_field(s),
    );
    html_response(StatusCode::OK, html)
}

/// An HTML answer that no cache keeps and no other site frames.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    r
}

/// The headers of every console answer: no caching (pages show keys once), no framing, only
/// this origin's scripts and styles.
pub fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
}

/// 303 to `location` (after an action, or to the login page).
pub fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(r.headers_mut());
    r
}

/// A table with `head` and pre-rendered `rows` (each a `<tr>…</tr>`), or `empty` without rows.
pub fn table(id: &str, head: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!(r#"<p class="empty" id="{id}">{}</p>"#, esc(empty));
    }
    let mut out = format!(r#"<table id="{id}"><thead><tr>"#);
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table>");
    out
}

/// A link to a task's page.
pub fn task_link(id: &str) -> String {
    format!(
        r#"<a class="task" href="/ui/tasks/{}">{}</a>"#,
        query_value(id),
        esc(id)
    )
}

/// The flash line of a page reached after an action (`?done=…`).
pub fn flash(done: Option<&str>) -> String {
    done.map_or_else(String::new, |d| {
        format!(r#"<p class="flash" id="flash">{}</p>"#, esc(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_forms_decoded() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let f = form(b"key=sy_1%2B2&x=a+b");
        assert_eq!(f.get("key").map(String::as_str), Some("sy_1+2"));
        assert_eq!(f.get("x").map(String::as_str), Some("a b"));
        assert_eq!(form_all(b"s=read&s=submit", "s"), vec!["read", "submit"]);
        assert_eq!(query_value("a b&c"), "a+b%26c");
    }
}
