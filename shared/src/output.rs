//! The format of a task's output stream (`{p}{q}:out:<id>`), written by the worker that runs the
//! task and read by every dispatcher that streams the task to a client: text deltas tagged with
//! their attempt, and one end entry per attempt. A new attempt after a worker's death or a retry
//! simply writes entries with a higher attempt number; readers derive `restart` from that.
//!
//! Every write caps the stream (`MAXLEN ~`). The writer renews the TTL on an attempt's first and
//! last write (and when half of it passed), not on every write, to keep Redis commands per token
//! low; so an output stream expires at most `ttl` after its attempt's last write, like the task
//! record.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::StreamId;

use crate::completion::ToolCallDelta;

/// Field with the attempt number (1-based, decimal) that wrote the entry.
pub const ATTEMPT: &str = "a";
/// Field with a text delta (one or more coalesced provider tokens).
pub const TEXT: &str = "t";
/// Field with tool-call pieces, a JSON array of [`ToolCallDelta`] (`/v1` answers only).
pub const TOOL_CALLS: &str = "tc";
/// Field that marks the end of an attempt's text; its value is the attempt's outcome.
pub const END: &str = "end";

/// Approximate cap of an output stream, in entries (`MAXLEN ~`): a runaway answer cannot grow
/// Redis without bound; a reader that falls this far behind gets a gap it can detect.
pub const DEFAULT_MAXLEN: u64 = 10_000;

/// How an attempt's text ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The provider finished the answer.
    Finished,
    /// The attempt failed after (or before) writing text; another attempt may follow.
    Failed,
}

impl AttemptEnd {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }
}

/// One entry of an output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Text the provider sent during `attempt`.
    Delta {
        /// The attempt.
        attempt: u32,
        /// The text.
        text: String,
    },
    /// Pieces of the answer's tool calls, in the order they arrived (after any text written
    /// before them).
    ToolCalls {
        /// The attempt.
        attempt: u32,
        /// The pieces.
        calls: Vec<ToolCallDelta>,
    },
    /// `attempt` wrote its last text.
    End {
        /// The attempt.
        attempt: u32,
        /// How it ended.
        end: AttemptEnd,
    },
}

impl Entry {
    /// The attempt that wrote the entry.
    pub fn attempt(&self) -> u32 {
        match self {
            Self::Delta { attempt, .. }
            | Self::ToolCalls { attempt, .. }
            | Self::End { attempt, .. } => *attempt,
        }
    }

    /// The entry's fields, in the one shape every writer uses.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Delta { attempt, text } => {
                vec![(ATTEMPT, attempt.to_string()), (TEXT, text.clone())]
            }
            Self::ToolCalls { attempt, calls } => {
                // A list of plain structs always serialises; the fallback is unreachable.
                let json = serde_json::to_string(calls).unwrap_or_else(|_| "[]".into());
                vec![(ATTEMPT, attempt.to_string()), (TOOL_CALLS, json)]
            }
            Self::End { attempt, end } => {
                vec![
                    (ATTEMPT, attempt.to_string()),
                    (END, end.as_str().to_owned()),
                ]
            }
        }
    }
}

/// An entry with its stream id (`<ms>-<seq>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The Redis stream id.
    pub id: String,
    /// The entry.
    pub entry: Entry,
}

/// Why a stream entry is not an output entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// No attempt, or not a positive integer.
    #[error("output entry {0} has no valid `a` (attempt) field")]
    Attempt(String),
    /// Neither text, tool calls nor an end mark.
    #[error("output entry {0} has neither `t`, `tc` nor `end`")]
    Empty(String),
    /// Tool-call pieces that are not a JSON list of pieces.
    #[error("output entry {0} has an unreadable `tc` value: {1}")]
    ToolCalls(String, String),
    /// An end mark with an unknown outcome.
    #[error("output entry {0} has an unknown `end` value {1:?}")]
    End(String, String),
}

/// Decodes `entry` of an output stream.
pub fn decode(entry: &StreamId) -> Result<Stored, OutputError> {
    let attempt = entry
        .get::<String>(ATTEMPT)
        .and_then(|a| a.parse::<u32>().ok())
        .filter(|a| *a > 0)
        .ok_or_else(|| OutputError::Attempt(entry.id.clone()))?;
    let decoded = if let Some(text) = entry.get::<String>(TEXT) {
        Entry::Delta { attempt, text }
    } else if let Some(tc) = entry.get::<String>(TOOL_CALLS) {
        let calls = serde_json::from_str(&tc)
            .map_err(|e| OutputError::ToolCalls(entry.id.clone(), e.to_string()))?;
        Entry::ToolCalls { attempt, calls }
    } else if let Some(end) = entry.get::<String>(END) {
        let end = match end.as_str() {
            "finished" => AttemptEnd::Finished,
            "failed" => AttemptEnd::Failed,
            _ => return Err(OutputError::End(entry.id.clone(), end)),
        };
        Entry::End { attempt, end }
    } else {
        return Err(OutputError::Empty(entry.id.clone()));
    };
    Ok(Stored {
        id: entry.id.clone(),
        entry: decoded,
    })
}

/// Appends `entries` to the output stream `key` in one round trip, capping it at `maxlen`
/// (approximately) and, when `ttl` is given, renewing its TTL. The one writer of the format.
pub async fn append<C: ConnectionLike>(
    con: &mut C,
    key: &str,
    entries: &[Entry],
    maxlen: u64,
    ttl: Option<Duration>,
) -> redis::RedisResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for entry in entries {
        let cmd = pipe
            .cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(maxlen)
            .arg("*");
        for (field, value) in entry.fields() {
            cmd.arg(field).arg(value);
        }
        cmd.ignore();
    }
    if let Some(ttl) = ttl {
        pipe.cmd("PEXPIRE")
            .arg(key)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .ignore();
    }
    pipe.query_async(con).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> StreamId {
        crate::test_support::stream_entry("5-0", fields)
    }

    #[test]
    fn written_fields_decode_to_the_same_entry() {
        for e in [
            Entry::Delta {
                attempt: 2,
                text: "hello ".to_owned(),
            },
            Entry::End {
                attempt: 1,
                end: AttemptEnd::Failed,
            },
            Entry::ToolCalls {
                attempt: 1,
                calls: vec![ToolCallDelta {
                    index: 0,
                    id: Some("call_1".into()),
                    name: Some("f".into()),
                    arguments: "{".into(),
                }],
            },
            Entry::End {
                attempt: 3,
                end: AttemptEnd::Finished,
            },
        ] {
            let fields: Vec<(&str, String)> = e.fields();
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let back = decode(&entry(&pairs)).expect("decodes");
            assert_eq!(back.entry, e);
            assert_eq!(back.id, "5-0");
        }
    }

    #[test]
    fn malformed_entries_are_refused_by_name() {
        let e = decode(&entry(&[("t", "x")])).expect_err("no attempt");
        assert_eq!(e, OutputError::Attempt("5-0".to_owned()));
        let e = decode(&entry(&[("a", "0"), ("t", "x")])).expect_err("attempt 0");
        assert_eq!(e, OutputError::Attempt("5-0".to_owned()));
        let e = decode(&entry(&[("a", "1")])).expect_err("empty");
        assert_eq!(e, OutputError::Empty("5-0".to_owned()));
        let e = decode(&entry(&[("a", "1"), ("tc", "{")])).expect_err("bad tool calls");
        assert!(matches!(e, OutputError::ToolCalls(..)), "{e}");
        let e = decode(&entry(&[("a", "1"), ("end", "odd")])).expect_err("bad end");
        assert!(e.to_string().contains("odd"), "{e}");
    }
}
