//! Lanes: the sub-streams of a queue that make dispatch fair between tenants and ordered by
//! priority (issue 21 items 3 and 5).
//!
//! A task waits in the lane of its priority and tenant. The lane of the admin key's `normal`
//! tasks is the queue's own stream (`sy:{chat}:stream`), so the default path costs what it
//! cost before lanes existed. Every other lane is a stream of its own under the queue's hash
//! tag (`sy:{chat}:stream:h.tn-…`, same cluster slot), named by its priority letter and the
//! tenant id: `h`, `l` (the admin key's high and low), `n.tn-…`, `h.tn-…`, `l.tn-…`.
//!
//! A task's id names its lane, so every key of a task is found from its id without a scan:
//! the id starts with its *source*, `{queue}` or `{queue}.{lane}` (queue names hold no `.`),
//! e.g. `chat.h.tn-0190…-1733250000000-0`. The key builders of [`crate::keys`] accept a source
//! wherever they take a queue: the hash tag is always the queue, and only the stream differs.
//!
//! Workers read the lanes round-robin: one `XREADGROUP` over the lanes of a priority returns up
//! to COUNT entries from each, so a tenant with 100,000 waiting entries gets one turn per read
//! like a tenant with one. Which priority a read serves follows [`SCHEDULE`].

use redis::aio::ConnectionLike;
use redis::{RedisResult, Value};
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::store::StoreError;

/// A task's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Interactive work (`/api/chat` and `/v1` by default).
    High,
    /// The default of `/api/tasks`.
    Normal,
    /// Batch work: still gets [`LOW_SHARE`] of the starts.
    Low,
}

impl Priority {
    /// Every priority, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The priority's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    /// The priority named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Its letter in a lane name.
    fn letter(self) -> char {
        match self {
            Self::High => 'h',
            Self::Normal => 'n',
            Self::Low => 'l',
        }
    }

    fn from_letter(c: u8) -> Option<Self> {
        match c {
            b'h' => Some(Self::High),
            b'n' => Some(Self::Normal),
            b'l' => Some(Self::Low),
            _ => None,
        }
    }
}

/// Which priority each of ten consecutive reads of a worker serves first (falling back to the
/// next ones when it has no work): 7 of 10 high, 2 normal, 1 low. While all three have work,
/// low gets 10 % of the reads and normal 20 %; with only high and low, low gets 10 %.
pub const SCHEDULE: [[Priority; 3]; 10] = {
    use Priority::{High as H, Low as L, Normal as N};
    [
        [H, N, L],
        [L, H, N],
        [H, N, L],
        [N, H, L],
        [H, N, L],
        [H, N, L],
        [N, H, L],
        [H, N, L],
        [H, N, L],
        [H, N, L],
    ]
};

/// The share of reads [`SCHEDULE`] gives `low` while higher priorities have work.
pub const LOW_SHARE: f64 = 0.1;

/// The lane of a task of `priority` sent with `tenant`'s key (`None`: the admin key); `None`
/// for the queue's own stream (the admin key's `normal` tasks).
pub fn lane_of(priority: Priority, tenant: Option<&str>) -> Option<String> {
    match (priority, tenant) {
        (Priority::Normal, None) => None,
        (p, None) => Some(p.letter().to_string()),
        (p, Some(t)) => Some(format!("{}.{t}", p.letter())),
    }
}

/// The source of `lane` of `queue`: `{queue}` or `{queue}.{lane}`.
pub fn source(queue: &str, lane: Option<&str>) -> String {
    match lane {
        Some(l) => format!("{queue}.{l}"),
        None => queue.to_owned(),
    }
}

/// A source split into its queue and lane (no check of either).
pub fn split(source: &str) -> (&str, Option<&str>) {
    match source.split_once('.') {
        Some((q, l)) => (q, Some(l)),
        None => (source, None),
    }
}

/// The queue of a source.
pub fn queue_part(source: &str) -> &str {
    split(source).0
}

/// The priority of a source's lane.
pub fn priority_of(source: &str) -> Priority {
    split(source)
        .1
        .and_then(|l| Priority::from_letter(*l.as_bytes().first()?))
        .unwrap_or(Priority::Normal)
}

