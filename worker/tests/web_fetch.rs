//! `web_fetch` through [`Toolbox`], against local servers only: loopback, metadata and names
//! that resolve to private addresses are refused, every redirect hop is checked, and an allowed
//! page comes back as text within the size and time limits.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_worker::tools::web_fetch::{AddressPolicy, FetchLimits};
use switchyard_worker::tools::{ToolError, Toolbox, WebFetch};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fetcher(policy: AddressPolicy) -> Toolbox {
    let limits = FetchLimits {
        max_bytes: 64,
        timeout: Duration::from_secs(5),
        max_redirects: 3,
    };
    Toolbox::always_on().with_web_fetch(WebFetch::new(policy, limits).expect("client"))
}

fn loopback_exception() -> AddressPolicy {
    AddressPolicy {
        allow_private: false,
        allowed: vec!["127.0.0.1".parse().expect("address")],
    }
}

async fn fetch(tb: &Toolbox, url: &str) -> Result<Value, ToolError> {
    tb.run(&json!({"tool": "web_fetch", "args": {"url": url}}))
        .await
}

fn refused(r: &Result<Value, ToolError>, needle: &str) {
    assert!(
        matches!(r, Err(ToolError::Permanent(m)) if m.contains("refused") && m.contains(needle)),
        "expected a permanent refusal mentioning {needle:?}, got {r:?}"
    );
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

#[tokio::test]
async fn web_fetch_refuses_loopback_metadata_and_private_names() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("secret"))
        .mount(&server)
        .await;
    let port = server.address().port();
    let tb = fetcher(AddressPolicy::default());

    refused(
        &fetch(&tb, &format!("http://127.0.0.1:{port}/")).await,
        "loopback",
    );
    refused(
        &fetch(&tb, &format!("http://[::ffff:127.0.0.1]:{port}/")).await,
        "loopback",
    );
    refused(
        &fetch(&tb, "http://169.254.169.254/latest/meta-data/").await,
        "link-local",
    );
    refused(&fetch(&tb, "http://10.0.0.1/").await, "private");
    // A name is checked after DNS resolution: localhost resolves to a loopback address.
    refused(
        &fetch(&tb, &format!("http://localhost:{port}/")).await,
        "resolves to",
    );
    let r = fetch(&tb, "file:///etc/passwd").await;
    refused(&r, "only http");
    assert_eq!(
        hits(&server).await,
        0,
        "no refused request reached the server"
    );
}

#[tokio::test]
async fn web_fetch_checks_every_redirect_hop() {
    let server = MockServer::start().await;
    for (from, to) in [
        (
            "/to-metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
        ("/to-private", "http://192.168.0.1/admin".to_owned()),
        (
            "/to-loopback",
            format!("http://127.0.0.2:{}/ok", server.address().port()),
        ),
        ("/to-ok", "/ok".to_owned()),
        ("/loop", "/loop".to_owned()),
    ] {
        Mock::given(method("GET"))
            .and(path(from))
            .respond_with(ResponseTemplate::new(302).insert_header("location", to.as_str()))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&server)
        .await;
    // The first hop (this loopback server) is allowed by exception; where it redirects is not.
    let tb = fetcher(loopback_exception());
    let base = server.uri();

    refused(
        &fetch(&tb, &format!("{base}/to-metadata")).await,
        "169.254.169.254",
    );
    refused(
        &fetch(&tb, &format!("{base}/to-private")).await,
        "192.168.0.1",
    );
    refused(
        &fetch(&tb, &format!("{base}/to-loopback")).await,
        "127.0.0.2",
    );
    let ok = fetch(&tb, &format!("{base}/to-ok"))
        .await
        .expect("allowed redirect");
    assert_eq!(ok["output"]["body"], "fine");
    assert_eq!(ok["output"]["url"], format!("{base}/ok"));
    let r = fetch(&tb, &format!("{base}/loop")).await;
    assert!(
        matches!(&r, Err(ToolError::Permanent(m)) if m.contains("more than 3 redirects")),
        "{r:?}"
    );
}

#[tokio::test]
async fn web_fetch_with_private_allowed_returns_text_within_limits() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("hello from a local server", "text/plain; charset=utf-8"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(10_000)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("nope"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let tb = fetcher(AddressPolicy {
        allow_private: true,
        allowed: vec![],
    });
    let base = server.uri();

    let page = fetch(&tb, &format!("{base}/page")).await.expect("fetched");
    assert_eq!(
        page["output"],
        json!({
            "url": format!("{base}/page"),
            "status": 200,
            "content_type": "text/plain; charset=utf-8",
            "bytes": 25,
            "truncated": false,
            "body": "hello from a local server",
        })
    );
    let big = fetch(&tb, &format!("{base}/big")).await.expect("fetched");
    assert_eq!(big["output"]["bytes"], 64);
    assert_eq!(big["output"]["truncated"], true);
    let missing = fetch(&tb, &format!("{base}/missing"))
        .await
        .expect("fetched");
    assert_eq!(missing["output"]["status"], 404);

    let quick = Toolbox::always_on().with_web_fetch(
        WebFetch::new(
            AddressPolicy {
                allow_private: true,
                allowed: vec![],
            },
            FetchLimits {
                max_bytes: 64,
                timeout: Duration::from_millis(200),
                max_redirects: 0,
            },
        )
        .expect("client"),
    );
    let r = fetch(&quick, &format!("{base}/slow")).await;
    assert!(
        matches!(&r, Err(ToolError::Retryable(m)) if m.contains("timed out")),
        "{r:?}"
    );
}
