//! `REDIS_MODE=cluster`: the calls that span several queues, made one per queue.
//!
//! Every key of a queue carries the queue as a hash tag (`{tool}`), so one queue is one slot and
//! every script touches one slot. What spans queues is a pipeline over several queues (the
//! sampler, a batch enqueue) or a read of several streams (the dispatcher's event tail, a
//! worker's `XREADGROUP` over its queues). A cluster refuses both (`CROSSSLOT`), and the cluster
//! client sends a pipeline to one node only; so here:
//!
//! - a pipeline is split by hash tag into sub-pipelines sent concurrently (a `MULTI … EXEC`
//!   block stays whole), and the answers are put back in order;
//! - a multi-stream `XREAD`/`XREADGROUP` becomes one read per stream: first without blocking,
//!   all at once; when none has anything, once more blocking at most [`SPLIT_BLOCK`], all at
//!   once. Every read runs to its end (none is abandoned), so no entry an `XREADGROUP` delivered
//!   is dropped; the cost is up to [`SPLIT_BLOCK`] of extra latency when an idle queue wakes.

use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::{Arg, Cmd, Pipeline, RedisResult, Value};

/// The longest block of one per-stream read in a split multi-stream read.
pub const SPLIT_BLOCK: Duration = Duration::from_millis(100);

/// The hash tag of `key` (`{tool}` → `tool`), or the whole key when it has none: keys with the
/// same group are in the same slot.
fn slot_group(key: &[u8]) -> Vec<u8> {
    if let Some(open) = key.iter().position(|b| *b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|b| *b == b'}')
        && len > 0
    {
        return key[open + 1..open + 1 + len].to_vec();
    }
    key.to_vec()
}

