//! A small W3C WebDriver client over reqwest, enough to drive Debian's headless `chromium`
//! through `chromedriver` (both installed by `ops/test.sh`): open a page, find elements by CSS
//! selector, read their text, type, click, run a script, take a screenshot. Every wait polls
//! with a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::process::Proc;
use crate::{TempDir, free_port, poll_until};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where the browser and its driver are looked for.
const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const DRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

fn first_present(paths: &[&str], what: &str) -> PathBuf {
    paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{what} is missing (looked at {}): the console test needs Debian's chromium and \
                 chromium-driver; ops/test.sh installs them (apt-get install chromium chromium-driver)",
                paths.join(", ")
            )
        })
}

/// A headless Chromium session behind its own chromedriver process.
pub struct Browser {
    _driver: Proc,
    _profile: TempDir,
    http: reqwest::Client,
    base: String,
}

/// One element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let chromium = first_present(CHROMIUM, "chromium");
        let driver = first_present(DRIVER, "chromedriver");
        let port = free_port();
        let proc = Proc::spawn("chromedriver", &driver, &[&format!("--port={port}")], &[]);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let root = format!("http://127.0.0.1:{port}");
        poll_until("chromedriver ready", Duration::from_secs(20), || {
            let http = http.clone();
            let url = format!("{root}/status");
            async move {
                let r = http.get(url).send().await.ok()?;
                let v: Value = r.json().await.ok()?;
                v["value"]["ready"].as_bool().filter(|r| *r)
            }
        })
        .await;
        let profile = TempDir::new("chromium");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-proxy-server", "--no-first-run", "--disable-extensions",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session request");
        let v: Value = r.json().await.expect("new session answer");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not open a session: {v}"))
            .to_owned();
        Self {
            _driver: proc,
            _profile: profile,
            http,
            base: format!("{root}/session/{id}"),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let r = req.send().await.map_err(|e| json!(e.to_string()))?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.map_err(|e| json!(e.to_string()))?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body.clone())
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path} {body:?}: {e}"))
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.must("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css`, if there is one now.
    pub async fn find(&self, css: &str) -> Option<Element> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        v[ELEMENT].as_str().map(|s| Element(s.to_owned()))
    }

    /// Waits up to `within` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Element {
        poll_until(&format!("element {css}"), within, || self.find(css)).await
    }

    /// The visible text of `e`.
    pub async fn text(&self, e: &Element) -> String {
        let v = self
            .must("GET", &format!("/element/{}/text", e.0), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The text of the element matching `css` (waits up to 10 s for it). An element that went
    /// stale between finding and reading it (the page was replaced) is found again.
    pub async fn text_of(&self, css: &str) -> String {
        poll_until(
            &format!("text of {css}"),
            Duration::from_secs(10),
            || async {
                let e = self.find(css).await?;
                let v = self
                    .call("GET", &format!("/element/{}/text", e.0), None)
                    .await
                    .ok()?;
                v.as_str().map(str::to_owned)
            },
        )
        .await
    }

    /// Clicks the element matching `css` (waits up to 10 s for it, found again if it went
    /// stale).
    pub async fn click(&self, css: &str) {
        poll_until(
            &format!("a click on {css}"),
            Duration::from_secs(10),
            || async {
                let e = self.find(css).await?;
                self.call("POST", &format!("/element/{}/click", e.0), None)
                    .await
                    .ok()
            },
        )
        .await;
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css, Duration::from_secs(10)).await;
        self.must("POST", &format!("/element/{}/clear", e.0), None)
            .await;
        self.must(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and answers its return value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The browser's cookies for the current page.
    pub async fn cookies(&self) -> Vec<Value> {
        self.must("GET", "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.must("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// `target/ui-screenshots`: beside the test binaries' profile directories, never committed.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    exe.ancestors()
        .nth(3)
        .expect("test executable is not in target/<profile>/deps")
        .join("ui-screenshots")
}
