//! The Lua scripts that make every state change atomic, each loaded once from its `.lua` file
//! and called through exactly one typed wrapper here, plus the one write that needs no script
//! (a plain enqueue, a MULTI block).
//!
//! Most scripts answer JSON (`cjson.encode`) that decodes into the structs below. The two on
//! every task's path answer flat lists instead, decoded by one function each, because encoding
//! JSON in Lua cost Redis a sixth of `start.lua`. Every key a script touches is passed in
//! `KEYS`, and all keys of one call share the queue's hash tag.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::keys::Keys;
use crate::store::StoreError;

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("enqueue.lua")));
static START: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("start.lua")));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("complete.lua")));
static FAIL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fail.lua")));
static PROMOTE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("promote.lua")));
static CANCEL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("cancel.lua")));
static REPLAY_DEAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("replay_dead.lua")));
static REQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("requeue.lua")));
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("extend.lua")));
static SESSION_APPEND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("session_append.lua")));

/// Settings every terminal transition needs.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long a finished record is kept.
    pub result_ttl: Duration,
    /// Approximate cap of the events stream.
    pub events_maxlen: u64,
}

fn decode<T: DeserializeOwned>(script: &'static str, raw: String) -> Result<T, StoreError> {
    serde_json::from_str(&raw).map_err(|e| StoreError::Reply {
        script,
        message: format!("{e}: {raw}"),
    })
}

/// What enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnqueueStatus {
    /// Appended to the stream.
    Queued,
    /// Parked in the delayed set until its due time.
    Delayed,
    /// The idempotency key already named a task; nothing was written.
    Duplicate,
    /// The stream is at `MAX_QUEUE_DEPTH`; nothing was written.
    Full,
}

/// Reply of [`enqueue`].
#[derive(Debug, Clone, Deserialize)]
pub struct EnqueueReply {
    /// What happened.
    pub status: EnqueueStatus,
    /// The new task's id, or the existing one for a duplicate.
    pub id: String,
}

/// A task record to write, as field/value pairs.
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    /// Task id (carries the queue).
    pub id: &'a str,
    /// Queue.
    pub queue: &'a str,
    /// Field/value pairs of the record.
    pub fields: Vec<(&'static str, String)>,
    /// Due time in ms since the epoch, for a delayed task.
    pub due_ms: Option<u64>,
    /// Idempotency key and its lifetime.
    pub idempotency: Option<(&'a str, Duration)>,
}

/// One `enqueue.lua` call for `recs`, which all belong to `queue`.
fn enqueue_invocation(
    keys: &Keys,
    queue: &str,
    recs: &[&NewRecord<'_>],
    max_depth: u64,
) -> redis::ScriptInvocation<'static> {
    let mut inv = ENQUEUE.prepare_invoke();
    inv.key(keys.stream(queue))
        .key(keys.stats(queue))
        .key(keys.delayed(queue))
        .arg(max_depth);
    for rec in recs {
        inv.key(keys.task(queue, rec.id))
            .key(keys.idempotency(queue, rec.idempotency.map_or("-", |(k, _)| k)))
            .arg(rec.id)
            .arg(rec.due_ms.unwrap_or(0))
            .arg(rec.idempotency.map_or(0, |(_, ttl)| ttl.as_secs().max(1)))
            .arg(rec.fields.len());
        for (f, v) in &rec.fields {
            inv.arg(*f).arg(v);
        }
    }
    inv
}

/// Writes a new task and queues (or delays) it, as [`enqueue_many`] does for one record.
pub async fn enqueue<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    rec: &NewRecord<'_>,
    max_depth: u64,
) -> Result<EnqueueReply, StoreError> {
    let mut replies = enqueue_many(con, keys, std::slice::from_ref(rec), max_depth).await?;
    match (replies.pop(), replies.is_empty()) {
        (Some(reply), true) => reply,
        _ => Err(StoreError::Reply {
            script: "enqueue",
            message: "expected exactly one answer for one task".to_owned(),
        }),
    }
}

/// Whether `rec` leaves enqueue nothing to decide (no due time, no idempotency key, no depth
/// limit), so a MULTI block of plain commands can write it instead of `enqueue.lua`.
fn is_plain(rec: &NewRecord<'_>, max_depth: u64) -> bool {
    max_depth == 0 && rec.due_ms.is_none() && rec.idempotency.is_none()
}

