//! Turns a task's output stream into the events a streaming client sees, with their ids. The
//! ids come from the stream alone, so every dispatcher derives the same events with the same ids
//! and a client can resume (`Last-Event-ID`) on any of them.
//!
//! An event id is `<ms>-<seq>-<step>`: the Redis id of the output entry the event comes from,
//! and the step within that entry: `0` opens (the `start` event at the virtual entry `0-0`, a
//! `restart` at the first entry of a new attempt), `1` carries text (`delta`, or `tool_calls`
//! pieces of a `/v1` answer), `2` closes (the terminal `done` / `error`, after the last entry
//! read, `0-0-2` when there was none). Ids compare as triples of integers, in the order the
//! events happen.

use std::fmt;
use std::str::FromStr;

use switchyard_shared::completion::ToolCallDelta;
use switchyard_shared::output::{Entry, Stored};

/// Where an event sits within its output entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// `start` or `restart`.
    Open = 0,
    /// `delta` or `tool_calls`.
    Text = 1,
    /// `done` or `error`.
    Close = 2,
}

/// A Redis stream entry id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl FromStr for EntryId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.split_once('-').ok_or(())?;
        Ok(Self {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The id of one SSE event of a task's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The output entry the event comes from (`0-0` for `start`).
    pub entry: EntryId,
    /// The step within it.
    pub step: Step,
}

impl EventId {
    /// The id of the `start` event.
    pub const START: Self = Self {
        entry: EntryId { ms: 0, seq: 0 },
        step: Step::Open,
    };
}

/// Why a `Last-Event-ID` is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Last-Event-ID: {0:?} is not an event id of this stream (they look like `1733220000000-0-1`)"
)]
pub struct BadEventId(pub String);

impl FromStr for EventId {
    type Err = BadEventId;

    fn from_str(s: &str) -> Result<Self, BadEventId> {
        let bad = || BadEventId(s.to_owned());
        let (entry, step) = s.trim().rsplit_once('-').ok_or_else(bad)?;
        let step = match step {
            "0" => Step::Open,
            "1" => Step::Text,
            "2" => Step::Close,
            _ => return Err(bad()),
        };
        Ok(Self {
            entry: entry.parse().map_err(|()| bad())?,
            step,
        })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.entry, self.step as u8)
    }
}

/// An event derived from the output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// A new attempt begins after text the client has shown: drop that text.
    Restart {
        /// The new attempt.
        attempt: u32,
    },
    /// Text of the current attempt.
    Delta {
        /// The attempt.
        attempt: u32,
        /// The text.
        text: String,
    },
    /// Pieces of the answer's tool calls (a `/v1` request with `tools`): content, as text is.
    ToolCalls {
        /// The attempt.
        attempt: u32,
        /// The pieces.
        calls: Vec<ToolCallDelta>,
    },
}

/// The state of a replay: which attempt is current, whether the client shows text of it, and
/// the last entry applied. Fed every entry from the stream's start, it derives the same events
/// wherever it runs.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    attempt: u32,
    showing_text: bool,
    last: EntryId,
}

impl Replay {
    /// The last entry applied (`0-0` before any).
    pub fn last(&self) -> EntryId {
        self.last
    }

    /// The id the terminal event gets: after every entry applied so far.
    pub fn terminal_id(&self) -> EventId {
        EventId {
            entry: self.last,
            step: Step::Close,
        }
    }