fn args(cmd: &Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .filter_map(|a| match a {
            Arg::Simple(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// The first key of `cmd`, for the commands switchyard sends; `None` for keyless ones.
fn first_key(cmd: &Cmd) -> Option<Vec<u8>> {
    let a = args(cmd);
    let name = a.first()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" => {
            let n: usize = std::str::from_utf8(a.get(2)?).ok()?.parse().ok()?;
            if n == 0 {
                return None;
            }
            a.get(3)?
        }
        b"XREAD" | b"XREADGROUP" => {
            let at = a.iter().position(|x| x.eq_ignore_ascii_case(b"STREAMS"))?;
            a.get(at + 1)?
        }
        b"XGROUP" | b"XINFO" | b"OBJECT" | b"MEMORY" => a.get(2)?,
        b"MULTI" | b"EXEC" | b"DISCARD" | b"PING" | b"WAIT" | b"SCRIPT" | b"PUBLISH" => {
            return None;
        }
        _ => a.get(1)?,
    };
    Some(slot_group(key))
}

/// Splits a non-transactional `pipeline` by slot group; one group is sent as it is.
pub(crate) async fn pipeline(
    con: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    if pipeline.is_transaction() {
        return con.req_packed_commands(pipeline, offset, count).await;
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    // Units: one command, or a whole MULTI … EXEC block; each goes where its first key goes.
    let mut groups: Vec<(Option<Vec<u8>>, Vec<usize>)> = Vec::new();
    let mut i = 0;
    while i < cmds.len() {
        let mut unit = vec![i];
        if is(cmds[i], b"MULTI") {
            while i + 1 < cmds.len() && !is(cmds[i], b"EXEC") {
                i += 1;
                unit.push(i);
            }
        }
        let group = unit.iter().find_map(|j| first_key(cmds[*j]));
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.extend(unit),
            None => groups.push((group, unit)),
        }
        i += 1;
    }
    if groups.len() <= 1 {
        return con.req_packed_commands(pipeline, offset, count).await;
    }
    let sends = groups.iter().map(|(_, members)| {
        let mut sub = redis::pipe();
        for j in members {
            sub.add_command(cmds[*j].clone());
        }
        let mut con = con.clone();
        async move {
            let n = sub.len();
            con.req_packed_commands(&sub, 0, n).await
        }
    });
    let answers = try_join_all(sends).await?;
    let mut out: Vec<Option<Value>> = vec![None; cmds.len()];
    for ((_, members), values) in groups.iter().zip(answers) {
        for (j, v) in members.iter().zip(values) {
            out[*j] = Some(v);
        }
    }
    Ok(out.into_iter().map(|v| v.unwrap_or(Value::Nil)).collect())
}

fn is(cmd: &Cmd, name: &[u8]) -> bool {
    args(cmd)
        .first()
        .is_some_and(|a| a.eq_ignore_ascii_case(name))
}

/// Runs `cmd`, split per stream when it is an `XREAD`/`XREADGROUP` over streams of several slots.
pub(crate) async fn command(con: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<Value> {
    let Some(parts) = split_read(cmd) else {
        return con.req_packed_command(cmd).await;
    };
    let now = read_all(con, &parts, None).await?;
    if !matches!(now, Value::Nil) || parts.block.is_none() {
        return Ok(now);
    }
    let block = parts.block.map(|b| b.min(SPLIT_BLOCK.as_millis() as u64));
    read_all(con, &parts, block).await
}

/// A multi-stream read taken apart: the arguments before `BLOCK`/`STREAMS`, the block, the
/// streams and their ids.
struct SplitRead {
    head: Vec<Vec<u8>>,
    block: Option<u64>,
    streams: Vec<(Vec<u8>, Vec<u8>)>,
}

fn split_read(cmd: &Cmd) -> Option<SplitRead> {
    let a = args(cmd);
    let name = a.first()?.to_ascii_uppercase();
    if name != b"XREAD" && name != b"XREADGROUP" {
        return None;
    }
    let at = a.iter().position(|x| x.eq_ignore_ascii_case(b"STREAMS"))?;
    let rest = &a[at + 1..];
    let n = rest.len() / 2;
    let groups: Vec<Vec<u8>> = rest[..n].iter().map(|k| slot_group(k)).collect();
    if n < 2 || groups.iter().all(|g| *g == groups[0]) {
        return None;
    }
    let mut head = Vec::new();
    let mut block = None;
    let mut i = 0;
    while i < at {
        if a[i].eq_ignore_ascii_case(b"BLOCK") {
            block = std::str::from_utf8(a.get(i + 1)?).ok()?.parse().ok();
            i += 2;
            continue;
        }
        head.push(a[i].to_vec());
        i += 1;
    }
    let streams = (0..n)
        .map(|k| (rest[k].to_vec(), rest[n + k].to_vec()))
        .collect();
    Some(SplitRead {
        head,
        block,
        streams,
    })
}

/// One read per stream, all at once; their non-empty answers merged (RESP2: a list of
/// `[stream, entries]` pairs, or nil when nothing came).
async fn read_all(
    con: &ClusterConnection,
    parts: &SplitRead,
    block: Option<u64>,
) -> RedisResult<Value> {
    let reads = parts.streams.iter().map(|(stream, id)| {
        let mut cmd = redis::cmd(std::str::from_utf8(&parts.head[0]).unwrap_or("XREAD"));
        for a in &parts.head[1..] {
            cmd.arg(a.as_slice());
        }
        if let Some(ms) = block {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(stream.as_slice()).arg(id.as_slice());
        let mut con = con.clone();
        async move { con.req_packed_command(&cmd).await }
    });
    let mut merged = Vec::new();
    for v in try_join_all(reads).await? {
        match v {
            Value::Array(items) => merged.extend(items),
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    merged.push(Value::Array(vec![k, v]));
                }
            }
            _ => {}
        }
    }
    if merged.is_empty() {
        Ok(Value::Nil)
    } else {
        Ok(Value::Array(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_their_hash_tag() {
        assert_eq!(slot_group(b"sy:{tool}:stream"), b"tool");
        assert_eq!(slot_group(b"sy:{tool}:task:x"), b"tool");
        assert_eq!(slot_group(b"sy:workers"), b"sy:workers");
        assert_eq!(slot_group(b"a{}b"), b"a{}b");
    }

    #[test]
    fn a_read_over_two_queues_is_split_and_one_over_one_queue_is_not() {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg("workers")
            .arg("w1")
            .arg("COUNT")
            .arg(8);
        cmd.arg("BLOCK").arg(1500).arg("STREAMS");
        cmd.arg("sy:{chat}:stream")
            .arg("sy:{tool}:stream")
            .arg(">")
            .arg(">");
        let s = split_read(&cmd).expect("split");
        assert_eq!(s.block, Some(1500));
        assert_eq!(s.streams.len(), 2);
        assert_eq!(s.streams[1].0, b"sy:{tool}:stream");
        assert!(!s.head.iter().any(|a| a == b"BLOCK"));
        let mut one = redis::cmd("XREAD");
        one.arg("STREAMS")
            .arg("sy:{chat}:out:a")
            .arg("sy:{chat}:out:b")
            .arg(0)
            .arg(0);
        assert!(split_read(&one).is_none(), "same hash tag: one slot");
    }

    #[test]
    fn script_calls_are_grouped_by_their_first_key() {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg("abc")
            .arg(2)
            .arg("sy:{tool}:stream")
            .arg("sy:{tool}:stats");
        assert_eq!(first_key(&cmd), Some(b"tool".to_vec()));
        assert_eq!(first_key(&redis::cmd("MULTI")), None);
    }
}
