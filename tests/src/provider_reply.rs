//! What [`crate::provider_server`] answers to one request: a scripted [`Reply`] of text tokens
//! and tool calls (each call's arguments streamed in pieces, as the real APIs send them), with a
//! delay before each piece, a failure after k pieces, an HTTP error (with headers such as
//! `Retry-After`), one whole JSON answer, or a finish reason of its own; its prompt tokens may be
//! counted from the request, as a real provider does.

use std::time::Duration;

use serde_json::Value;

/// Characters of a tool call's arguments per streamed piece.
const ARGUMENT_PIECE_CHARS: usize = 6;

/// How a streamed answer breaks off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// After `after` tokens the connection is cut without ending the body.
    Drop {
        /// Tokens sent first.
        after: usize,
    },
    /// After `after` tokens the format's error event is sent and the stream ends.
    ErrorEvent {
        /// Tokens sent first.
        after: usize,
    },
}

/// A tool call the scripted model asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedCall {
    /// The call's id (`call_…` in OpenAI's answers, `toolu_…` in Anthropic's).
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments JSON text in the pieces it streams in; their concatenation is the whole.
    pub pieces: Vec<String>,
}

impl ScriptedCall {
    /// The whole arguments text.
    pub fn arguments(&self) -> String {
        self.pieces.concat()
    }

    /// The arguments as JSON (Anthropic's `input`); `{}` when they are not JSON.
    pub fn input(&self) -> Value {
        serde_json::from_str(&self.arguments())
            .unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The answer's tokens; their concatenation is the answer.
    pub tokens: Vec<String>,
    /// Tool calls after the text, in order.
    pub tool_calls: Vec<ScriptedCall>,
    /// Wait before each token or tool-call piece (and before the whole answer when not
    /// streaming).
    pub delay: Duration,
    /// Break the stream off.
    pub failure: Option<Failure>,
    /// Answer this HTTP status and JSON body instead.
    pub status: Option<(u16, Value)>,
    /// Answer one JSON document even when the request asked to stream.
    pub whole: bool,
    /// Prompt and completion tokens reported.
    pub usage: (u64, u64),
    /// Report the prompt tokens counted from the request ([`prompt_tokens`]) instead of
    /// `usage.0`.
    pub count_prompt: bool,
    /// Extra headers of the answer (`Retry-After` on a 429).
    pub headers: Vec<(String, String)>,
    /// The finish reason written as is (OpenAI's `finish_reason`, Anthropic's `stop_reason`);
    /// by default `stop` / `end_turn`, or `tool_calls` / `tool_use` when there are tool calls.
    pub finish: Option<String>,
}

impl Reply {
    /// An answer of `n` tokens: `w0`, ` w1`, ` w2`, …
    pub fn tokens(n: usize) -> Self {
        Self::from_tokens((0..n).map(|i| {
            if i == 0 {
                "w0".to_owned()
            } else {
                format!(" w{i}")
            }
        }))
    }

    /// An answer of `text`, one token per word (with its trailing space).
    pub fn text(text: &str) -> Self {
        Self::from_tokens(text.split_inclusive(' ').map(str::to_owned))
    }

    fn from_tokens(tokens: impl Iterator<Item = String>) -> Self {
        let tokens: Vec<String> = tokens.collect();
        let n = tokens.len() as u64;
        Self {
            tokens,
            tool_calls: Vec::new(),
            delay: Duration::ZERO,
            failure: None,
            status: None,
            whole: false,
            usage: (11, n),
            count_prompt: false,
            headers: Vec::new(),
            finish: None,
        }
    }

    /// Reports the prompt tokens counted from the request ([`prompt_tokens`]).
    pub fn count_prompt(mut self) -> Self {
        self.count_prompt = true;
        self
    }

    /// Sends `name: value` with the answer.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// An HTTP error answer.
    pub fn status(code: u16, body: Value) -> Self {
        Self {
            status: Some((code, body)),
            ..Self::tokens(0)
        }
    }

    /// Adds a tool call after the text (and any earlier calls); its `arguments` text streams in
    /// pieces of a few characters. `Reply::tokens(0).tool_call(…)` asks for a tool and says
    /// nothing.
    pub fn tool_call(mut self, id: &str, name: &str, arguments: &str) -> Self {
        let chars: Vec<char> = arguments.chars().collect();
        let pieces = chars
            .chunks(ARGUMENT_PIECE_CHARS)
            .map(|c| c.iter().collect())
            .collect();
        self.tool_calls.push(ScriptedCall {
            id: id.to_owned(),
            name: name.to_owned(),
            pieces,
        });
        self
    }

    /// Ends with this finish reason, written as is.
    pub fn finish(mut self, reason: &str) -> Self {
        self.finish = Some(reason.to_owned());
        self
    }

    /// Reports these prompt and completion token counts.
    pub fn usage(mut self, prompt: u64, completion: u64) -> Self {
        self.usage = (prompt, completion);
        self
    }

    /// Waits `delay` before each token.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Cuts the connection after `after` tokens.
    pub fn drop_after(mut self, after: usize) -> Self {
        self.failure = Some(Failure::Drop { after });
        self
    }

    /// Sends the format's error event after `after` tokens.
    pub fn error_after(mut self, after: usize) -> Self {
        self.failure = Some(Failure::ErrorEvent { after });
        self
    }

    /// Answers one JSON document even to a streaming request.
    pub fn whole(mut self) -> Self {
        self.whole = true;
        self
    }

    /// The whole answer's text.
    pub fn answer(&self) -> String {
        self.tokens.concat()
    }

    /// The streamed pieces in order: the text tokens, then each call's start and its arguments.
    pub fn pieces(&self) -> Vec<Piece<'_>> {
        let text = self.tokens.iter().map(|t| Piece::Text(t));
        let calls = self.tool_calls.iter().enumerate().flat_map(|(index, c)| {
            std::iter::once(Piece::CallStart {
                index,
                id: &c.id,
                name: &c.name,
            })
            .chain(
                c.pieces
                    .iter()
                    .map(move |args| Piece::CallArguments { index, args }),
            )
        });
        text.chain(calls).collect()
    }
}

/// The prompt tokens of a request body as this server counts them: a token per four characters
/// of the messages' text (and of `system`), plus three per message. Close to, not the same as,
/// the worker's own estimate, as a real tokenizer would be.
pub fn prompt_tokens(body: &Value) -> u64 {
    fn chars(v: &Value) -> usize {
        match v {
            Value::String(s) => s.chars().count(),
            Value::Array(parts) => parts.iter().map(chars).sum(),
            Value::Object(o) => o.get("text").map_or(0, chars),
            _ => 0,
        }
    }
    let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let text: usize = messages.iter().map(|m| chars(&m["content"])).sum::<usize>()
        + body.get("system").map_or(0, chars);
    text.div_ceil(4) as u64 + 3 * messages.len() as u64
}

/// One streamed piece of an answer, sent after the delay and counted as a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A text token.
    Text(&'a str),
    /// The start of tool call `index` (its id and name, no arguments yet).
    CallStart {
        /// Which call (0-based).
        index: usize,
        /// Its id.
        id: &'a str,
        /// The function's name.
        name: &'a str,
    },
    /// More of call `index`'s arguments text.
    CallArguments {
        /// Which call (0-based).
        index: usize,
        /// The text.
        args: &'a str,
    },
}