    /// Applies `stored` and appends the events it yields to `out`. Entries at or before the
    /// last one applied are ignored (a read that overlaps an earlier one), and so are entries of
    /// an attempt older than the current one (a worker that lost its task and wrote on).
    pub fn apply(&mut self, stored: &Stored, out: &mut Vec<(EventId, OutputEvent)>) {
        let Ok(id) = stored.id.parse::<EntryId>() else {
            return;
        };
        if id <= self.last {
            return;
        }
        self.last = id;
        let attempt = stored.entry.attempt();
        if attempt < self.attempt {
            return;
        }
        if attempt > self.attempt {
            self.attempt = attempt;
            if self.showing_text {
                self.showing_text = false;
                out.push((
                    EventId {
                        entry: id,
                        step: Step::Open,
                    },
                    OutputEvent::Restart { attempt },
                ));
            }
        }
        let event = match &stored.entry {
            Entry::Delta { attempt, text } => OutputEvent::Delta {
                attempt: *attempt,
                text: text.clone(),
            },
            Entry::ToolCalls { attempt, calls } => OutputEvent::ToolCalls {
                attempt: *attempt,
                calls: calls.clone(),
            },
            Entry::End { .. } => return,
        };
        self.showing_text = true;
        out.push((
            EventId {
                entry: id,
                step: Step::Text,
            },
            event,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::output::AttemptEnd;

    fn delta(id: &str, attempt: u32, text: &str) -> Stored {
        Stored {
            id: id.to_owned(),
            entry: Entry::Delta {
                attempt,
                text: text.to_owned(),
            },
        }
    }

    fn end(id: &str, attempt: u32, end: AttemptEnd) -> Stored {
        Stored {
            id: id.to_owned(),
            entry: Entry::End { attempt, end },
        }
    }

    fn ids(events: &[(EventId, OutputEvent)]) -> Vec<String> {
        events.iter().map(|(id, _)| id.to_string()).collect()
    }

    #[test]
    fn event_ids_round_trip_and_order_as_events_happen() {
        for s in ["0-0-0", "17-3-1", "17-3-2", "18446744073709551615-0-0"] {
            assert_eq!(s.parse::<EventId>().expect(s).to_string(), s);
        }
        let order = ["0-0-0", "5-0-0", "5-0-1", "5-1-1", "6-0-1", "6-0-2"];
        let parsed: Vec<EventId> = order.iter().map(|s| s.parse().expect(s)).collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]), "{parsed:?}");
        for bad in [
            "", "5", "5-0", "5-0-3", "a-0-1", "5-x-1", "-5-0-1", "5-0-1-1",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn deltas_then_a_new_attempt_yield_a_restart_at_its_first_entry() {
        let mut r = Replay::default();
        let mut out = vec![];
        for e in [
            delta("5-0", 1, "Hel"),
            delta("5-1", 1, "lo"),
            delta("9-0", 2, "Hi"),
            end("9-1", 2, AttemptEnd::Finished),
        ] {
            r.apply(&e, &mut out);
        }
        assert_eq!(ids(&out), ["5-0-1", "5-1-1", "9-0-0", "9-0-1"]);
        assert_eq!(out[2].1, OutputEvent::Restart { attempt: 2 });
        assert_eq!(r.terminal_id().to_string(), "9-1-2");
    }

    #[test]
    fn tool_call_pieces_are_content_a_new_attempt_must_restart() {
        let mut r = Replay::default();
        let mut out = vec![];
        let calls = vec![ToolCallDelta {
            index: 0,
            id: Some("call_1".into()),
            name: Some("f".into()),
            arguments: String::new(),
        }];
        r.apply(
            &Stored {
                id: "5-0".into(),
                entry: Entry::ToolCalls {
                    attempt: 1,
                    calls: calls.clone(),
                },
            },
            &mut out,
        );
        r.apply(&delta("6-0", 2, "x"), &mut out);
        assert_eq!(ids(&out), ["5-0-1", "6-0-0", "6-0-1"]);
        assert_eq!(out[0].1, OutputEvent::ToolCalls { attempt: 1, calls });
        assert_eq!(out[1].1, OutputEvent::Restart { attempt: 2 });
    }

    #[test]
    fn an_attempt_that_showed_no_text_needs_no_restart() {
        let mut r = Replay::default();
        let mut out = vec![];
        r.apply(&end("3-0", 1, AttemptEnd::Failed), &mut out);
        r.apply(&delta("4-0", 2, "a"), &mut out);
        assert_eq!(ids(&out), ["4-0-1"]);
    }

    #[test]
    fn overlapping_reads_and_a_stale_attempt_add_nothing() {
        let mut r = Replay::default();
        let mut out = vec![];
        r.apply(&delta("5-0", 2, "x"), &mut out);
        r.apply(&delta("5-0", 2, "x"), &mut out);
        r.apply(&delta("4-0", 2, "older"), &mut out);
        r.apply(&delta("6-0", 1, "late writer"), &mut out);
        assert_eq!(ids(&out), ["5-0-1"]);
        assert_eq!(r.last().to_string(), "6-0");
    }
}