/// Queues `recs` (all of `queue`, all plain) in one MULTI block: XADD and HSET per record, then
/// the counters once. The same writes as `enqueue.lua`, atomic as a transaction, without the
/// script: measured with callgrind, Lua's argument tables and interpreter cost Redis more than
/// the two commands themselves (85k instructions per task through the script, 38k as MULTI).
fn queue_plain(pipe: &mut redis::Pipeline, keys: &Keys, queue: &str, recs: &[&NewRecord<'_>]) {
    let stream = keys.stream(queue);
    let stats = keys.stats(queue);
    pipe.cmd("MULTI");
    for rec in recs {
        pipe.cmd("XADD").arg(&stream).arg("*").arg("id").arg(rec.id);
        let mut hset = redis::cmd("HSET");
        hset.arg(keys.task(queue, rec.id));
        for (f, v) in &rec.fields {
            hset.arg(*f).arg(v);
        }
        pipe.add_command(hset);
    }
    pipe.cmd("HINCRBY")
        .arg(&stats)
        .arg("enqueued")
        .arg(recs.len());
    pipe.cmd("HINCRBY")
        .arg(&stats)
        .arg("queued")
        .arg(recs.len());
    pipe.cmd("EXEC");
}

/// Decodes the EXEC reply of [`queue_plain`]: every XADD must have answered an entry id and
/// every HSET a count, else the whole block is reported failed.
fn plain_replies(recs: &[&NewRecord<'_>], exec: redis::Value) -> Result<Vec<EnqueueReply>, String> {
    let results: Vec<redis::Value> = match exec {
        redis::Value::Array(results) => results,
        redis::Value::Nil => return Err("the transaction was aborted".to_owned()),
        other => return Err(format!("EXEC answered {other:?}")),
    };
    if results.len() != 2 * recs.len() + 2 {
        return Err(format!(
            "EXEC answered {} results for {} tasks",
            results.len(),
            recs.len()
        ));
    }
    let mut out = Vec::with_capacity(recs.len());
    for (rec, pair) in recs.iter().zip(results.chunks_exact(2)) {
        let [xadd, hset] = pair else {
            unreachable!("chunks_exact(2) yields pairs")
        };
        redis::from_redis_value_ref::<String>(xadd)
            .map_err(|e| format!("XADD of task {}: {e}", rec.id))?;
        redis::from_redis_value_ref::<i64>(hset)
            .map_err(|e| format!("HSET of task {}: {e}", rec.id))?;
        out.push(EnqueueReply {
            status: EnqueueStatus::Queued,
            id: rec.id.to_owned(),
        });
    }
    Ok(out)
}

/// How one group of records is written.
enum Write {
    /// One `enqueue.lua` call: idempotency keys, due times or a depth limit to honour.
    Script(redis::ScriptInvocation<'static>),
    /// One MULTI block of plain commands.
    Plain,
}

/// Enqueues many tasks in one round trip: per queue, one MULTI block for the plain records and
/// one `enqueue.lua` call for the rest (each written atomically; the groups are pipelined).
/// Answers one result per record, in order. An error of the whole round trip (Redis
/// unreachable) is the outer error: then some of the tasks may have been written, as with a
/// single enqueue whose reply is lost.
pub async fn enqueue_many<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    recs: &[NewRecord<'_>],
    max_depth: u64,
) -> Result<Vec<Result<EnqueueReply, StoreError>>, StoreError> {
    // Records grouped by queue and kind of write, remembering each one's place in `recs`.
    let mut groups: Vec<(&str, bool, Vec<usize>)> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let plain = is_plain(r, max_depth);
        match groups
            .iter_mut()
            .find(|(q, p, _)| *q == r.queue && *p == plain)
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((r.queue, plain, vec![i])),
        }
    }
    let members_of =
        |g: usize| -> Vec<&NewRecord<'_>> { groups[g].2.iter().map(|&i| &recs[i]).collect() };
    let writes: Vec<Write> = (0..groups.len())
        .map(|g| {
            let (q, plain, _) = &groups[g];
            if *plain {
                Write::Plain
            } else {
                Write::Script(enqueue_invocation(keys, q, &members_of(g), max_depth))
            }
        })
        .collect();
    let mut out: Vec<Option<Result<EnqueueReply, StoreError>>> =
        (0..recs.len()).map(|_| None).collect();
    let fail_group =
        |out: &mut Vec<Option<Result<EnqueueReply, StoreError>>>, g: usize, msg: &str| {
            for &i in &groups[g].2 {
                out[i] = Some(Err(StoreError::Reply {
                    script: "enqueue",
                    message: msg.to_owned(),
                }));
            }
        };
    let mut todo: Vec<usize> = (0..groups.len()).collect();
    // The second pass only runs when Redis had not cached the script (first use after a
    // restart or SCRIPT FLUSH): a refused call wrote nothing, so resending it writes nothing
    // twice. MULTI blocks never need it.
    for pass in 0..2 {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // The index of the reply that answers each group: the script's, or the block's EXEC.
        let mut answer_at = Vec::with_capacity(todo.len());
        for &g in &todo {
            match &writes[g] {
                Write::Script(inv) => pipe.invoke_script(inv),
                Write::Plain => {
                    queue_plain(&mut pipe, keys, groups[g].0, &members_of(g));
                    &mut pipe
                }
            };
            answer_at.push(pipe.len() - 1);
        }
        let mut replies: Vec<Option<redis::RedisResult<redis::Value>>> = pipe
            .query_async::<Vec<redis::RedisResult<redis::Value>>>(con)
            .await?
            .into_iter()
            .map(Some)
            .collect();
        let mut refused = Vec::new();
        for (&g, &at) in todo.iter().zip(&answer_at) {
            let members = &groups[g].2;
            let reply = replies.get_mut(at).and_then(Option::take);
            let decoded: Result<Vec<EnqueueReply>, String> = match (reply, &writes[g]) {
                (None, _) => Err("no reply in the pipeline".to_owned()),
                (Some(Err(e)), Write::Script(_))
                    if pass == 0
                        && e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    refused.push(g);
                    continue;
                }
                (Some(Err(e)), _) => Err(e.to_string()),
                (Some(Ok(v)), Write::Plain) => plain_replies(&members_of(g), v),
                (Some(Ok(v)), Write::Script(_)) => redis::from_redis_value::<String>(v)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| {
                        decode::<Vec<EnqueueReply>>("enqueue", raw).map_err(|e| e.to_string())
                    }),
            };
            match decoded {
                Ok(replies) if replies.len() == members.len() => {
                    for (&i, r) in members.iter().zip(replies) {
                        out[i] = Some(Ok(r));
                    }
                }
                Ok(r) => fail_group(
                    &mut out,
                    g,
                    &format!("{} answers for {} tasks", r.len(), members.len()),
                ),
                Err(msg) => fail_group(&mut out, g, &msg),
            }
        }
        if refused.is_empty() {
            break;
        }
        ENQUEUE.prepare_invoke().load_async(con).await?;
        todo = refused;
    }
    Ok(out
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::Reply {
                    script: "enqueue",
                    message: "no reply in the pipeline".to_owned(),
                })
            })
        })
        .collect())
}