/// Whether `lane` is a lane name [`lane_of`] makes: a priority letter, then `.` and a tenant id
/// (`tn-` and hex digits) unless it is the admin key's `h` or `l`.
pub fn is_valid_lane(lane: &str) -> bool {
    let b = lane.as_bytes();
    match b {
        [b'h' | b'l'] => true,
        [p, b'.', rest @ ..] => {
            Priority::from_letter(*p).is_some()
                && rest.len() > 3
                && rest.len() <= 64
                && rest.starts_with(b"tn-")
                && rest[3..].iter().all(u8::is_ascii_hexdigit)
        }
        _ => false,
    }
}

/// Appends one `SADD` of the lanes set per distinct lane among `sources` (not for a queue's own
/// stream) to `pipe`, which must already hold the writes to those lanes: a lane is added after
/// its entry, so `lanes.lua` never removes a lane that holds one. Answers each lane's queue
/// and its reply's place in the pipeline.
pub(crate) fn add_to_sets<'s>(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    sources: impl Iterator<Item = &'s str>,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for source in sources {
        let (queue, Some(l)) = split(source) else {
            continue;
        };
        if seen.contains(&source) {
            continue;
        }
        seen.push(source);
        out.push((queue.to_owned(), pipe.len()));
        pipe.cmd("SADD").arg(keys.lanes(queue)).arg(l);
    }
    out
}

/// Tells the workers (on the paused-queues channel, which makes them re-read the lanes sets and
/// end a read over an outdated set) of each queue whose lanes set just gained a lane: those of
/// `lanes` ([`add_to_sets`]) whose `SADD` answered 1 in `replies`.
pub(crate) async fn announce_new<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    lanes: &[(String, usize)],
    replies: &[RedisResult<Value>],
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    for (queue, at) in lanes {
        if matches!(replies.get(*at), Some(Ok(Value::Int(1)))) {
            pipe.cmd("PUBLISH")
                .arg(keys.paused_channel())
                .arg(queue)
                .ignore();
        }
    }
    if !pipe.is_empty() {
        pipe.query_async::<()>(con).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_name_priority_and_tenant_and_the_default_is_the_queue_stream() {
        assert_eq!(lane_of(Priority::Normal, None), None);
        assert_eq!(lane_of(Priority::High, None).as_deref(), Some("h"));
        assert_eq!(
            lane_of(Priority::Normal, Some("tn-ab12")).as_deref(),
            Some("n.tn-ab12")
        );
        for lane in ["h", "l", "n.tn-ab12", "h.tn-0190", "l.tn-ff"] {
            assert!(is_valid_lane(lane), "{lane}");
        }
        for bad in [
            "", "n", "x", "h.", "h.tn-", "h.tn-xyz", "hh", "n.ab12", "h.tn-1.2",
        ] {
            assert!(!is_valid_lane(bad), "{bad}");
        }
        assert_eq!(split("chat.h.tn-ab"), ("chat", Some("h.tn-ab")));
        assert_eq!(split("chat"), ("chat", None));
        assert_eq!(priority_of("chat.l.tn-ab"), Priority::Low);
        assert_eq!(priority_of("chat.h"), Priority::High);
        assert_eq!(priority_of("chat"), Priority::Normal);
    }

    #[test]
    fn the_schedule_gives_low_a_tenth_and_high_most() {
        let first = |p| SCHEDULE.iter().filter(|s| s[0] == p).count();
        assert_eq!(first(Priority::Low), 1);
        assert_eq!(first(Priority::Normal), 2);
        assert_eq!(first(Priority::High), 7);
        assert!((LOW_SHARE - 1.0 / SCHEDULE.len() as f64).abs() < 1e-9);
        // With only high and low waiting, low still leads one read in ten.
        let low_when_no_normal = SCHEDULE
            .iter()
            .filter(|s| s.iter().find(|p| **p != Priority::Normal) == Some(&Priority::Low))
            .count();
        assert_eq!(low_when_no_normal, 1);
    }
}
