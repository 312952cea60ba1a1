//! Writing new tasks: each record is queued on its stream or parked in the delayed set, honouring
//! idempotency keys and the queue's depth limit (`enqueue.lua`). Records with none of those to
//! decide skip the script and go in a MULTI block of plain commands.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};
use serde::Deserialize;

use super::decode;
use crate::keys::Keys;
use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("enqueue.lua")));

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
        _ => Err(reply_error("expected exactly one answer for one task")),
    }
}

/// One result per record, filled in as the replies of their groups arrive.
type Answers = Vec<Option<Result<EnqueueReply, StoreError>>>;

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
    let groups = groups(keys, recs, max_depth);
    let mut out: Answers = (0..recs.len()).map(|_| None).collect();
    let mut todo: Vec<&Group<'_, '_>> = groups.iter().collect();
    // The second pass only runs when Redis had not cached the script (first use after a
    // restart or SCRIPT FLUSH): a refused call wrote nothing, so resending it writes nothing
    // twice. MULTI blocks never need it.
    for pass in 0..2 {
        let replies = send(con, keys, &todo).await?;
        let mut refused = Vec::new();
        for (g, reply) in todo.into_iter().zip(replies) {
            match reply {
                Some(Err(e)) if pass == 0 && g.is_script() && is_no_script(&e) => refused.push(g),
                reply => g.settle(&mut out, g.decode(reply)),
            }
        }
        if refused.is_empty() {
            break;
        }
        SCRIPT.prepare_invoke().load_async(con).await?;
        todo = refused;
    }
    Ok(out
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(reply_error("no reply in the pipeline"))))
        .collect())
}

fn reply_error(message: &str) -> StoreError {
    StoreError::Reply {
        script: "enqueue",
        message: message.to_owned(),
    }
}

fn is_no_script(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// How one group of records is written.
enum Write {
    /// One `enqueue.lua` call: idempotency keys, due times or a depth limit to honour.
    Script(redis::ScriptInvocation<'static>),
    /// One MULTI block of plain commands.
    Plain,
}

/// Records of one queue written the same way, with their places in the caller's slice.
struct Group<'r, 'a> {
    queue: &'a str,
    places: Vec<usize>,
    recs: Vec<&'r NewRecord<'a>>,
    write: Write,
}

/// Groups `recs` by queue and kind of write, in order of first appearance.
fn groups<'r, 'a>(keys: &Keys, recs: &'r [NewRecord<'a>], max_depth: u64) -> Vec<Group<'r, 'a>> {
    let mut groups: Vec<(bool, Group<'r, 'a>)> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let plain = is_plain(r, max_depth);
        match groups
            .iter_mut()
            .find(|(p, g)| g.queue == r.queue && *p == plain)
        {
            Some((_, g)) => {
                g.places.push(i);
                g.recs.push(r);
            }
            None => groups.push((
                plain,
                Group {
                    queue: r.queue,
                    places: vec![i],
                    recs: vec![r],
                    write: Write::Plain,
                },
            )),
        }
    }
    for (plain, g) in &mut groups {
        if !*plain {
            g.write = Write::Script(invocation(keys, g.queue, &g.recs, max_depth));
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Pipelines the writes of `groups` and answers the reply of each (the script's, or the
/// block's EXEC), in their order.
async fn send<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    groups: &[&Group<'_, '_>],
) -> Result<Vec<Option<RedisResult<Value>>>, StoreError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut answer_at = Vec::with_capacity(groups.len());
    for g in groups {
        match &g.write {
            Write::Script(inv) => {
                pipe.invoke_script(inv);
            }
            Write::Plain => queue_plain(&mut pipe, keys, g.queue, &g.recs),
        }
        answer_at.push(pipe.len() - 1);
    }
    let mut replies: Vec<Option<RedisResult<Value>>> = pipe
        .query_async::<Vec<RedisResult<Value>>>(con)
        .await?
        .into_iter()
        .map(Some)
        .collect();
    Ok(answer_at
        .into_iter()
        .map(|at| replies.get_mut(at).and_then(Option::take))
        .collect())
}

impl Group<'_, '_> {
    fn is_script(&self) -> bool {
        matches!(self.write, Write::Script(_))
    }

    /// The answers of this group's records from its reply.
    fn decode(&self, reply: Option<RedisResult<Value>>) -> Result<Vec<EnqueueReply>, String> {
        match (reply, &self.write) {
            (None, _) => Err("no reply in the pipeline".to_owned()),
            (Some(Err(e)), _) => Err(e.to_string()),
            (Some(Ok(v)), Write::Plain) => plain_replies(&self.recs, v),
            (Some(Ok(v)), Write::Script(_)) => redis::from_redis_value::<String>(v)
                .map_err(|e| e.to_string())
                .and_then(|raw| {
                    decode::<Vec<EnqueueReply>>("enqueue", raw).map_err(|e| e.to_string())
                }),
        }
    }

    /// Files the decoded answers at the records' places, or the one error for all of them.
    fn settle(&self, out: &mut Answers, decoded: Result<Vec<EnqueueReply>, String>) {
        let decoded = match decoded {
            Ok(r) if r.len() != self.places.len() => Err(format!(
                "{} answers for {} tasks",
                r.len(),
                self.places.len()
            )),
            other => other,
        };
        match decoded {
            Ok(replies) => {
                for (&i, r) in self.places.iter().zip(replies) {
                    out[i] = Some(Ok(r));
                }
            }
            Err(msg) => {
                for &i in &self.places {
                    out[i] = Some(Err(reply_error(&msg)));
                }
            }
        }
    }
}

/// One `enqueue.lua` call for `recs`, which all belong to `queue`.
fn invocation(
    keys: &Keys,
    queue: &str,
    recs: &[&NewRecord<'_>],
    max_depth: u64,
) -> redis::ScriptInvocation<'static> {
    let mut inv = SCRIPT.prepare_invoke();
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
fn plain_replies(recs: &[&NewRecord<'_>], exec: Value) -> Result<Vec<EnqueueReply>, String> {
    let results: Vec<Value> = match exec {
        Value::Array(results) => results,
        Value::Nil => return Err("the transaction was aborted".to_owned()),
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
