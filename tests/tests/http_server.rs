//! The HTTP server loop of both binaries over real sockets (issue 16, defect 4): a client that
//! sends half a request head and stops is disconnected after `HTTP_HEADER_TIMEOUT_MS`, on the
//! dispatcher and on a worker's health port; a slow but whole request is answered; on SIGTERM
//! the dispatcher still ends its SSE streams and exits, a half-sent head holding nothing; and out
//! of file descriptors, accepting backs off instead of spinning a core.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::sse::{self, SseStream};
use switchyard_tests::{
    Proc, bin_path, free_port, poll_until, shared_redis, spawn_dispatcher, spawn_worker,
    unique_prefix,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header timeout the binaries get in these tests.
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
const HEADER_TIMEOUT_MS: &str = "300";
/// How long a test waits for the server to close a connection before it fails.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Connects to `addr`, sends `partial` (an unfinished request head) and waits for the server to
/// close the connection; answers how long that took and what the server sent before closing.
async fn time_until_closed(addr: &str, partial: &[u8]) -> (Duration, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(partial).await.expect("write");
    let sent = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(CLOSE_DEADLINE, s.read_to_end(&mut got)).await;
    let took = sent.elapsed();
    match read {
        Ok(Ok(_)) => (took, got),
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => (took, got),
        Ok(Err(e)) => panic!("reading from {addr}: {e}"),
        Err(_) => panic!("{addr} still held a half-sent request head after {CLOSE_DEADLINE:?}"),
    }
}

fn assert_cut_off_in_time(what: &str, took: Duration, got: &[u8]) {
    println!("{what}: half-sent request head closed after {took:?}");
    assert!(
        took >= HEADER_TIMEOUT - Duration::from_millis(50),
        "{what}: closed after {took:?}, before the header timeout"
    );
    assert!(
        took < HEADER_TIMEOUT + Duration::from_secs(2),
        "{what}: closed only after {took:?}"
    );
    // hyper closes without an answer: there is no request to answer.
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{what}: {:?}",
        String::from_utf8_lossy(got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_disconnected_after_the_header_timeout() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let env = [("HTTP_HEADER_TIMEOUT_MS", HEADER_TIMEOUT_MS)];
    let d = spawn_dispatcher(redis.url(), &prefix, &env).await;
    let w = spawn_worker(redis.url(), &prefix, "edge-w", &env).await;
    let dispatcher = d.base_url().trim_start_matches("http://").to_owned();
    let worker = format!("127.0.0.1:{}", w.port());

    let (took, got) = time_until_closed(&dispatcher, b"GET /hea").await;
    assert_cut_off_in_time("dispatcher", took, &got);
    let (took, got) = time_until_closed(&dispatcher, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    assert_cut_off_in_time("dispatcher, headers without their end", took, &got);
    let (took, got) = time_until_closed(&worker, b"GET /hea").await;
    assert_cut_off_in_time("worker", took, &got);
    // Both still serve.
    let (status, _) = d.request("GET", "/api/queues", None).await;
    assert_eq!(status, 200);
    assert_eq!(w.get("/health").await.map(|(s, _)| s), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_whole_request_is_answered() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(
        redis.url(),
        &prefix,
        &[("HTTP_HEADER_TIMEOUT_MS", HEADER_TIMEOUT_MS)],
    )
    .await;
    let addr = d.base_url().trim_start_matches("http://").to_owned();
    let body = json!({"kind": "tool", "payload": {"tool": "echo"}}).to_string();
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        d.secret(),
        body.len()
    );
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    // The head in pieces, well within the timeout in all; the body only after the timeout has
    // passed: the timeout bounds the head, not a slow upload.
    for piece in head.as_bytes().chunks(16) {
        s.write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(HEADER_TIMEOUT * 2).await;
    s.write_all(body.as_bytes()).await.expect("write body");
    let mut answer = Vec::new();
    tokio::time::timeout(CLOSE_DEADLINE, s.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    assert!(text.contains(r#""state":"queued""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_sse_streams_and_a_half_sent_head_does_not_hold_shutdown() {
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[("HTTP_HEADER_TIMEOUT_MS", "5000")]).await;
    // No worker: the task stays queued and its stream stays open until the dispatcher stops.
    let (status, v) = d
        .request(
            "POST",
            "/api/tasks",
            Some(json!({"kind": "tool", "payload": {"tool": "echo"}})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let url = format!("{}/api/tasks/{id}/stream", d.base_url());
    let mut stream: SseStream = match sse::open("GET", &url, d.secret(), None, None).await {
        Ok(s) => s,
        Err((status, v)) => panic!("stream answered {status}: {v}"),
    };
    let start = stream.expect("start", Duration::from_secs(5)).await;
    assert_eq!(start.event, "start");
    let addr = d.base_url().trim_start_matches("http://").to_owned();
    let mut half = TcpStream::connect(&addr).await.expect("connect");
    half.write_all(b"GET /hea").await.expect("write");

    let began = Instant::now();
    d.proc.sigterm();
    stream.rest(Duration::from_secs(5)).await;
    let exit = d
        .proc
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the dispatcher exits");
    let took = began.elapsed();
    println!("SIGTERM with an open SSE stream and a half-sent head: exited after {took:?}");
    assert!(exit.success(), "{exit:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// CPU seconds (user + system) `pid` has used, from `/proc/<pid>/stat` (clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    ticks as f64 / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_accepting_backs_off_instead_of_spinning() {
    let redis = shared_redis();
    let addr = format!("127.0.0.1:{}", free_port());
    let dispatcher = bin_path("dispatcher");
    let program = dispatcher.to_str().expect("a UTF-8 path");
    // 64 descriptors: the dispatcher's own (Redis, epoll, logs) leave a few dozen for clients.
    let d = Proc::spawn(
        "dispatcher-nofile",
        std::path::Path::new("prlimit"),
        &["--nofile=64:64", program],
        &[
            ("REDIS_URL", redis.url()),
            ("QUEUE_PREFIX", &unique_prefix()),
            ("DISPATCHER_ADDR", &addr),
            ("ROOT_NODE_SECRET", "s"),
        ],
    );
    let health = || async {
        let mut s = TcpStream::connect(&addr).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut got))
            .await
            .ok()?
            .ok()?;
        got.starts_with(b"HTTP/1.1 200").then_some(())
    };
    poll_until("the dispatcher to answer", Duration::from_secs(30), health).await;

    // Far more connections than descriptors: the kernel completes them, accept(2) fails.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            TcpStream::connect(&addr)
                .await
                .expect("the backlog takes it"),
        );
    }
    poll_until(
        "accept to fail with EMFILE",
        Duration::from_secs(10),
        || async { d.log_text().contains("Too many open files").then_some(()) },
    )
    .await;
    let before = cpu_seconds(d.pid());
    let window = Instant::now();
    // A measuring window, not a wait for a loop: how much CPU the failing accepts burn.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let used = cpu_seconds(d.pid()) - before;
    let took = window.elapsed().as_secs_f64();
    println!("out of descriptors: {used:.2} s of CPU in {took:.2} s");
    assert!(
        used < 0.15 * took,
        "{used:.2} s of CPU in {took:.2} s: accept spins"
    );

    drop(held);
    poll_until(
        "the dispatcher to answer again",
        Duration::from_secs(30),
        health,
    )
    .await;
}
