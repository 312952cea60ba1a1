//! The ceiling: the raw Redis task lifecycle with no framework (one producer doing pipelined
//! XADD, one consumer doing XREADGROUP with the previous batch's XACK in the same round trip),
//! the rate the switchyard figures are compared with.

use std::time::Duration;

use redis::streams::StreamReadReply;
use serde::Serialize;
use tokio::time::Instant;

use crate::api::task_body;
use crate::error::BenchError;
use crate::redis_server::connect;

/// The ceiling's own stream, deleted afterwards.
const KEY: &str = "bench:ceiling";
/// Its consumer group and consumer.
const GROUP: &str = "g";
const CONSUMER: &str = "c";
/// Entries per XADD pipeline and per XREADGROUP.
const CHUNK: usize = 100;

/// What the ceiling measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ceiling {
    /// Entries added.
    pub tasks: u64,
    /// Entries read and acknowledged.
    pub acked: u64,
    /// First XADD sent → last XACK answered, seconds.
    pub secs: f64,
    /// `acked / secs`.
    pub tasks_per_s: f64,
    /// Bytes of each entry's `id` value.
    pub value_bytes: usize,
    /// Whether the phase deadline cut it short.
    pub timed_out: bool,
}

/// Runs `n` entries through `KEY` on the Redis at `url`.
pub async fn run(url: &str, n: u64, deadline: Instant) -> Result<Ceiling, BenchError> {
    let mut admin = connect(url).await?;
    let _: () = redis::cmd("DEL").arg(KEY).query_async(&mut admin).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(KEY)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut admin)
        .await?;
    let producer_con = connect(url).await?;
    let consumer_con = connect(url).await?;
    let value_bytes = task_body(n).len();

    let start = Instant::now();
    let producer = tokio::spawn(produce(producer_con, n, deadline));
    let consumer = tokio::spawn(consume(consumer_con, n, deadline));
    producer.await??;
    let (acked, end) = consumer.await??;
    let _: () = redis::cmd("DEL").arg(KEY).query_async(&mut admin).await?;

    let secs = end.saturating_duration_since(start).as_secs_f64();
    Ok(Ceiling {
        tasks: n,
        acked,
        secs,
        tasks_per_s: rate(acked, secs),
        value_bytes,
        timed_out: acked < n,
    })
}

/// Tasks per second, 0 for an empty interval.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

async fn produce(
    mut con: redis::aio::MultiplexedConnection,
    n: u64,
    deadline: Instant,
) -> Result<(), BenchError> {
    let mut next = 0;
    while next < n && Instant::now() < deadline {
        let mut pipe = redis::pipe();
        for i in next..(next + CHUNK as u64).min(n) {
            pipe.cmd("XADD")
                .arg(KEY)
                .arg("*")
                .arg("id")
                .arg(task_body(i))
                .ignore();
        }
        let _: () = pipe.query_async(&mut con).await?;
        next += CHUNK as u64;
    }
    Ok(())
}

/// Reads and acks until `n` entries are acked; answers the count and when the last ack landed.
async fn consume(
    mut con: redis::aio::MultiplexedConnection,
    n: u64,
    deadline: Instant,
) -> Result<(u64, Instant), BenchError> {
    let mut acked = 0u64;
    let mut prev: Vec<String> = Vec::new();
    let mut last_ack = Instant::now();
    loop {
        let all_read = acked + prev.len() as u64 >= n;
        if all_read || Instant::now() >= deadline {
            if !prev.is_empty() {
                let count: u64 = redis::cmd("XACK")
                    .arg(KEY)
                    .arg(GROUP)
                    .arg(&prev)
                    .query_async(&mut con)
                    .await?;
                acked += count;
                last_ack = Instant::now();
            }
            return Ok((acked, last_ack));
        }
        let mut pipe = redis::pipe();
        if !prev.is_empty() {
            pipe.cmd("XACK").arg(KEY).arg(GROUP).arg(&prev);
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(CONSUMER)
            .arg("COUNT")
            .arg(CHUNK)
            .arg("BLOCK")
            .arg(Duration::from_millis(100).as_millis() as u64)
            .arg("STREAMS")
            .arg(KEY)
            .arg(">");
        let reply = if prev.is_empty() {
            let (reply,): (Option<StreamReadReply>,) = pipe.query_async(&mut con).await?;
            reply
        } else {
            let (count, reply): (u64, Option<StreamReadReply>) = pipe.query_async(&mut con).await?;
            acked += count;
            last_ack = Instant::now();
            reply
        };
        prev = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| e.id)
            .collect();
    }
}
