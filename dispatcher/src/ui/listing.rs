//! One page of a queue's tasks in one state, read with a cursor so a page costs the same
//! whatever the queue holds: no `KEYS`, no scan, no count of what is not shown.
//!
//! | tab | read | cursor |
//! |---|---|---|
//! | `stream` (waiting and running) | `XRANGE stream (cursor + COUNT n` | last entry id |
//! | `running` | `XPENDING stream workers (cursor + n`, then the entries' `id` fields | last entry id |
//! | `delayed` | `ZRANGE delayed i i+n-1` (by due time) | next index |
//! | `dead` | `XREVRANGE dead (cursor - COUNT n` (newest first) | last entry id |
//! | `finished` | `XREVRANGE events (cursor - COUNT n` (newest first; the events stream is capped at `EVENTS_MAXLEN`) | last entry id, `~k` within a batch entry |
//!
//! Each task named is then read with the shared reader (`lookup.lua`), at most one page of
//! them: the record, wherever the task lives.

use redis::aio::ConnectionLike;
use redis::streams::{StreamPendingCountReply, StreamRangeReply};
use switchyard_shared::events;
use switchyard_shared::keys::GROUP;
use switchyard_shared::scripts::Delivered;
use switchyard_shared::store::{self, StoreError};
use switchyard_shared::task::Task;

use crate::http::dead::read_dead;
use crate::state::AppState;

/// The tabs of the queue page.
pub const TABS: [&str; 5] = ["stream", "running", "delayed", "dead", "finished"];

/// One page: the tasks found (with their records; `None` when one ended and expired between
/// the two reads) and the cursor of the next page, if there may be one.
#[derive(Debug, Default)]
pub struct Page {
    /// Task id and record.
    pub tasks: Vec<(String, Option<Task>)>,
    /// Cursor of the next page.
    pub next: Option<String>,
}

/// Page `n` of `queue`'s `tab` after `cursor`.
pub async fn page<C: ConnectionLike + Send>(
    con: &mut C,
    state: &AppState,
    queue: &str,
    tab: &str,
    cursor: Option<&str>,
    n: usize,
) -> Result<Page, StoreError> {
    let (ids, next) = match tab {
        "running" => running(con, state, queue, cursor, n).await?,
        "delayed" => delayed(con, state, queue, cursor, n).await?,
        "dead" => {
            let letters = read_dead(con, state, queue, cursor, n).await?;
            let next = (letters.len() == n)
                .then(|| letters.last().map(|l| l.entry.clone()))
                .flatten();
            (letters.into_iter().map(|l| l.id).collect(), next)
        }
        "finished" => finished(con, state, queue, cursor, n).await?,
        _ => in_stream(con, state, queue, cursor, n).await?,
    };
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        let task = store::load_task(con, &state.keys, queue, &id).await?;
        tasks.push((id, task));
    }
    Ok(Page { tasks, next })
}

type Ids = (Vec<String>, Option<String>);

/// `XRANGE`/`XREVRANGE` (`cmd`) of `key` between `bounds`, at most `n` entries.
async fn range<C: ConnectionLike + Send>(
    con: &mut C,
    cmd: &str,
    key: &str,
    bounds: (&str, &str),
    n: usize,
) -> Result<StreamRangeReply, StoreError> {
    Ok(redis::cmd(cmd)
        .arg(key)
        .arg(bounds.0)
        .arg(bounds.1)
        .arg("COUNT")
        .arg(n)
        .query_async(con)
        .await?)
}

fn next_of(len: usize, n: usize, last: Option<&String>) -> Option<String> {
    (len == n).then(|| last.cloned()).flatten()
}

async fn in_stream<C: ConnectionLike + Send>(
    con: &mut C,
    state: &AppState,
    queue: &str,
    cursor: Option<&str>,
    n: usize,
) -> Result<Ids, StoreError> {
    let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
    let r = range(con, "XRANGE", &state.keys.stream(queue), (&start, "+"), n).await?;
    let entries: Vec<String> = r.ids.iter().map(|e| e.id.clone()).collect();
    let ids = r
        .ids
        .into_iter()
        .map(|e| Delivered::of(queue, e.id.clone(), e.get("id")).id)
        .collect();
    Ok((ids, next_of(entries.len(), n, entries.last())))
}

async fn running<C: ConnectionLike + Send>(
    con: &mut C,
    state: &AppState,
    queue: &str,
    cursor: Option<&str>,
    n: usize,
) -> Result<Ids, StoreError> {
    let stream = state.keys.stream(queue);
    let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
    let p: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(GROUP)
        .arg(start)
        .arg("+")
        .arg(n)
        .query_async(con)
        .await?;
    let entries: Vec<String> = p.ids.iter().map(|e| e.id.clone()).collect();
    if entries.is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut pipe = redis::pipe();
    for e in &entries {
        pipe.cmd("XRANGE").arg(&stream).arg(e).arg(e);
    }
    let ranges: Vec<StreamRangeReply> = pipe.query_async(con).await?;
    let ids = entries
        .iter()
        .zip(ranges)
        .map(|(e, r)| {
            let reference = r.ids.into_iter().next().and_then(|x| x.get("id"));
            Delivered::of(queue, e.clone(), reference).id
        })
        .collect();
    Ok((ids, next_of(entries.len(), n, entries.last())))
}

async fn delayed<C: ConnectionLike + Send>(
    con: &mut C,
    state: &AppState,
    queue: &str,
    cursor: Option<&str>,
    n: usize,
) -> Result<Ids, StoreError> {
    let from: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(state.keys.delayed(queue))
        .arg(from)
        .arg(from + n - 1)
        .query_async(con)
        .await?;
    let next = (ids.len() == n).then(|| (from + n).to_string());
    Ok((ids, next))
}

/// A page of the events stream, newest first. An entry may name a whole completion batch, so the
/// cursor is `<entry>` (every id of it shown) or `<entry>~<k>` (its first `k` ids shown).
async fn finished<C: ConnectionLike + Send>(
    con: &mut C,
    state: &AppState,
    queue: &str,
    cursor: Option<&str>,
    n: usize,
) -> Result<Ids, StoreError> {
    let (end, mut skip) = match cursor.map(|c| c.split_once('~')) {
        None => ("+".to_owned(), 0),
        Some(None) => (format!("({}", cursor.unwrap_or_default()), 0),
        Some(Some((entry, k))) => (entry.to_owned(), k.parse().unwrap_or(0)),
    };
    let r = range(con, "XREVRANGE", &state.keys.events(queue), (&end, "-"), n).await?;
    let mut ids: Vec<String> = Vec::with_capacity(n);
    let mut next = None;
    for e in &r.ids {
        let named = events::decode(e).map(|ev| ev.ids).unwrap_or_default();
        let room = n - ids.len();
        let rest: Vec<String> = named.into_iter().skip(skip).collect();
        if rest.len() > room {
            ids.extend(rest.into_iter().take(room));
            next = Some(format!("{}~{}", e.id, skip + room));
            break;
        }
        ids.extend(rest);
        skip = 0;
        next = Some(e.id.clone());
        if ids.len() == n {
            break;
        }
    }
    let more = ids.len() == n || r.ids.len() == n;
    Ok((ids, next.filter(|_| more)))
}
