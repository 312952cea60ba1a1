//! Writing new tasks: each is queued on its stream as an entry carrying its whole record (its id
//! is then `{queue}-{entry id}`, known from XADD's reply), or parked in the delayed set with its
//! record in a hash, honouring idempotency keys and the queue's depth limit (`enqueue.lua`).
//! Tasks with none of those to decide skip the script: one plain `XADD` each, pipelined.
//! A task goes to the stream of its lane ([`crate::lane`]): the queue's own stream for the admin
//! key's `normal` tasks (no extra command), else a lane stream, whose name is then added to the
//! queue's lanes set (one `SADD` per lane per call; when the lane is new, one `PUBLISH` tells
//! the workers to re-read the set).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};
use serde::Deserialize;

use super::decode;
use crate::keys::Keys;
use crate::lane::{self, Priority};
use crate::record::QueuedTask;
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

/// A new task to write.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Its record. Its `id` is used only when it is delayed (a `{queue}-{ULID}` id, see
    /// [`crate::task::new_task_id`]); a task queued now gets `{queue}-{entry id}`.
    pub task: QueuedTask,
    /// Due time in ms since the epoch, for a delayed task.
    pub due_ms: Option<u64>,
    /// Lifetime of its idempotency key (`task.idempotency_key`), if it has one.
    pub idempotency_ttl: Duration,
    /// Its priority; with its tenant, it names the lane the task waits in. A delayed task's id
    /// must have been made from the same source ([`NewRecord::source`]).
    pub priority: Priority,
}

impl NewRecord {
    fn queue(&self) -> &str {
        &self.task.queue
    }

    /// The source its id starts with: its queue, or its queue and lane ([`crate::lane`]).
    pub fn source(&self) -> String {
        lane::source(
            &self.task.queue,
            lane::lane_of(self.priority, self.task.tenant.as_deref()).as_deref(),
        )
    }

    /// The key and lifetime of its idempotency key, within its tenant's space (one tenant's key
    /// never answers with another tenant's task).
    fn idempotency(&self) -> Option<(String, Duration)> {
        self.task.idempotency_key.as_deref().map(|k| {
            (
                crate::keys::tenant_scoped(self.task.tenant.as_deref(), k),
                self.idempotency_ttl,
            )
        })
    }

    /// What is written: the entry's fields, or the hash's of a delayed task.
    fn fields(&self) -> Vec<(&'static str, String)> {
        match self.due_ms {
            Some(_) => self.task.fields(),
            None => self.task.entry_fields(),
        }
    }
}

/// Writes a new task and queues (or delays) it, as [`enqueue_many`] does for one record.
pub async fn enqueue<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    rec: &NewRecord,
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

