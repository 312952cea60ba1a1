//! The dispatcher's HTTP API as the bench uses it: the echo task body, single and batch
//! enqueues and `?wait_ms=` enqueues over one keep-alive pool, answers decoded into types.

use std::ops::Range;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::error::BenchError;

/// Bound of one request; generous, as the point is to count refusals, not to time out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of an unexpected answer kept for the report.
const BODY_EXCERPT: usize = 200;

/// The echo task `i` as the API takes it; also the value size of the ceiling's entries.
pub fn task_body(i: u64) -> String {
    format!(r#"{{"kind":"tool","queue":"tool","payload":{{"tool":"echo","args":{{"i":{i}}}}}}}"#)
}

/// `{"tasks":[…]}` of the echo tasks `range`.
pub fn batch_body(range: Range<u64>) -> String {
    let tasks: Vec<String> = range.map(task_body).collect();
    format!(r#"{{"tasks":[{}]}}"#, tasks.join(","))
}

/// A request that did not get the answer it should have.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// No HTTP answer (connection refused or reset, timeout).
    #[error("transport: {0}")]
    Transport(String),
    /// An answer with another status than expected.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The expected status with a body of the wrong shape.
    #[error("unexpected answer: {0}")]
    Shape(String),
}

impl RequestError {
    /// Whether the route does not exist: the batch endpoint on an older dispatcher answers 404,
    /// or 405 where `/api/tasks/{id}` takes `batch` for an id and refuses POST.
    pub fn is_missing_route(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 404 | 405,
                ..
            }
        )
    }
}

/// `202 {id, …}` of an accepted task, and one item of a batch answer.
#[derive(Debug, Clone, Deserialize)]
struct Accepted {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum BatchItem {
    Refused { error: ErrorBody },
    Accepted(Accepted),
}

#[derive(Debug, Deserialize)]
struct BatchAnswer {
    accepted: usize,
    tasks: Vec<BatchItem>,
}

/// What one batch request got: the ids of the accepted tasks and the refused items' errors.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Ids of accepted tasks, in request order.
    pub ids: Vec<String>,
    /// `code: message` of each refused item.
    pub refused: Vec<String>,
}

/// The finished task of a `?wait_ms=` enqueue: what the bench checks of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Finished {
    /// Task id.
    pub id: String,
    /// Its state: `succeeded` for an echo task.
    pub state: String,
}

/// A client of one dispatcher: keep-alive pool shared by every caller (clone freely).
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    auth: HeaderValue,
}

impl Api {
    /// A client of the dispatcher at `base` (`http://127.0.0.1:PORT`) with bearer `secret`.
    pub fn new(base: &str, secret: &str) -> Result<Self, BenchError> {
        let auth = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|e| BenchError::Reply(format!("secret unusable as a header: {e}")))?;
        Ok(Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            base: base.to_owned(),
            auth,
        })
    }

    async fn post(
        &self,
        path_and_query: &str,
        body: String,
    ) -> Result<(StatusCode, bytes::Bytes), RequestError> {
        let r = self
            .client
            .post(format!("{}{path_and_query}", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| RequestError::Transport(e.to_string()))?;
        let status = r.status();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| RequestError::Transport(e.to_string()))?;
        Ok((status, bytes))
    }

    /// `POST /api/tasks` of echo task `i`; the task id on 202.
    pub async fn enqueue(&self, i: u64) -> Result<String, RequestError> {
        let (status, body) = self.post("/api/tasks", task_body(i)).await?;
        expect(status, StatusCode::ACCEPTED, &body)?;
        let a: Accepted = decode(&body)?;
        Ok(a.id)
    }

    /// `POST /api/tasks/batch` of the echo tasks `range`; its accepted ids and refused items.
    pub async fn enqueue_batch(&self, range: Range<u64>) -> Result<BatchOutcome, RequestError> {
        let sent = range.end.saturating_sub(range.start) as usize;
        self.batch(sent, batch_body(range)).await
    }

    /// `POST /api/tasks/batch` of `tasks` (each a task body as JSON).
    pub async fn enqueue_bodies(&self, tasks: &[String]) -> Result<BatchOutcome, RequestError> {
        let body = format!(r#"{{"tasks":[{}]}}"#, tasks.join(","));
        self.batch(tasks.len(), body).await
    }

    async fn batch(&self, sent: usize, body: String) -> Result<BatchOutcome, RequestError> {
        let (status, body) = self.post("/api/tasks/batch", body).await?;
        expect(status, StatusCode::ACCEPTED, &body)?;
        let answer: BatchAnswer = decode(&body)?;
        if answer.tasks.len() != sent {
            return Err(RequestError::Shape(format!(
                "{} items answered for {sent} sent",
                answer.tasks.len()
            )));
        }
        let mut out = BatchOutcome::default();
        for item in answer.tasks {
            match item {
                BatchItem::Accepted(a) => out.ids.push(a.id),
                BatchItem::Refused { error } => {
                    out.refused
                        .push(format!("{}: {}", error.code, error.message));
                }
            }
        }
        if answer.accepted != out.ids.len() {
            return Err(RequestError::Shape(format!(
                "accepted = {} but {} items carry an id",
                answer.accepted,
                out.ids.len()
            )));
        }
        Ok(out)
    }

    /// `POST /api/tasks?wait_ms=…` of echo task `i`; the finished task on 200.
    pub async fn enqueue_and_wait(&self, i: u64, wait: Duration) -> Result<Finished, RequestError> {
        let path = format!("/api/tasks?wait_ms={}", wait.as_millis());
        let (status, body) = self.post(&path, task_body(i)).await?;
        expect(status, StatusCode::OK, &body)?;
        decode(&body)
    }
}

fn expect(got: StatusCode, want: StatusCode, body: &[u8]) -> Result<(), RequestError> {
    if got == want {
        return Ok(());
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(BODY_EXCERPT)
        .collect();
    Err(RequestError::Status {
        status: got.as_u16(),
        body: text,
    })
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    serde_json::from_slice(body).map_err(|e| {
        let text: String = String::from_utf8_lossy(body)
            .chars()
            .take(BODY_EXCERPT)
            .collect();
        RequestError::Shape(format!("{e}: {text}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_of_the_echo_task() {
        let one: serde_json::Value = serde_json::from_str(&task_body(42)).expect("json");
        assert_eq!(one["payload"]["args"]["i"], 42);
        assert_eq!(one["queue"], "tool");
        let batch: serde_json::Value = serde_json::from_str(&batch_body(3..6)).expect("json");
        assert_eq!(batch["tasks"].as_array().map(Vec::len), Some(3));
        assert_eq!(batch["tasks"][2]["payload"]["args"]["i"], 5);
    }

    #[test]
    fn batch_items_decode_as_accepted_or_refused() {
        let answer: BatchAnswer = serde_json::from_str(
            r#"{"accepted":1,"tasks":[{"id":"tool-1","queue":"tool","state":"queued","duplicate":false},
                {"error":{"code":"unknown_tool","message":"no tool x"}}]}"#,
        )
        .expect("decodes");
        assert_eq!(answer.accepted, 1);
        assert!(matches!(&answer.tasks[0], BatchItem::Accepted(a) if a.id == "tool-1"));
        assert!(
            matches!(&answer.tasks[1], BatchItem::Refused { error } if error.code == "unknown_tool")
        );
    }
}