/// An entry delivered to a consumer: its stream id and the task id it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Stream entry id.
    pub entry: String,
    /// Task id.
    pub id: String,
}

/// What start decided for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartStatus {
    /// Now `running` under this consumer.
    Run,
    /// Dropped (acked and deleted): cancelled, finished, superseded or unknown.
    Skip,
    /// Its attempts were used up: dead-lettered.
    Dead,
}

/// Reply of [`start`] for one entry.
#[derive(Debug, Clone)]
pub struct Started {
    /// Decision.
    pub status: StartStatus,
    /// Stream entry id.
    pub entry: String,
    /// Task id.
    pub id: String,
    /// Why it was skipped or dead-lettered.
    pub reason: Option<String>,
    /// `chat` or `tool` (when run).
    pub kind: Option<String>,
    /// Payload JSON text (when run).
    pub payload: Option<String>,
    /// This attempt's number, from 1 (when run).
    pub attempts: u32,
    /// Attempts allowed (when run).
    pub max_attempts: u32,
    /// Attempt timeout in ms (when run).
    pub timeout_ms: u64,
    /// The task was already running under this consumer (a re-sent start): not a new attempt.
    pub resumed: bool,
}

/// A stream entry id as its two numbers, for ordering (`"10-0"` sorts after `"9-0"`).
fn entry_key(entry: &str) -> (u64, u64) {
    let (ms, seq) = entry.split_once('-').unwrap_or((entry, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The lowest and highest of `entries`: the range one XPENDING reads ownership over. Computed
/// here because Lua's pattern matching cost more Redis CPU per entry than the rest of the check.
/// A malformed id only narrows the range, so its entry reads as not owned: skipped or fenced,
/// never run twice.
fn entry_range<'a>(mut entries: impl Iterator<Item = &'a str>) -> (&'a str, &'a str) {
    let first = entries.next().unwrap_or("0-0");
    entries.fold((first, first), |(lo, hi), e| {
        let k = entry_key(e);
        (
            if k < entry_key(lo) { e } else { lo },
            if k > entry_key(hi) { e } else { hi },
        )
    })
}

/// Marks a batch of delivered entries of `queue` running under `consumer`: `start.lua`.
pub async fn start<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    now: &str,
    retention: &Retention,
    batch: &[Delivered],
) -> Result<Vec<Started>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut inv = START.prepare_invoke();
    inv.key(keys.stream(queue))
        .key(keys.stats(queue))
        .key(keys.events(queue))
        .key(keys.dead(queue))
        .arg(consumer)
        .arg(now)
        .arg(retention.result_ttl.as_secs())
        .arg(retention.events_maxlen);
    let (lo, hi) = entry_range(batch.iter().map(|d| d.entry.as_str()));
    inv.arg(lo).arg(hi);
    for d in batch {
        inv.key(keys.task(queue, &d.id)).arg(&d.entry).arg(&d.id);
    }
    let reply: Vec<redis::Value> = inv.invoke_async(con).await?;
    decode_started(batch, reply).map_err(|message| StoreError::Reply {
        script: "start",
        message,
    })
}

