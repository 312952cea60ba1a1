//! The HTTP server loop of both binaries (the dispatcher's API, a worker's health port): accepts
//! connections and serves an axum router over HTTP/1.1 with a header read timeout, backs off
//! when accepting fails for lack of resources, and shuts down gracefully.
//!
//! `axum::serve` gives hyper no timer, so a client that sent half a request line held its
//! connection (and a file descriptor) for good; here hyper gets tokio's timer and
//! `HTTP_HEADER_TIMEOUT_MS`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::config::HttpConfig;
use crate::duty::{Pace, backoff};

/// Serves `router` on `listener` until `stop` completes, then stops accepting, lets every open
/// connection finish its request in flight (idle ones, and ones that never sent a whole request,
/// close at once) and returns when all are closed. Whatever `stop` does before it completes
/// (ending long answers) happens before the listener closes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: HttpConfig,
    stop: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout);
    let server = Server {
        builder,
        router,
        graceful: GracefulShutdown::new(),
        closing: CancellationToken::new(),
    };
    let mut stop = std::pin::pin!(stop);
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        match accepted {
            Ok((stream, _)) => {
                failures = 0;
                server.spawn_connection(stream);
            }
            Err(e) => {
                let Some(pause) = pause_after(&e, &mut failures) else {
                    continue;
                };
                warn!(component = "http", error = %e, failures, pause_ms = pause.as_millis() as u64, "accepting a connection failed");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut stop => break,
                }
            }
        }
    }
    drop(listener);
    server.closing.cancel();
    server.graceful.shutdown().await;
}

/// What every connection is served with.
struct Server {
    builder: http1::Builder,
    router: Router,
    /// Counts the open connections and asks each to finish after its request in flight.
    graceful: GracefulShutdown,
    /// Fired at shutdown, before `graceful`.
    closing: CancellationToken,
}

impl Server {
    /// Serves one connection in its own task.
    fn spawn_connection(&self, stream: TcpStream) {
        // Set once the connection's first request head has arrived. hyper's graceful shutdown
        // closes idle connections at once but waits for the first request of a fresh one, so a
        // client that connected and sent nothing (or half a head) would hold shutdown until the
        // header timeout.
        let started = Arc::new(AtomicBool::new(false));
        let seen = started.clone();
        let service = self.router.clone().map_request(move |req| {
            seen.store(true, Ordering::Relaxed);
            req
        });
        let conn = self.builder.serve_connection(
            TokioIo::new(nodelay(stream)),
            TowerToHyperService::new(service),
        );
        // The watcher is taken here, not in the task, so a shutdown cannot miss the connection.
        let conn = self.graceful.watcher().watch(conn);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => Some(ended),
                () = closing.cancelled() => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                // Shutting down and no request was ever sent: dropping the connection closes it.
                None if !started.load(Ordering::Relaxed) => return,
                None => conn.await,
            };
            // A header timeout, a reset or a malformed request: the client's problem, not ours.
            if let Err(e) = ended {
                debug!(component = "http", error = %e, "connection ended with an error");
            }
        });
    }
}

/// Without TCP_NODELAY a small SSE frame waits for the ACK of the previous one, which the
/// client may delay by 40 ms: that was the tail of streamed deltas.
fn nodelay(stream: TcpStream) -> TcpStream {
    let _ = stream.set_nodelay(true);
    stream
}

/// How long to wait before accepting again after `e`: nothing for an error of one connection
/// (it was reset or aborted before we took it), a growing pause for the rest. Running out of
/// file descriptors (EMFILE) fails every accept at once until one closes: retrying without a
/// pause would spin a core.
fn pause_after(e: &io::Error, failures: &mut u32) -> Option<Duration> {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return None;
    }
    *failures = failures.saturating_add(1);
    Some(backoff(Pace::Continuous, *failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_backs_off_and_a_dropped_connection_does_not() {
        // EMFILE and ENFILE, as accept(2) reports them on Linux.
        let mut failures = 0;
        let first = pause_after(&io::Error::from_raw_os_error(24), &mut failures);
        let second = pause_after(&io::Error::from_raw_os_error(23), &mut failures);
        let (first, second) = (first.expect("pause"), second.expect("pause"));
        assert!(first >= Duration::from_millis(100), "{first:?}");
        assert!(second > first, "{first:?} then {second:?}");
        for _ in 0..20 {
            pause_after(&io::Error::from_raw_os_error(24), &mut failures);
        }
        let capped = pause_after(&io::Error::from_raw_os_error(24), &mut failures);
        assert_eq!(capped, Some(crate::duty::BACKOFF_MAX));
        let mut failures = 0;
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(pause_after(&reset, &mut failures), None);
        assert_eq!(failures, 0);
    }
}
