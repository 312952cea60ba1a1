//! The task model (SPEC §3): ids, kinds, states, and the validation of what a client may
//! submit. The stored record itself lives in [`crate::record`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tools every worker serves; the rest need a capability switch (SPEC §7).
pub const ALWAYS_ON_TOOLS: &[&str] = &["echo", "sleep", "fail"];
/// Every tool name a task may name. A worker without the capability does not consume its queue.
pub const KNOWN_TOOLS: &[&str] = &[
    "echo",
    "sleep",
    "fail",
    "web_fetch",
    "read_file",
    "write_file",
    "list_dir",
    "exec",
];

/// Default `max_attempts` of a task that names none.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Largest `max_attempts` a task may ask for.
pub const MAX_MAX_ATTEMPTS: u32 = 100;
/// Largest `timeout_ms` a task may ask for (24 h).
pub const MAX_TIMEOUT_MS: u64 = 24 * 3_600_000;
/// Largest `delay_ms` a task may ask for (30 days).
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3_600_000;
/// Longest idempotency key or session id: a SHA-512 in hex fits.
pub const MAX_KEY_LEN: usize = 128;
/// What [`is_valid_key`] accepts, as error messages say it.
pub const KEY_RULE: &str = "1–128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'";

/// What a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// An LLM conversation turn.
    Chat,
    /// A tool call.
    Tool,
}

impl TaskKind {
    /// The name used in JSON, Redis and as the default queue.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Tool => "tool",
        }
    }

    /// Parses `chat` or `tool`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "chat" => Some(Self::Chat),
            "tool" => Some(Self::Tool),
            _ => None,
        }
    }
}

/// Where a task is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// In its stream (or the delayed set, for a scheduled task), waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// An attempt failed; waiting out its backoff in the delayed set.
    Retrying,
    /// Finished with a result.
    Succeeded,
    /// Failed permanently (bad payload, unknown tool): never retried.
    Failed,
    /// Out of attempts; its record is in the dead-letter stream.
    Dead,
    /// Cancelled on request.
    Cancelled,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 7] = [
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
        Self::Cancelled,
    ];

    /// The name used in JSON and Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a state name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether no further transition happens on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Dead | Self::Cancelled
        )
    }
}

pub use crate::record::{DecodeError, Task};

/// Whether `name` is a valid queue name: 1–48 of `a-z0-9_-`, starting with a letter or digit.
pub fn is_valid_queue_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A new task id of the ULID form, `{queue}-{ULID}`: the id of a task born delayed, whose
/// record is a hash from the start. The queue leads to every key of the task without a scan,
/// and the ULID part sorts by creation time.
pub fn new_task_id(queue: &str) -> String {
    format!("{queue}-{}", ulid_string(uuid::Uuid::now_v7()))
}

/// The id of a task born in its stream: `{queue}-{entry id}` (e.g. `tool-1733250000000-0`), the
/// queue plus the id of its first stream entry, which holds its queued record.
pub fn entry_task_id(queue: &str, entry: &str) -> String {
    format!("{queue}-{entry}")
}

/// The two forms of a task id, split into their parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm<'a> {
    /// `{queue}-{ULID}`: born delayed; its record is its hash.
    Ulid {
        /// The source: the queue, or the queue and lane.
        queue: &'a str,
        /// The 26-character ULID.
        ulid: &'a str,
    },
    /// `{queue}-{ms}-{seq}`: born in the stream; `entry` is its first entry's id.
    Entry {
        /// The source: the queue, or the queue and lane.
        queue: &'a str,
        /// The stream entry id, `{ms}-{seq}`.
        entry: &'a str,
        /// The entry's millisecond part.
        ms: u64,
    },
}

/// Splits a task id into its form and parts; `None` when it is neither form. A ULID part is 26
/// characters long and an entry's sequence number at most 20 digits, so the forms never overlap.
/// The head of either form is the task's source: its queue, or its queue and lane
/// ([`crate::lane`]).
pub fn parse_id(id: &str) -> Option<IdForm<'_>> {
    let (head, last) = id.rsplit_once('-')?;
    if last.len() == 26 && last.bytes().all(|b| CROCKFORD.contains(&b)) {
        return is_valid_source(head).then_some(IdForm::Ulid {
            queue: head,
            ulid: last,
        });
    }
    let (queue, ms) = head.rsplit_once('-')?;
    let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(ms) && digits(last) && is_valid_source(queue)) {
        return None;
    }
    Some(IdForm::Entry {
        queue,
        entry: &id[queue.len() + 1..],
        ms: ms.parse().ok()?,
    })
}

/// Whether `source` is a valid queue name, or one followed by `.` and a valid lane.
fn is_valid_source(source: &str) -> bool {
    match crate::lane::split(source) {
        (q, Some(l)) => is_valid_queue_name(q) && crate::lane::is_valid_lane(l),
        (q, None) => is_valid_queue_name(q),
    }
}

/// The queue a task id belongs to, if the id is well-formed (either form).
pub fn queue_of(id: &str) -> Option<&str> {
    source_of(id).map(crate::lane::queue_part)
}

