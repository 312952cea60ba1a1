//! The bad values of the generator: per body field, whole bodies, ids, methods, headers and
//! framing. Every value here is invalid where it is put; `{long}`, `{k129}`, `{deep}` and
//! `{many}` stand for values too long to write out.

use super::{BodyKind, Rng};
use crate::raw_http::RawRequest;

/// A body field and the JSON texts it must refuse.
pub(super) struct Field {
    pub name: &'static str,
    /// Its JSON in the valid body; `None` for an optional field left out.
    pub base: Option<&'static str>,
    pub bad: &'static [&'static str],
}

const fn field(
    name: &'static str,
    base: Option<&'static str>,
    bad: &'static [&'static str],
) -> Field {
    Field { name, base, bad }
}

const TASK: &str = r#"{"kind":"tool","payload":{"tool":"echo"}}"#;

/// `POST /api/tasks` (and each task of a batch); `payload (chat)` is the payload of a chat task.
#[rustfmt::skip]
const TASK_FIELDS: &[Field] = &[
    field("kind", Some(r#""tool""#), &["1", "true", "[]", "{}", "null", r#""""#, r#""job""#, r#""TOOL""#, "{long}"]),
    field("queue", None, &["1", "[]", "{}", r#""nope""#, r#""""#, r#""a{b}""#, r#""TOOL""#, r#""tool ""#]),
    field("payload", Some(r#"{"tool":"echo"}"#), &[
        "null", r#""x""#, "1", "[]", "{}", r#"{"tool":"nope"}"#, r#"{"tool":"echo","args":[]}"#,
        r#"{"tool":1}"#, r#"{"tool":"echo","extra":1}"#, r#"{"tool":"echo","args":"x"}"#, "{deep}",
    ]),
    field("payload (chat)", None, &[
        "{}", r#"{"message":""}"#, r#"{"message":1}"#, r#"{"message":"hi","messages":[]}"#,
        r#"{"message":"hi","session_id":"a*"}"#, r#"{"message":"hi","session_id":{k129}}"#,
        r#"{"messages":[]}"#, r#"{"messages":[{"role":1}]}"#, r#"{"message":"hi","completion":1}"#,
        r#"{"message":"hi","bogus":1}"#, r#"{"message":"hi","model":[]}"#,
    ]),
    field("max_attempts", None, &["0", "101", "-1", "1.5", r#""3""#, "4294967296", "1e400", "true", "[]", "18446744073709551616"]),
    field("timeout_ms", None, &["-1", "1.5", r#""1""#, "86400001", "18446744073709551616", "1e999", "{}"]),
    field("delay_ms", None, &["-1", "0.5", r#""1""#, "2592000001", "18446744073709551616", "[1]"]),
    field("idempotency_key", None, &[
        r#""a*b""#, r#""{x}""#, r#""""#, r#"" ""#, "{k129}", "1", "[]", "{}", r#""a\u0000b""#,
    ]),
    field("cancel_on_disconnect", None, &[r#""true""#, "1", "null", "[]", "{}"]),
    field("bogus", None, &["1"]),
];

/// `POST /api/tasks/batch`; `tasks[]` is one bad task among good ones.
#[rustfmt::skip]
const BATCH_FIELDS: &[Field] = &[
    field("tasks", Some("[{task}]"), &["1", "{}", r#""x""#, "null", "[]", "{many}", "[1]", "[null]", "{deep}"]),
    field("tasks[]", None, &[]),
    field("bogus", None, &["1"]),
];

/// `POST /api/chat`, streamed or not.
#[rustfmt::skip]
const CHAT_FIELDS: &[Field] = &[
    field("message", Some(r#""hi""#), &["1", "null", "[]", "{}", r#""""#, r#""   ""#, "{deep}"]),
    field("session_id", None, &[r#""a*""#, r#""{x}""#, r#""""#, "{k129}", "1", "[]"]),
    field("model", None, &["1", "[]", "{}", "true"]),
    field("system", None, &["1", "[]", "{}", "false"]),
    field("stream", None, &[r#""true""#, "1", "null", "[]", "{}"]),
    field("detach", None, &[r#""false""#, "0", "null", "[]"]),
    field("bogus", None, &["1"]),
];

/// `POST /v1/chat/completions`: only what the dispatcher reads (unknown fields pass through).
#[rustfmt::skip]
const COMPLETION_FIELDS: &[Field] = &[
    field("model", Some(r#""echo""#), &["1", "null", "[]", "{}", r#""""#, "true"]),
    field("messages", Some(r#"[{"role":"user","content":"hi"}]"#), &[
        "1", "null", "[]", r#""x""#, "[1]", r#"[{"role":"robot"}]"#, "[{}]", "{deep}",
    ]),
    field("stream", None, &[r#""true""#, "1", "[]", "{}"]),
    field("stream_options", None, &["1", r#""x""#, "[]", r#"{"include_usage":"yes"}"#]),
    field("n", None, &["2", "0", r#""1""#, "1.5", "-1", "[]"]),
    field("detach", None, &[r#""x""#, "1", "[]"]),
];

pub(super) fn fields(kind: BodyKind) -> &'static [Field] {
    match kind {
        BodyKind::Task => TASK_FIELDS,
        BodyKind::Batch => BATCH_FIELDS,
        BodyKind::Chat => CHAT_FIELDS,
        BodyKind::Completion => COMPLETION_FIELDS,
        BodyKind::None => &[],
    }
}

/// Content types sent with bodies: the API reads JSON whatever the type says, so these are
/// noise, not defects.
pub(super) const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
];

pub(super) const METHODS: &[&str] = &[
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "FOOA",
    "M-SEARCH",
    "PROPFIND",
    "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
];

/// Task ids in a path: not UTF-8 once decoded, malformed, too long, of no queue, unknown.
pub(super) const BAD_IDS: &[&str] = &[
    "%FF",
    "%C3%28",
    "%00",
    "*",
    "%7Bx%7D",
    "..",
    "tool-",
    "tool-IIIIIIIIIIIIIIIIIIIIIIIIII",
    "{long}",
    "nope-01JDX3N4Z7Q8R9S0T1V2W3X4Y5",
    "tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5",
    "a%2Fb",
    "%20",
    "tool-01jdx3n4z7q8r9s0t1v2w3x4y5",
];

/// `Last-Event-ID`s that are not an event of a queued tool task.
pub(super) const BAD_EVENT_IDS: &[&[u8]] = &[
    b"abc",
    b"",
    b"1-2",
    b"5-0-9",
    b"99999999999999999999-0-1",
    b"5-0-1",
    b"5-0-2",
    b"5-0-0",
    b"-1-0-1",
    b"\xff\xfe",
    b"1-0-1-1",
    b"x-y-1",
];

/// A valid body of `kind` (a chat is streamed or not at random).
pub(super) fn valid_body(rng: &mut Rng, kind: BodyKind) -> String {
    match kind {
        BodyKind::Task => TASK.to_owned(),
        BodyKind::Batch => format!(r#"{{"tasks":[{TASK},{TASK}]}}"#),
        BodyKind::Chat => {
            if rng.below(2) == 0 {
                r#"{"message":"hi","stream":true}"#.to_owned()
            } else {
                r#"{"message":"hi"}"#.to_owned()
            }
        }
        BodyKind::Completion => {
            r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#.to_owned()
        }
        BodyKind::None => String::new(),
    }
}

fn expand(rng: &mut Rng, v: &str) -> String {
    let depth = 200 + rng.below(5_000);
    v.replace("{long}", &format!("\"{}\"", "x".repeat(5_000)))
        .replace("{k129}", &format!("\"{}\"", "k".repeat(129)))
        .replace(
            "{deep}",
            &format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        )
        .replace("{many}", &format!("[{}]", vec![TASK; 1001].join(",")))
        .replace("{task}", TASK)
}

fn object(pairs: &[(&str, String)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// A body of `kind` whose field number `f` holds a bad value; answers the field's name.
pub(super) fn bad_field(rng: &mut Rng, kind: BodyKind, f: usize) -> (String, String) {
    let fields = fields(kind);
    let target = &fields[f];
    if target.name == "tasks[]" {
        let inner = rng.below(TASK_FIELDS.len());
        let (inner, bad) = bad_field(rng, BodyKind::Task, inner);
        return (
            format!("tasks[].{inner}"),
            format!(r#"{{"tasks":[{TASK},{bad}]}}"#),
        );
    }
    let mut pairs: Vec<(&str, String)> = fields
        .iter()
        .filter_map(|fl| fl.base.map(|b| (fl.name, expand(rng, b))))
        .collect();
    if kind == BodyKind::Chat && rng.below(2) == 0 && target.name != "stream" {
        pairs.push(("stream", "true".to_owned()));
    }
    let bad = *rng.pick(target.bad);
    let bad = expand(rng, bad);
    let (name, value) = match target.name {
        "payload (chat)" => {
            pairs.retain(|(k, _)| *k != "kind");
            pairs.push(("kind", r#""chat""#.to_owned()));
            ("payload", bad)
        }
        other => (other, bad),
    };
    pairs.retain(|(k, _)| *k != name);
    pairs.push((name, value));
    (target.name.to_owned(), object(&pairs))
}

/// A whole body of `kind` that is wrong as a whole; answers what is wrong with it.
pub(super) fn bad_body(rng: &mut Rng, kind: BodyKind, max_body: usize) -> (&'static str, Vec<u8>) {
    let valid = valid_body(rng, kind);
    let depth = 200 + rng.below(10_000);
    let zeros = "0".repeat(5_000);
    let (name, body): (&str, Vec<u8>) = match rng.below(15) {
        0 => ("empty", vec![]),
        1 => ("truncated", valid.as_bytes()[..valid.len() / 2].to_vec()),
        2 => (
            "not JSON",
            rng.pick(&["nul", "{kind:tool}", "'x'", "{,}"])
                .as_bytes()
                .to_vec(),
        ),
        3 => (
            "binary",
            (0..1 + rng.below(64))
                .map(|i| if i == 0 { 0xFF } else { rng.next_u64() as u8 })
                .collect(),
        ),
        4 => (
            "invalid UTF-8 in a string",
            match kind {
                BodyKind::Chat => b"{\"message\":\"h\xff\xfei\"}".to_vec(),
                BodyKind::Batch => {
                    b"{\"tasks\":[{\"kind\":\"tool\",\"payload\":{\"tool\":\"ec\xffho\"}}]}"
                        .to_vec()
                }
                _ => b"{\"kind\":\"to\xffol\",\"payload\":{\"tool\":\"echo\"}}".to_vec(),
            },
        ),
        5 => (
            "byte order mark",
            [b"\xEF\xBB\xBF".as_slice(), valid.as_bytes()].concat(),
        ),
        6 => ("trailing data", {
            let tail: &[u8] = rng.pick(&["x", "}", "{}", " 1", "\0"]).as_bytes();
            [valid.as_bytes(), tail].concat()
        }),
        7 => ("two values", format!("{valid}{valid}").into_bytes()),
        8 => (
            "not an object",
            rng.pick(&["[]", "\"s\"", "42", "null", "true", "[{}]"])
                .as_bytes()
                .to_vec(),
        ),
        9 => (
            "deep nesting",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ),
        10 => ("deep unclosed", "{\"a\":".repeat(depth).into_bytes()),
        11 => (
            "huge number",
            valid
                .replacen('}', &format!(",\"bogus_n\":1{zeros}}}"), 1)
                .into_bytes(),
        ),
        12 => ("missing required fields", b"{}".to_vec()),
        13 => ("too large", {
            let pad = "a".repeat(max_body + 1_000);
            match kind {
                BodyKind::Chat => format!(r#"{{"message":"{pad}"}}"#),
                _ => TASK.replacen(r#""echo""#, &format!(r#""echo","args":{{"x":"{pad}"}}"#), 1),
            }
            .into_bytes()
        }),
        _ => ("chunked framing", b"zz\r\nabc\r\n0\r\n\r\n".to_vec()),
    };
    (name, body)
}

/// An `Authorization` value that is not the token (`None`: no header at all).
pub(super) fn bad_authorization(rng: &mut Rng, secret: &str) -> Option<Vec<u8>> {
    let short = &secret[..secret.len().saturating_sub(1)];
    let choices: Vec<Option<Vec<u8>>> = vec![
        None,
        Some(b"Bearer wrong".to_vec()),
        Some(b"Basic dXNlcjpwYXNz".to_vec()),
        Some(b"Bearer".to_vec()),
        Some(b"".to_vec()),
        Some(format!("Bearer {secret}x").into_bytes()),
        Some(format!("Bearer {short}").into_bytes()),
        Some(format!("Token {secret}").into_bytes()),
        Some([b"Bearer ".as_slice(), b"\xff\xfe"].concat()),
    ];
    rng.pick(&choices).clone()
}

/// Breaks `req` below HTTP (its request line, a header, its framing); answers how.
pub(super) fn break_framing(rng: &mut Rng, req: &mut RawRequest) -> &'static str {
    let bytes = req.to_bytes();
    let (name, verbatim): (&str, Vec<u8>) = match rng.below(8) {
        0 => ("raw 0xFF in the path", {
            req.target.extend_from_slice(b"\xff\xfe");
            req.to_bytes()
        }),
        1 => ("space in the path", {
            req.target.extend_from_slice(b" x");
            req.to_bytes()
        }),
        2 => ("NUL in a header", {
            req.headers.push(("X-Bad".into(), b"a\x00b".to_vec()));
            req.to_bytes()
        }),
        3 => (
            "header line without a colon",
            replace_once(&bytes, b"\r\n", b"\r\nNoColonHere\r\n"),
        ),
        4 => ("Content-Length not a number", {
            req.headers.push(("Content-Length".into(), b"abc".to_vec()));
            req.to_bytes()
        }),
        5 => (
            "HTTP/9.9",
            replace_once(&bytes, b" HTTP/1.1\r\n", b" HTTP/9.9\r\n"),
        ),
        6 => ("separator in the method", {
            req.method = b"G(T".to_vec();
            req.to_bytes()
        }),
        _ => ("not HTTP", b"GARBAGE\x01\x02\r\n\r\n".to_vec()),
    };
    req.verbatim = Some(verbatim);
    name
}

/// `bytes` with the first `from` replaced by `to`.
fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match bytes.windows(from.len()).position(|w| w == from) {
        Some(at) => [&bytes[..at], to, &bytes[at + from.len()..]].concat(),
        None => bytes.to_vec(),
    }
}
