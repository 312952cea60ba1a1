//! A small SSE client for tests: parses `text/event-stream` bodies into events and reads a live
//! stream event by event, with a deadline on each, noting when each event arrived.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// `data:` lines joined by newlines.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// Parses one event block (the text between blank lines); `None` for a comment-only block.
fn parse_block(block: &str) -> Option<SseEvent> {
    let mut ev = SseEvent {
        id: None,
        event: "message".to_owned(),
        data: String::new(),
    };
    let mut any = false;
    for line in block.lines() {
        if let Some(v) = field(line, "id") {
            ev.id = Some(v.to_owned());
            any = true;
        } else if let Some(v) = field(line, "event") {
            v.clone_into(&mut ev.event);
            any = true;
        } else if let Some(v) = field(line, "data") {
            if !ev.data.is_empty() {
                ev.data.push('\n');
            }
            ev.data.push_str(v);
            any = true;
        }
    }
    any.then_some(ev)
}

/// Every complete event of `text`; comment lines (keep-alives) are skipped.
pub fn parse(text: &str) -> Vec<SseEvent> {
    let text = text.replace("\r\n", "\n");
    let complete = text.rfind("\n\n").map_or("", |i| &text[..i]);
    complete.split("\n\n").filter_map(parse_block).collect()
}

/// A live SSE response read event by event.
#[derive(Debug)]
pub struct SseStream {
    resp: reqwest::Response,
    buf: String,
    /// Comment lines (keep-alives) seen so far.
    pub comments: usize,
}

impl SseStream {
    /// Wraps a response whose status the caller checked.
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: String::new(),
            comments: 0,
        }
    }

    /// The next event and when it arrived; `None` when the body ended.
    pub async fn next(&mut self) -> Option<(SseEvent, Instant)> {
        loop {
            while let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                if let Some(ev) = parse_block(&block) {
                    return Some((ev, Instant::now()));
                }
                self.comments += 1;
            }
            let chunk = self.resp.chunk().await.ok()??;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// The next event within `within`; panics naming `what` otherwise.
    pub async fn expect(&mut self, what: &str, within: Duration) -> SseEvent {
        match tokio::time::timeout(within, self.next()).await {
            Ok(Some((ev, _))) => ev,
            Ok(None) => panic!("the stream ended while waiting for {what}"),
            Err(_) => panic!("no event within {within:?} while waiting for {what}"),
        }
    }

    /// Every remaining event until the body ends, within `within` in all.
    pub async fn rest(&mut self, within: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + within;
        let mut out = vec![];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(Some((ev, _))) => out.push(ev),
                Ok(None) => return out,
                Err(_) => panic!(
                    "the stream did not end within {within:?}; events so far: {:?}",
                    out.iter().map(|e| &e.event).collect::<Vec<_>>()
                ),
            }
        }
    }
}

/// Opens an SSE request: `method` `url` with the bearer `token`, optional JSON `body` and
/// `Last-Event-ID`. Answers the stream, or the status and JSON body of a refusal.
pub async fn open(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
    last_event_id: Option<&str>,
) -> Result<SseStream, (u16, Value)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("cannot build an HTTP client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
    let mut req = client
        .request(method, url)
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE request to {url} failed: {e}"));
    let status = resp.status().as_u16();
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if status == 200 && is_sse {
        return Ok(SseStream::new(resp));
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_comments_and_partial_tails() {
        let text = ": keep-alive\n\nevent: delta\nid: 5-0-1\ndata: {\"text\":\"hi\"}\n\nevent: do";
        let evs = parse(text);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event, "delta");
        assert_eq!(evs[0].id.as_deref(), Some("5-0-1"));
        assert_eq!(evs[0].json()["text"], "hi");
    }
}