/// The source (queue, or queue and lane) of a task id: what [`crate::keys::Keys`] builds its
/// keys from.
pub fn source_of(id: &str) -> Option<&str> {
    match parse_id(id)? {
        IdForm::Ulid { queue, .. } | IdForm::Entry { queue, .. } => Some(queue),
    }
}

/// The stream entry that holds the queued record of a task born in its stream; `None` for a
/// task born delayed (or a malformed id).
pub fn entry_of(id: &str) -> Option<&str> {
    match parse_id(id)? {
        IdForm::Entry { entry, .. } => Some(entry),
        IdForm::Ulid { .. } => None,
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Encodes 128 bits as a 26-character Crockford base32 ULID string. A UUIDv7 starts with its
/// millisecond timestamp, so the text sorts by time like a ULID.
fn ulid_string(id: uuid::Uuid) -> String {
    let mut n = id.as_u128();
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        // n & 31 is always below 32, so the index is in range.
        *slot = CROCKFORD[(n & 31) as usize];
        n >>= 5;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Milliseconds since the epoch at which a task was created: its ULID's time, or its first
/// stream entry's.
pub fn created_ms(task_id: &str) -> Option<u64> {
    let ulid = match parse_id(task_id)? {
        IdForm::Entry { ms, .. } => return Some(ms),
        IdForm::Ulid { ulid, .. } => ulid,
    };
    let mut n: u128 = 0;
    for b in ulid.bytes() {
        let v = CROCKFORD.iter().position(|&c| c == b)?;
        n = (n << 5) | v as u128;
    }
    // The first 48 of the 128 bits are the UUIDv7 millisecond timestamp.
    u64::try_from(n >> 80).ok()
}

/// A chat message as stored in a session and sent to providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The payload of a chat task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatPayload {
    /// Session whose history is loaded and extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The new user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A whole conversation, instead of `message` (no session needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// Model; the worker's `LLM_MODEL` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// An OpenAI chat-completions request from `/v1` (see [`crate::completion`]), instead of
    /// `message`, `messages`, `system` and `session_id`: the client sends the whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<crate::completion::CompletionBody>,
}

/// The payload of a tool task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPayload {
    /// Tool name, one of [`KNOWN_TOOLS`].
    pub tool: String,
    /// Arguments, tool-specific.
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Why a submitted payload cannot run: answered 400 (malformed) or 422 (unknown tool).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not the shape the kind needs; the message names the field.
    #[error("payload: {0}")]
    Malformed(String),
    /// A tool no worker knows.
    #[error("payload.tool: unknown tool {0:?}; known tools: {known}", known = KNOWN_TOOLS.join(", "))]
    UnknownTool(String),
}

/// Checks that `payload` is a valid payload for `kind`, so bad tasks fail at the door instead of
/// on a worker.
pub fn validate_payload(kind: TaskKind, payload: &Value) -> Result<(), PayloadError> {
    match kind {
        TaskKind::Tool => {
            let p: ToolPayload = decode_payload(payload)?;
            if !KNOWN_TOOLS.contains(&p.tool.as_str()) {
                return Err(PayloadError::UnknownTool(p.tool));
            }
            if !p.args.is_object() {
                return Err(PayloadError::Malformed("args: must be an object".into()));
            }
        }
        TaskKind::Chat => {
            let p: ChatPayload = decode_payload(payload)?;
            if let Some(body) = &p.completion {
                if p.message.is_some()
                    || p.messages.is_some()
                    || p.system.is_some()
                    || p.session_id.is_some()
                {
                    return Err(PayloadError::Malformed(
                        "completion: goes without `message`, `messages`, `system` and `session_id`"
                            .into(),
                    ));
                }
                return crate::completion::validate(body);
            }
            match (&p.message, &p.messages) {
                (None, None) => {
                    return Err(PayloadError::Malformed(
                        "needs `message` (a string) or `messages` (a list)".into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(PayloadError::Malformed(
                        "give either `message` or `messages`, not both".into(),
                    ));
                }
                (Some(m), None) if m.trim().is_empty() => {
                    return Err(PayloadError::Malformed("message: must not be empty".into()));
                }
                (None, Some(ms)) if ms.is_empty() => {
                    return Err(PayloadError::Malformed(
                        "messages: must not be empty".into(),
                    ));
                }
                _ => {}
            }
            if let Some(s) = &p.session_id
                && !is_valid_key(s)
            {
                return Err(PayloadError::Malformed(format!(
                    "session_id: must be {KEY_RULE}"
                )));
            }
        }
    }
    Ok(())
}

/// Decodes a payload, naming the offending field in the error.
pub fn decode_payload<T: serde::de::DeserializeOwned>(payload: &Value) -> Result<T, PayloadError> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            PayloadError::Malformed(e.into_inner().to_string())
        } else {
            PayloadError::Malformed(format!("{path}: {}", e.into_inner()))
        }
    })
}

