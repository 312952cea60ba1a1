//! The answer pieces an output writer received and has not written yet, already in the shape of
//! output entries: consecutive text joins into one delta entry, consecutive tool-call pieces
//! into one `tc` entry (a call's argument pieces merged), and text and tool calls keep their
//! order, so a reader sees the answer as the provider sent it.

use switchyard_shared::completion::ToolCallDelta;
use switchyard_shared::output::Entry;

use crate::providers::sink::Piece;

/// One entry to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Text(String),
    ToolCalls(Vec<ToolCallDelta>),
}

/// Unwritten pieces, coalesced.
#[derive(Debug, Default)]
pub struct Buffer {
    pending: Vec<Pending>,
    bytes: usize,
}

impl Buffer {
    /// Adds a piece after the ones held.
    pub fn push(&mut self, piece: Piece) {
        match piece {
            Piece::Text(text) => {
                self.bytes += text.len();
                match self.pending.last_mut() {
                    Some(Pending::Text(t)) => t.push_str(&text),
                    _ => self.pending.push(Pending::Text(text)),
                }
            }
            Piece::ToolCall(delta) => {
                self.bytes += delta.arguments.len()
                    + delta.id.as_ref().map_or(0, String::len)
                    + delta.name.as_ref().map_or(0, String::len);
                match self.pending.last_mut() {
                    Some(Pending::ToolCalls(calls)) => merge(calls, delta),
                    _ => self.pending.push(Pending::ToolCalls(vec![delta])),
                }
            }
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Text and argument bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The held pieces as `attempt`'s entries, in order.
    pub fn entries(&self, attempt: u32) -> Vec<Entry> {
        self.pending
            .iter()
            .map(|p| match p {
                Pending::Text(text) => Entry::Delta {
                    attempt,
                    text: text.clone(),
                },
                Pending::ToolCalls(calls) => Entry::ToolCalls {
                    attempt,
                    calls: calls.clone(),
                },
            })
            .collect()
    }

    /// Forgets what was held (it was written).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.bytes = 0;
    }
}

/// A piece that only continues the arguments of the call before it joins that piece; one that
/// starts a call (id or name) or belongs to another call stays apart.
fn merge(calls: &mut Vec<ToolCallDelta>, delta: ToolCallDelta) {
    match calls.last_mut() {
        Some(last) if last.index == delta.index && delta.id.is_none() && delta.name.is_none() => {
            last.arguments.push_str(&delta.arguments);
        }
        _ => calls.push(delta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(index: u32, id: Option<&str>, args: &str) -> Piece {
        Piece::ToolCall(ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: id.map(|_| "f".to_owned()),
            arguments: args.to_owned(),
        })
    }

    fn delta(index: u32, id: Option<&str>, args: &str) -> ToolCallDelta {
        match call(index, id, args) {
            Piece::ToolCall(d) => d,
            Piece::Text(_) => unreachable!("call() builds tool-call pieces"),
        }
    }

    #[test]
    fn text_and_tool_calls_keep_their_order_and_argument_pieces_merge() {
        let mut b = Buffer::default();
        for p in [
            Piece::Text("Let ".into()),
            Piece::Text("me see.".into()),
            call(0, Some("c1"), ""),
            call(0, None, "{\"a\""),
            call(0, None, ":1}"),
            call(1, Some("c2"), "{"),
            call(1, None, "}"),
            Piece::Text("done".into()),
        ] {
            b.push(p);
        }
        assert_eq!(
            b.entries(2),
            vec![
                Entry::Delta {
                    attempt: 2,
                    text: "Let me see.".into()
                },
                Entry::ToolCalls {
                    attempt: 2,
                    calls: vec![
                        delta(0, Some("c1"), "{\"a\":1}"),
                        delta(1, Some("c2"), "{}")
                    ]
                },
                Entry::Delta {
                    attempt: 2,
                    text: "done".into()
                },
            ]
        );
        // Text, each call's id and name, and argument text.
        assert_eq!(b.bytes(), 11 + (3 + 4 + 3) + (4 + 1) + 4);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        assert_eq!(b.entries(2), Vec::new());
    }

    #[test]
    fn pieces_of_another_call_are_not_merged_into_the_last_one() {
        let mut b = Buffer::default();
        b.push(call(0, Some("c1"), "{"));
        b.push(call(1, None, "x"));
        b.push(call(0, None, "}"));
        let Entry::ToolCalls { calls, .. } = &b.entries(1)[0] else {
            panic!("a tool-call entry");
        };
        assert_eq!(calls.len(), 3, "interleaved calls stay apart: {calls:?}");
    }
}
