//! The wait round trip: sequential `POST /api/tasks?wait_ms=…` from one client, each answered
//! with the finished task, timed from request to answer.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::api::Api;
use crate::percentile::Percentiles;

/// `wait_ms` of every request: far above an echo task's run time.
const WAIT: Duration = Duration::from_millis(5_000);
/// First `args.i` of wait tasks, apart from the other phases'.
const FIRST_INDEX: u64 = 2_000_000_000;

/// What the wait round trips measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WaitRoundTrip {
    /// Requests to send.
    pub samples: u64,
    /// Requests answered 200 with a succeeded task.
    pub ok: u64,
    /// Requests answered otherwise.
    pub errors: u64,
    /// The first such answer.
    pub first_error: Option<String>,
    /// Request → answer of the successful ones.
    pub latency: Percentiles,
    /// Whether the phase deadline cut it short.
    pub timed_out: bool,
}

/// Sends `samples` waiting enqueues one after the other.
pub async fn run(api: &Api, samples: u64, deadline: Instant) -> WaitRoundTrip {
    let mut out = WaitRoundTrip {
        samples,
        ..WaitRoundTrip::default()
    };
    let mut micros = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let sent = Instant::now();
        let answer = tokio::time::timeout_at(deadline, api.enqueue_and_wait(FIRST_INDEX + i, WAIT));
        let error = match answer.await {
            Err(_) => {
                out.timed_out = true;
                break;
            }
            Ok(Ok(task)) if task.state == "succeeded" => {
                micros.push(sent.elapsed().as_micros() as u64);
                out.ok += 1;
                continue;
            }
            Ok(Ok(task)) => format!("task {} answered in state {}", task.id, task.state),
            Ok(Err(e)) => e.to_string(),
        };
        out.errors += 1;
        out.first_error.get_or_insert(error);
    }
    out.latency = Percentiles::from_micros(micros);
    out
}
