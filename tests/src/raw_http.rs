//! HTTP/1.1 over a bare TCP socket, for requests no HTTP client library will send: bytes that
//! are not UTF-8 in the request line or a header, unknown methods, lying headers. One request
//! per connection (`Connection: close`); the answer is read to the end, or only its head when
//! it is an SSE stream (which would not end).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request as bytes: the request line's parts, headers, body.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    /// Method, e.g. `b"GET"`.
    pub method: Vec<u8>,
    /// Request target, e.g. `b"/api/tasks?wait_ms=1"`.
    pub target: Vec<u8>,
    /// Headers besides `Host`, `Content-Length` and `Connection`, which are added.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
    /// Replaces the whole request with these bytes (for requests that are not HTTP at all).
    pub verbatim: Option<Vec<u8>>,
}

impl RawRequest {
    /// The bytes sent on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Some(v) = &self.verbatim {
            return v.clone();
        }
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let chunked = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
        if !chunked {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body (empty for an SSE stream, whose body is not read).
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the answer is an SSE stream.
    pub fn is_event_stream(&self) -> bool {
        self.header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `req` to `addr` and reads the answer within `within`. `Err` says what went wrong
/// (no answer, a malformed one).
pub async fn send(addr: &str, req: &RawRequest, within: Duration) -> Result<RawAnswer, String> {
    tokio::time::timeout(within, exchange(addr, &req.to_bytes()))
        .await
        .map_err(|_| format!("no whole answer within {within:?}"))?
}

async fn exchange(addr: &str, bytes: &[u8]) -> Result<RawAnswer, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // The server may answer (413, 400) and close before reading all of a body: its answer is
    // still there to read, so a failed write is not the end.
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(&got, b"\r\n\r\n") {
            break at;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "connection ended before a whole answer head: {:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let (status, headers) = parse_head(&got[..head_end])?;
    let mut answer = RawAnswer {
        status,
        headers,
        body: got[head_end + 4..].to_vec(),
    };
    if answer.is_event_stream() {
        answer.body.clear();
        return Ok(answer);
    }
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.body.extend_from_slice(&buf[..n]),
        }
    }
    Ok(answer)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_framed_with_its_length_and_the_head_parses() {
        let req = RawRequest {
            method: b"POST".to_vec(),
            target: b"/x\xff".to_vec(),
            headers: vec![("X-A".into(), b"1".to_vec())],
            body: b"{}".to_vec(),
            verbatim: None,
        };
        let bytes = req.to_bytes();
        assert!(bytes.starts_with(b"POST /x\xff HTTP/1.1\r\n"));
        assert!(find(&bytes, b"Content-Length: 2\r\n\r\n{}").is_some());
        let (status, headers) =
            parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json").expect("head");
        assert_eq!(status, 404);
        assert_eq!(
            headers[0],
            ("content-type".into(), "application/json".into())
        );
    }
}