/// Decodes `start.lua`'s flat answer: one record per entry of `batch`, in its order, each led
/// by its status (`run` and six fields, or `skip`/`dead` and a reason).
fn decode_started(batch: &[Delivered], reply: Vec<redis::Value>) -> Result<Vec<Started>, String> {
    fn text(v: Option<redis::Value>, what: &str) -> Result<Option<String>, String> {
        match v {
            None => Err(format!("the answer ends before {what}")),
            Some(redis::Value::Nil) => Ok(None),
            Some(v) => redis::from_redis_value(v)
                .map(Some)
                .map_err(|e| format!("{what}: {e}")),
        }
    }
    fn number<T: redis::FromRedisValue>(v: Option<redis::Value>, what: &str) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("the answer ends before {what}"))?;
        redis::from_redis_value(v).map_err(|e| format!("{what}: {e}"))
    }
    let mut fields = reply.into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for d in batch {
        let status = text(fields.next(), "a status")?;
        let mut started = Started {
            status: StartStatus::Skip,
            entry: d.entry.clone(),
            id: d.id.clone(),
            reason: None,
            kind: None,
            payload: None,
            attempts: 0,
            max_attempts: 0,
            timeout_ms: 0,
            resumed: false,
        };
        match status.as_deref() {
            Some("run") => {
                started.status = StartStatus::Run;
                started.kind = text(fields.next(), "kind")?;
                started.payload = text(fields.next(), "payload")?;
                started.attempts = number(fields.next(), "attempts")?;
                started.max_attempts = number(fields.next(), "max_attempts")?;
                started.timeout_ms = number(fields.next(), "timeout_ms")?;
                started.resumed = number::<u8>(fields.next(), "resumed")? == 1;
            }
            Some(s @ ("skip" | "dead")) => {
                if s == "dead" {
                    started.status = StartStatus::Dead;
                }
                started.reason = text(fields.next(), "reason")?;
            }
            other => return Err(format!("entry {}: unknown status {other:?}", d.entry)),
        }
        out.push(started);
    }
    match fields.next() {
        None => Ok(out),
        Some(extra) => Err(format!(
            "more answers than the {} entries given: {extra:?}",
            batch.len()
        )),
    }
}

/// A succeeded task to commit.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Its entry.
    pub entry: String,
    /// Task id.
    pub id: String,
    /// Result JSON text.
    pub result: String,
}