/// Whether `s` is usable as an idempotency key or session id, which a client chooses and which
/// become part of a key name (`…idem:{key}`, `…session:{id}`): 1–[`MAX_KEY_LEN`] characters of
/// `A-Z a-z 0-9 . _ : -`. That keeps out glob characters (`* ? [ ] \`), which would make a
/// `SCAN`/`KEYS` pattern of an operator match other keys; braces, which would put a second hash
/// tag in the key; spaces, control and non-ASCII characters, which make keys unreadable in
/// `redis-cli` and logs; and long values, which cost memory in every key and index. UUIDs,
/// ULIDs, hex digests, base64url and `user:42`-style names all fit. Hashing into the key would
/// accept anything, but an operator could no longer find a session by its id.
pub fn is_valid_key(s: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_carry_their_queue_and_sort_by_time() {
        let a = new_task_id("tool");
        let b = new_task_id("tool");
        assert_eq!(queue_of(&a), Some("tool"));
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.len(), "tool-".len() + 26);
        let q = new_task_id("my-queue_2");
        assert_eq!(queue_of(&q), Some("my-queue_2"));
    }

    #[test]
    fn entry_ids_carry_their_queue_entry_and_time() {
        let id = entry_task_id("my-queue_2", "1733250000000-7");
        assert_eq!(id, "my-queue_2-1733250000000-7");
        assert_eq!(queue_of(&id), Some("my-queue_2"));
        assert_eq!(entry_of(&id), Some("1733250000000-7"));
        assert_eq!(created_ms(&id), Some(1_733_250_000_000));
        let u = new_task_id("tool-2");
        assert_eq!(queue_of(&u), Some("tool-2"));
        assert_eq!(entry_of(&u), None, "a ULID id names no entry");
        assert!(created_ms(&u).is_some());
        // A queue whose name ends in digits stays apart from the entry id.
        assert_eq!(queue_of("q-1-5-0"), Some("q-1"));
        assert_eq!(entry_of("q-1-5-0"), Some("5-0"));
    }

    #[test]
    fn malformed_ids_have_no_queue() {
        for bad in [
            "",
            "tool",
            "tool-",
            "tool-abc",
            "Tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5",
            "-01JDX3N4Z7Q8R9S0T1V2W3X4Y5",
            "tool-5",
            "tool-5-",
            "tool--0",
            "tool-a-0",
            "tool-1-x",
            "-1-0",
            "tool-123456789012345678901-0",
        ] {
            assert_eq!(queue_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn queue_names() {
        assert!(is_valid_queue_name("chat"));
        assert!(is_valid_queue_name("gpu_1-a"));
        assert!(!is_valid_queue_name(""));
        assert!(!is_valid_queue_name("_x"));
        assert!(!is_valid_queue_name("a{b}"));
        assert!(!is_valid_queue_name(&"a".repeat(49)));
    }

    #[test]
    fn payload_validation_names_the_problem() {
        assert_eq!(
            validate_payload(TaskKind::Tool, &json!({"tool": "echo", "args": {}})),
            Ok(())
        );
        assert_eq!(
            validate_payload(TaskKind::Tool, &json!({"tool": "echo"})),
            Ok(())
        );
        assert!(matches!(
            validate_payload(TaskKind::Tool, &json!({"tool": "nope"})),
            Err(PayloadError::UnknownTool(t)) if t == "nope"
        ));
        let e = validate_payload(TaskKind::Tool, &json!({"args": {}})).expect_err("no tool");
        assert!(e.to_string().contains("tool"), "{e}");
        let e = validate_payload(TaskKind::Tool, &json!({"tool": 5})).expect_err("tool not str");
        assert!(e.to_string().contains("tool"), "{e}");
        let e = validate_payload(TaskKind::Chat, &json!({})).expect_err("no message");
        assert!(e.to_string().contains("message"), "{e}");
        assert_eq!(
            validate_payload(
                TaskKind::Chat,
                &json!({"message": "hi", "session_id": "s1"})
            ),
            Ok(())
        );
    }

    #[test]
    fn keys_from_clients_are_a_safe_charset_and_at_most_128_long() {
        for good in [
            "s1",
            "0192b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
            "01JDX3N4Z7Q8R9S0T1V2W3X4Y5",
            "user:42",
            "tenant.chat_7-b",
            &"f".repeat(MAX_KEY_LEN),
        ] {
            assert!(is_valid_key(good), "{good}");
        }
        for bad in [
            "",
            "a*b",
            "a?b",
            "[ab]",
            "a\\b",
            "{tag}",
            "a b",
            "a\tb",
            "é",
            "a/b",
            "a@b",
            &"f".repeat(MAX_KEY_LEN + 1),
            &"x".repeat(10_000),
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
        let e = validate_payload(
            TaskKind::Chat,
            &json!({"message": "hi", "session_id": "a*"}),
        )
        .expect_err("glob in a session id");
        assert!(e.to_string().contains("session_id"), "{e}");
        assert!(e.to_string().contains(KEY_RULE), "{e}");
    }
}