/// Enqueues many tasks in one round trip: per queue, one XADD per plain record and one
/// `enqueue.lua` call for the rest (the groups are pipelined).
/// Answers one result per record, in order. An error of the whole round trip (Redis
/// unreachable) is the outer error: then some of the tasks may have been written, as with a
/// single enqueue whose reply is lost.
pub async fn enqueue_many<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    recs: &[NewRecord],
    max_depth: u64,
) -> Result<Vec<Result<EnqueueReply, StoreError>>, StoreError> {
    let groups = groups(keys, recs, max_depth);
    let mut out: Answers = (0..recs.len()).map(|_| None).collect();
    let mut todo: Vec<&Group<'_>> = groups.iter().collect();
    // The second pass only runs when Redis had not cached the script (first use after a
    // restart or SCRIPT FLUSH): a refused call wrote nothing, so resending it writes nothing
    // twice. Plain groups never need it.
    for pass in 0..2 {
        let replies = send(con, keys, &todo).await?;
        let mut refused = Vec::new();
        for (g, reply) in todo.into_iter().zip(replies) {
            match reply {
                Some(ref r) if pass == 0 && g.is_script() && refused_script(r) => refused.push(g),
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

/// Whether a script group's reply is Redis refusing a script it had not cached.
fn refused_script(replies: &[RedisResult<Value>]) -> bool {
    matches!(replies, [Err(e)] if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

/// How one group of records is written.
enum Write {
    /// One `enqueue.lua` call: idempotency keys, due times or a depth limit to honour.
    Script(redis::ScriptInvocation<'static>),
    /// One XADD per record, then the counter.
    Plain,
}

/// Records of one lane written the same way, with their places in the caller's slice.
struct Group<'r> {
    /// The queue, or the queue and lane: where the records go.
    source: String,
    places: Vec<usize>,
    recs: Vec<&'r NewRecord>,
    write: Write,
}

/// Groups `recs` by lane and kind of write, in order of first appearance.
fn groups<'r>(keys: &Keys, recs: &'r [NewRecord], max_depth: u64) -> Vec<Group<'r>> {
    let mut groups: Vec<(bool, Group<'r>)> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let plain = is_plain(r, max_depth);
        let source = r.source();
        match groups
            .iter_mut()
            .find(|(p, g)| g.source == source && *p == plain)
        {
            Some((_, g)) => {
                g.places.push(i);
                g.recs.push(r);
            }
            None => groups.push((
                plain,
                Group {
                    source,
                    places: vec![i],
                    recs: vec![r],
                    write: Write::Plain,
                },
            )),
        }
    }
    for (plain, g) in &mut groups {
        if !*plain {
            g.write = Write::Script(invocation(keys, &g.source, &g.recs, max_depth));
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The replies of one group: the script's, or one per XADD of a plain group.
type GroupReply = Option<Vec<RedisResult<Value>>>;

/// Pipelines the writes of `groups` and answers the replies of each, in their order.
async fn send<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    groups: &[&Group<'_>],
) -> Result<Vec<GroupReply>, StoreError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut answer_at = Vec::with_capacity(groups.len());
    for g in groups {
        let from = pipe.len();
        match &g.write {
            Write::Script(inv) => {
                pipe.invoke_script(inv);
            }
            Write::Plain => queue_plain(&mut pipe, keys, &g.source, &g.recs),
        }
        answer_at.push(from..from + g.answers());
    }
    let lanes = lane::add_to_sets(&mut pipe, keys, groups.iter().map(|g| g.source.as_str()));
    let replies: Vec<RedisResult<Value>> = pipe.query_async(con).await?;
    lane::announce_new(con, keys, &lanes, &replies).await?;
    Ok(answer_at
        .into_iter()
        .map(|at| replies.get(at).map(<[_]>::to_vec))
        .collect())
}

impl Group<'_> {
    /// How many of the pipeline's replies are this group's answers: one per XADD, or the
    /// script's one (the counter's reply after the XADDs is not an answer).
    fn answers(&self) -> usize {
        match self.write {
            Write::Script(_) => 1,
            Write::Plain => self.recs.len(),
        }
    }

    fn is_script(&self) -> bool {
        matches!(self.write, Write::Script(_))
    }

    /// The answers of this group's records from its replies.
    fn decode(&self, reply: GroupReply) -> Result<Vec<EnqueueReply>, String> {
        let Some(mut replies) = reply else {
            return Err("no reply in the pipeline".to_owned());
        };
        match &self.write {
            Write::Plain => plain_replies(&self.source, &self.recs, replies),
            Write::Script(_) => match replies.pop() {
                Some(Ok(v)) => redis::from_redis_value::<String>(v)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| {
                        decode::<Vec<EnqueueReply>>("enqueue", raw).map_err(|e| e.to_string())
                    }),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("no reply in the pipeline".to_owned()),
            },
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

/// One `enqueue.lua` call for `recs`, which all belong to the lane `source`.
fn invocation(
    keys: &Keys,
    source: &str,
    recs: &[&NewRecord],
    max_depth: u64,
) -> redis::ScriptInvocation<'static> {
    let queue = lane::queue_part(source);
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(keys.stream(source))
        .key(keys.stats(queue))
        .key(keys.delayed(queue))
        .arg(max_depth)
        .arg(source);
    for rec in recs {
        // Only a delayed task's id is known (and its hash written) before the script runs.
        let id = if rec.due_ms.is_some() {
            rec.task.id.as_str()
        } else {
            ""
        };
        let idem = rec.idempotency();
        let fields = rec.fields();
        inv.key(keys.task(queue, if id.is_empty() { "-" } else { id }))
            .key(keys.idempotency(queue, idem.as_ref().map_or("-", |(k, _)| k.as_str())))
            .arg(id)
            .arg(rec.due_ms.unwrap_or(0))
            .arg(idem.as_ref().map_or(0, |(_, ttl)| ttl.as_secs().max(1)))
            .arg(fields.len());
        for (f, v) in &fields {
            inv.arg(*f).arg(v);
        }
    }
    inv
}

/// Whether `rec` leaves enqueue nothing to decide (no due time, no idempotency key, no depth
/// limit), so a plain XADD can write it instead of `enqueue.lua`.
fn is_plain(rec: &NewRecord, max_depth: u64) -> bool {
    max_depth == 0 && rec.due_ms.is_none() && rec.task.idempotency_key.is_none()
}

/// Queues `recs` (all of lane `source`, all plain): one XADD per record, its fields the record,
/// then the counter once. One command per task is the whole cost of a plain enqueue: no hash, no
/// script (Lua's argument tables cost Redis more than the commands they run).
fn queue_plain(pipe: &mut redis::Pipeline, keys: &Keys, source: &str, recs: &[&NewRecord]) {
    let stream = keys.stream(source);
    let queue = lane::queue_part(source);
    for rec in recs {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&stream).arg("*");
        for (f, v) in rec.task.entry_fields() {
            xadd.arg(f).arg(v);
        }
        pipe.add_command(xadd);
    }
    pipe.cmd("HINCRBY")
        .arg(keys.stats(queue))
        .arg("enqueued")
        .arg(recs.len());
}

/// Decodes the XADD replies of [`queue_plain`]: each an entry id, which names the task. A
/// refused XADD fails the whole group (it cannot happen short of a wrong key type).
fn plain_replies(
    source: &str,
    recs: &[&NewRecord],
    replies: Vec<RedisResult<Value>>,
) -> Result<Vec<EnqueueReply>, String> {
    if replies.len() != recs.len() {
        return Err(format!(
            "{} replies for {} tasks",
            replies.len(),
            recs.len()
        ));
    }
    let mut out = Vec::with_capacity(recs.len());
    for (rec, reply) in recs.iter().zip(replies) {
        let entry: String = reply
            .map_err(|e| e.to_string())
            .and_then(|v| redis::from_redis_value(v).map_err(|e| e.to_string()))
            .map_err(|e| format!("XADD of a task of {}: {e}", rec.queue()))?;
        out.push(EnqueueReply {
            status: EnqueueStatus::Queued,
            id: crate::task::entry_task_id(source, &entry),
        });
    }
    Ok(out)
}