/// What happened to one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompleteStatus {
    /// Result recorded.
    Succeeded,
    /// The entry is no longer this consumer's: result dropped.
    Fenced,
}

/// Reply of [`complete`] for one task.
#[derive(Debug, Clone, Deserialize)]
pub struct Completed {
    /// Task id.
    pub id: String,
    /// Outcome.
    pub status: CompleteStatus,
}

/// Commits a batch of successes of `queue` under fencing: `complete.lua`.
pub async fn complete<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    now: &str,
    retention: &Retention,
    batch: &[Completion],
) -> Result<Vec<Completed>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut inv = COMPLETE.prepare_invoke();
    inv.key(keys.stream(queue))
        .key(keys.stats(queue))
        .key(keys.events(queue))
        .arg(consumer)
        .arg(now)
        .arg(retention.result_ttl.as_secs())
        .arg(retention.events_maxlen);
    let (lo, hi) = entry_range(batch.iter().map(|c| c.entry.as_str()));
    inv.arg(lo).arg(hi);
    for c in batch {
        inv.key(keys.task(queue, &c.id))
            .arg(&c.entry)
            .arg(&c.id)
            .arg(&c.result);
    }
    // The script names only the fenced positions: encoding a status per task cost Redis more
    // than the answer is worth.
    let fenced: Vec<usize> = inv.invoke_async(con).await?;
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, c)| Completed {
            id: c.id.clone(),
            status: if fenced.contains(&(i + 1)) {
                CompleteStatus::Fenced
            } else {
                CompleteStatus::Succeeded
            },
        })
        .collect())
}

/// How a failed attempt should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Retry at the given due time (ms), or dead-letter if out of attempts.
    Retry {
        /// Due time, ms since the epoch.
        due_ms: u64,
    },
    /// Permanent failure.
    Fail,
    /// Aborted on a cancel request.
    Cancel,
}

/// What [`fail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailStatus {
    /// Waiting out its backoff.
    Retrying,
    /// Dead-lettered.
    Dead,
    /// Failed permanently.
    Failed,
    /// Cancelled.
    Cancelled,
    /// The entry is no longer this consumer's: nothing written.
    Fenced,
}

#[derive(Deserialize)]
struct StatusReply<S> {
    status: S,
}

/// The attempt that failed.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// Queue.
    pub queue: &'a str,
    /// Entry id.
    pub entry: &'a str,
    /// Task id.
    pub id: &'a str,
    /// Error text recorded on the task.
    pub error: &'a str,
    /// What to do with it.
    pub mode: FailMode,
}

/// Records a failed attempt under fencing: `fail.lua`.
pub async fn fail<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    consumer: &str,
    now: &str,
    retention: &Retention,
    f: &Failure<'_>,
) -> Result<FailStatus, StoreError> {
    let q = f.queue;
    let (mode, due) = match f.mode {
        FailMode::Retry { due_ms } => ("retry", due_ms),
        FailMode::Fail => ("fail", 0),
        FailMode::Cancel => ("cancel", 0),
    };
    let raw: String = FAIL
        .key(keys.stream(q))
        .key(keys.stats(q))
        .key(keys.events(q))
        .key(keys.delayed(q))
        .key(keys.dead(q))
        .key(keys.task(q, f.id))
        .arg(consumer)
        .arg(f.entry)
        .arg(f.id)
        .arg(f.error)
        .arg(mode)
        .arg(due)
        .arg(now)
        .arg(retention.result_ttl.as_secs())
        .arg(retention.events_maxlen)
        .invoke_async(con)
        .await?;
    decode::<StatusReply<FailStatus>>("fail", raw).map(|r| r.status)
}

/// Moves the given due tasks of `queue` back into its stream: `promote.lua`. Returns how many.
pub async fn promote<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    now_ms: u64,
    ids: &[String],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut inv = PROMOTE.prepare_invoke();
    inv.key(keys.delayed(queue))
        .key(keys.stream(queue))
        .key(keys.stats(queue))
        .arg(now_ms);
    for id in ids {
        inv.key(keys.task(queue, id)).arg(id);
    }
    Ok(inv.invoke_async(con).await?)
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelStatus {
    /// It was waiting and is now cancelled.
    Cancelled,
    /// It is running; its worker was asked to abort it.
    Cancelling,
    /// It had already finished.
    Terminal,
    /// No such task.
    Missing,
}

/// Reply of [`cancel`].
#[derive(Debug, Clone, Deserialize)]
pub struct CancelReply {
    /// What happened.
    pub status: CancelStatus,
    /// The task's state afterwards (empty when missing).
    pub state: String,
}

/// Cancels a task: `cancel.lua`.
pub async fn cancel<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
    now: &str,
    retention: &Retention,
) -> Result<CancelReply, StoreError> {
    let raw: String = CANCEL
        .key(keys.stream(queue))
        .key(keys.stats(queue))
        .key(keys.events(queue))
        .key(keys.delayed(queue))
        .key(keys.task(queue, id))
        .arg(id)
        .arg(now)
        .arg(retention.result_ttl.as_secs())
        .arg(retention.events_maxlen)
        .arg(keys.cancel_channel())
        .invoke_async(con)
        .await?;
    decode("cancel", raw)
}

/// What [`replay_dead`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Queued again.
    Queued,
    /// The task exists but is not dead.
    NotDead,
    /// No such task.
    Missing,
}

/// Reply of [`replay_dead`].
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayReply {
    /// What happened.
    pub status: ReplayStatus,
    /// The task's state afterwards.
    pub state: String,
}

/// Queues a dead-lettered task again: `replay_dead.lua`.
pub async fn replay_dead<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<ReplayReply, StoreError> {
    let raw: String = REPLAY_DEAD
        .key(keys.stream(queue))
        .key(keys.stats(queue))
        .key(keys.dead(queue))
        .key(keys.task(queue, id))
        .arg(id)
        .invoke_async(con)
        .await?;
    decode("replay_dead", raw)
}

/// What [`requeue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequeueStatus {
    /// Back in the stream under a fresh entry.
    Queued,
    /// The entry was no longer this consumer's.
    Fenced,
    /// The entry was stale; acked and dropped.
    Skipped,
}

/// Hands a running task back to its queue at once: `requeue.lua`.
pub async fn requeue<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    d: &Delivered,
) -> Result<RequeueStatus, StoreError> {
    let raw: String = REQUEUE
        .key(keys.stream(queue))
        .key(keys.stats(queue))
        .key(keys.task(queue, &d.id))
        .arg(consumer)
        .arg(&d.entry)
        .arg(&d.id)
        .invoke_async(con)
        .await?;
    decode::<StatusReply<RequeueStatus>>("requeue", raw).map(|r| r.status)
}

/// Refreshes the idle time of `entries` still held by `consumer`: `extend.lua`. Returns the
/// entries it no longer holds.
pub async fn extend<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    queue: &str,
    consumer: &str,
    entries: &[String],
) -> Result<Vec<String>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut inv = EXTEND.prepare_invoke();
    inv.key(keys.stream(queue)).arg(consumer);
    for e in entries {
        inv.arg(e);
    }
    let raw: String = inv.invoke_async(con).await?;
    decode("extend", raw)
}

/// Appends one chat turn to a session once per task: `session_append.lua`. Returns whether it
/// was appended (false: this task's turn was already there).
#[allow(clippy::too_many_arguments)]
pub async fn session_append<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    session_id: &str,
    task_id: &str,
    user_json: &str,
    assistant_json: &str,
    max_messages: usize,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let appended: i64 = SESSION_APPEND
        .key(keys.session(session_id))
        .arg(task_id)
        .arg(user_json)
        .arg(assistant_json)
        .arg(max_messages.max(2))
        .arg(ttl.as_secs().max(1))
        .invoke_async(con)
        .await?;
    Ok(appended == 1)
}

#[cfg(test)]
mod tests {
    use super::entry_range;

    #[test]
    fn entry_range_orders_ids_by_their_numbers_not_as_strings() {
        let ids = [
            "1700000000000-9",
            "1700000000000-10",
            "999-0",
            "1700000000001-0",
        ];
        assert_eq!(
            entry_range(ids.iter().copied()),
            ("999-0", "1700000000001-0")
        );
        assert_eq!(
            entry_range(["5-9", "5-10"].iter().copied()),
            ("5-9", "5-10")
        );
        assert_eq!(entry_range(["7-0"].iter().copied()), ("7-0", "7-0"));
    }
}
