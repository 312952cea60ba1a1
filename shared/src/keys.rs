//! The Redis key layout (SPEC §4): every key name the project uses is built here and nowhere else.
//!
//! Keys of one queue carry the queue name as a hash tag (`sy:{chat}:stream`), so every script
//! touches a single cluster slot and a queue can live on one Redis Cluster node.
//!
//! Every builder that takes a queue also accepts a lane source (`chat.h.tn-…`, see
//! [`crate::lane`]): the hash tag is the source's queue, and only [`Keys::stream`] names the
//! lane. So a task id's source leads to all of its keys.

use crate::lane;
use crate::task::{is_valid_key, is_valid_queue_name, queue_of};

/// Builds key names under one deployment prefix (`QUEUE_PREFIX`, default `sy:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// A client-chosen key (an idempotency key) within the space of `tenant`: `<tenant>:<key>`;
/// the admin key's (`None`) stay as they are. Tenant ids hold no `:`, so spaces never overlap.
pub fn tenant_scoped(tenant: Option<&str>, key: &str) -> String {
    match tenant {
        Some(t) => format!("{t}:{key}"),
        None => key.to_owned(),
    }
}

/// The consumer group every worker joins on every queue stream.
pub const GROUP: &str = "workers";

impl Keys {
    /// Key builder for the deployment whose keys all start with `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The deployment prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn queue_key(&self, source: &str, suffix: &str) -> String {
        format!("{}{{{}}}:{}", self.prefix, lane::queue_part(source), suffix)
    }

    /// Stream (consumer group `workers`): waiting and in-flight entries of a queue's lane; the
    /// queue's own stream for its default lane (a source without a lane).
    pub fn stream(&self, source: &str) -> String {
        match lane::split(source) {
            (queue, Some(l)) => self.queue_key(queue, &format!("stream:{l}")),
            (queue, None) => self.queue_key(queue, "stream"),
        }
    }

    /// Set: the lanes of a queue that may hold entries (waiting or running), besides its own
    /// stream. Added to by whoever appends to a lane; a lane is removed only while its stream
    /// is empty (`lanes.lua`). Workers read it every heartbeat and on a notice.
    pub fn lanes(&self, queue: &str) -> String {
        self.queue_key(queue, "lanes")
    }

    /// Hash: the task record.
    pub fn task(&self, queue: &str, id: &str) -> String {
        self.queue_key(queue, &format!("task:{id}"))
    }

    /// Capped stream: one entry `{id, state}` per terminal state, tailed by dispatchers.
    pub fn events(&self, queue: &str) -> String {
        self.queue_key(queue, "events")
    }

    /// Sorted set: tasks waiting for a retry backoff or a scheduled time, score = due ms.
    pub fn delayed(&self, queue: &str) -> String {
        self.queue_key(queue, "delayed")
    }

    /// Stream: dead-lettered tasks with their last error.
    pub fn dead(&self, queue: &str) -> String {
        self.queue_key(queue, "dead")
    }

    /// Hash: counters per state, kept by the scripts.
    pub fn stats(&self, queue: &str) -> String {
        self.queue_key(queue, "stats")
    }

    /// Stream (capped, TTL): a task's output as it is written (text deltas per attempt, then an
    /// end entry per attempt); format in [`crate::output`].
    pub fn output(&self, queue: &str, id: &str) -> String {
        self.queue_key(queue, &format!("out:{id}"))
    }

    /// String (counter) with TTL: how many times a client opened the task's stream
    /// (`GET /api/tasks/{id}/stream`). A dispatcher whose streaming client went away compares it
    /// at the end of `RESUME_GRACE_MS`: a resume on any dispatcher keeps the task running.
    pub fn resumes(&self, queue: &str, id: &str) -> String {
        self.queue_key(queue, &format!("resumes:{id}"))
    }

    /// String with TTL: idempotency key → task id.
    pub fn idempotency(&self, queue: &str, key: &str) -> String {
        self.queue_key(queue, &format!("idem:{key}"))
    }

    /// Hash with TTL: a live worker's heartbeat.
    pub fn worker(&self, worker_id: &str) -> String {
        format!("{}worker:{}", self.prefix, worker_id)
    }

    /// Sorted set: worker id → last heartbeat (ms).
    pub fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// List with TTL: chat history of a session, JSON messages.
    pub fn session(&self, session_id: &str) -> String {
        format!("{}session:{}", self.prefix, session_id)
    }

    /// Pub/sub channel: ids of running tasks whose cancellation was requested.
    pub fn cancel_channel(&self) -> String {
        format!("{}cancel", self.prefix)
    }

    /// Hash (fields `r`, `t`: the next free time of the request and token budgets, ms on Redis'
    /// clock; `ratio`, `out`: the token estimate's calibration), with TTL: one provider limit
    /// budget shared by every worker: a provider's (`budget:openai`), or a configured model's
    /// own (`budget:openai:gpt-4o`). All limit keys share the `{limits}` hash tag: one slot.
    pub fn limit_budget(&self, provider: &str, model: Option<&str>) -> String {
        self.budget_key(provider, model.map(model_part).as_deref())
    }

    /// String with a PX TTL: `provider` told the fleet to leave `model` alone (a 429 with
    /// `Retry-After`) until the key expires. The model comes from the task, so a name outside
    /// [`is_plain_model`] is replaced by a hash of it.
    pub fn limit_pause(&self, provider: &str, model: &str) -> String {
        self.pause_key(provider, &model_part(model))
    }

    /// [`Keys::limit_budget`] with the model already made a key part.
    fn budget_key(&self, provider: &str, part: Option<&str>) -> String {
        match part {
            Some(m) => format!("{}{{limits}}:budget:{provider}:{m}", self.prefix),
            None => format!("{}{{limits}}:budget:{provider}", self.prefix),
        }
    }

    /// [`Keys::limit_pause`] with the model already made a key part.
    fn pause_key(&self, provider: &str, part: &str) -> String {
        format!("{}{{limits}}:pause:{provider}:{part}", self.prefix)
    }

    /// Hash: paused queue name → when it was paused (ms). One key for all queues, so a worker
    /// learns the state of every queue it serves in one `HGETALL` per heartbeat; format in
    /// [`crate::paused`].
    pub fn paused(&self) -> String {
        format!("{}paused", self.prefix)
    }

    /// Pub/sub channel: the name of a queue just paused or resumed (a hint to re-read
    /// [`Keys::paused`] at once instead of on the next heartbeat).
    pub fn paused_channel(&self) -> String {
        format!("{}pause", self.prefix)
    }

    /// Set: the ids of every tenant. The tenant keys share the `{tenants}` hash tag, so a
    /// tenant's record, key and list entry change in one `MULTI` on one cluster slot.
    pub fn tenants(&self) -> String {
        format!("{}{{tenants}}:ids", self.prefix)
    }

    /// Hash: a tenant's record (`shared::tenant`).
    pub fn tenant(&self, id: &str) -> String {
        format!("{}{{tenants}}:tenant:{}", self.prefix, id)
    }

    /// String: the id of the tenant whose API key has this SHA-256 (hex).
    pub fn tenant_key(&self, key_hash: &str) -> String {
        format!("{}{{tenants}}:key:{}", self.prefix, key_hash)
    }

    /// String (counter) with TTL: tasks a tenant enqueued in its current quota window. Its own
    /// hash tag: every enqueue touches it, so tenants spread over the cluster's slots.
    pub fn tenant_rpm(&self, id: &str) -> String {
        format!("{}rpm:{{{}}}", self.prefix, id)
    }

    /// Sorted set: ids of a tenant's tasks running now (its `max_running` quota), each scored by
    /// when its slot lapses (ms on Redis' clock) unless its worker refreshes it, so a killed
    /// worker's slots free themselves. Written only for tenants with `max_running`. Its own hash
    /// tag, the tenant's, like [`Keys::tenant_rpm`].
    pub fn tenant_running(&self, id: &str) -> String {
        format!("{}running:{{{}}}", self.prefix, id)
    }

    /// Hash with TTL, the layout of [`Keys::limit_budget`]: a tenant's `tpm` budget, shared by
    /// every worker. Written only for tenants with `tpm`.
    pub fn tenant_tokens(&self, id: &str) -> String {
        format!("{}tpm:{{{}}}", self.prefix, id)
    }

    /// String (JSON) with a PX TTL: one signed-in browser of the web console, named by the
    /// SHA-256 (hex) of its session cookie; format in [`crate::console`].
    pub fn console_session(&self, token_hash: &str) -> String {
        format!("{}console:{}", self.prefix, token_hash)
    }

    /// Which function of this layout builds `key`, with well-formed parts: a valid queue name, a
    /// task id of that queue, an idempotency key or session id the API accepts, a worker id, a
    /// provider and a model name as limit keys hold them.
    /// `None` for any other key, e.g. one a client string put there. For audits and tests (a
    /// `SCAN` of the prefix must find nothing else); it matches against the functions' own
    /// output, so the layout has no second copy.
    pub fn recognise(&self, key: &str) -> Option<KeyKind> {
        use Hole::{ClientKey, Lane, Model, Provider, Queue, TaskId, WorkerId};
        let (q, t, c, w) = (
            Queue.mark(),
            TaskId.mark(),
            ClientKey.mark(),
            WorkerId.mark(),
        );
        let (p, m) = (Provider.mark(), Model.mark());
        let layouts = [
            (KeyKind::Stream, self.stream(q)),
            (
                KeyKind::Stream,
                format!("{}:{}", self.stream(q), Lane.mark()),
            ),
            (KeyKind::Lanes, self.lanes(q)),
            (KeyKind::Task, self.task(q, t)),
            (KeyKind::Events, self.events(q)),
            (KeyKind::Delayed, self.delayed(q)),
            (KeyKind::Dead, self.dead(q)),
            (KeyKind::Stats, self.stats(q)),
            (KeyKind::Output, self.output(q, t)),
            (KeyKind::Resumes, self.resumes(q, t)),
            (KeyKind::Idempotency, self.idempotency(q, c)),
            (
                KeyKind::Idempotency,
                self.idempotency(q, &tenant_scoped(Some(c), c)),
            ),
            (KeyKind::Worker, self.worker(w)),
            (KeyKind::Workers, self.workers()),
            (KeyKind::Session, self.session(c)),
            (KeyKind::LimitBudget, self.limit_budget(p, None)),
            (
                KeyKind::LimitBudget,
                format!("{}:{m}", self.limit_budget(p, None)),
            ),
            (
                KeyKind::LimitPause,
                format!("{}{{limits}}:pause:{p}:{m}", self.prefix),
            ),
            (KeyKind::Paused, self.paused()),
            (KeyKind::Tenants, self.tenants()),
            (KeyKind::Tenant, self.tenant(c)),
            (KeyKind::TenantKey, self.tenant_key(c)),
            (KeyKind::TenantRpm, self.tenant_rpm(c)),
            (KeyKind::TenantRunning, self.tenant_running(c)),
            (KeyKind::TenantTokens, self.tenant_tokens(c)),
            (KeyKind::ConsoleSession, self.console_session(c)),
        ];
        layouts
            .into_iter()
            .find(|(_, layout)| matches_layout(layout, key))
            .map(|(kind, _)| kind)
    }
}

/// Whether a model name goes into a key as it is: 1–128 of `A-Z a-z 0-9 . _ : / @ + -`.
pub fn is_plain_model(model: &str) -> bool {
    (1..=128).contains(&model.len())
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b))
}

/// A model name as a key part: itself when [`is_plain_model`], else `~` and 16 hex digits of
/// its hash.
fn model_part(model: &str) -> String {
    if is_plain_model(model) {
        model.to_owned()
    } else {
        format!("~{:016x}", fnv1a(model.as_bytes()))
    }
}

/// Whether `part` is what [`model_part`] makes of some model name.
fn is_model_part(part: &str) -> bool {
    is_plain_model(part)
        || part
            .strip_prefix('~')
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// FNV-1a, 64 bits: a stable short name for a model name that cannot go into a key as it is.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The kinds of key [`Keys::recognise`] tells apart: one per key-building function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// [`Keys::stream`].
    Stream,
    /// [`Keys::lanes`].
    Lanes,
    /// [`Keys::task`].
    Task,
    /// [`Keys::events`].
    Events,
    /// [`Keys::delayed`].
    Delayed,
    /// [`Keys::dead`].
    Dead,
    /// [`Keys::stats`].
    Stats,
    /// [`Keys::output`].
    Output,
    /// [`Keys::resumes`].
    Resumes,
    /// [`Keys::idempotency`].
    Idempotency,
    /// [`Keys::worker`].
    Worker,
    /// [`Keys::workers`].
    Workers,
    /// [`Keys::session`].
    Session,
    /// [`Keys::limit_budget`].
    LimitBudget,
    /// [`Keys::limit_pause`].
    LimitPause,
    /// [`Keys::paused`].
    Paused,
    /// [`Keys::tenants`].
    Tenants,
    /// [`Keys::tenant`].
    Tenant,
    /// [`Keys::tenant_key`].
    TenantKey,
    /// [`Keys::tenant_rpm`].
    TenantRpm,
    /// [`Keys::tenant_running`].
    TenantRunning,
    /// [`Keys::tenant_tokens`].
    TenantTokens,
    /// [`Keys::console_session`].
    ConsoleSession,
}

/// A variable part of a key, stood for by a mark no real key contains (control characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    Queue,
    TaskId,
    ClientKey,
    WorkerId,
    Provider,
    Model,
    Lane,
}

impl Hole {
    const ALL: [Hole; 7] = [
        Hole::Queue,
        Hole::TaskId,
        Hole::ClientKey,
        Hole::WorkerId,
        Hole::Provider,
        Hole::Model,
        Hole::Lane,
    ];

    fn mark(self) -> &'static str {
        match self {
            Self::Queue => "\u{1}q\u{1}",
            Self::TaskId => "\u{1}t\u{1}",
            Self::ClientKey => "\u{1}c\u{1}",
            Self::WorkerId => "\u{1}w\u{1}",
            Self::Provider => "\u{1}p\u{1}",
            Self::Model => "\u{1}m\u{1}",
            Self::Lane => "\u{1}l\u{1}",
        }
    }
}

/// Whether `key` is `layout` with each hole filled by a well-formed part. A hole ends where the
/// layout's text after it first appears in the key: a queue hole is followed by `}`, which no
/// queue name contains, and the other holes end their layout, so they run to the key's end.
fn matches_layout(layout: &str, key: &str) -> bool {
    let mut rest_layout = layout;
    let mut rest_key = key;
    let mut queue = None;
    loop {
        let next = Hole::ALL
            .iter()
            .filter_map(|h| rest_layout.find(h.mark()).map(|at| (at, *h)))
            .min_by_key(|(at, _)| *at);
        let Some((at, hole)) = next else {
            return rest_key == rest_layout;
        };
        let Some(after_lit) = rest_key.strip_prefix(&rest_layout[..at]) else {
            return false;
        };
        rest_layout = &rest_layout[at + hole.mark().len()..];
        let lit_end = Hole::ALL
            .iter()
            .filter_map(|h| rest_layout.find(h.mark()))
            .min()
            .unwrap_or(rest_layout.len());
        let following = &rest_layout[..lit_end];
        let part_len = if lit_end == rest_layout.len() {
            // The last hole ends where the key's fixed end begins.
            match after_lit.len().checked_sub(following.len()) {
                Some(n) if after_lit.ends_with(following) => n,
                _ => return false,
            }
        } else if following.is_empty() {
            return false;
        } else {
            match after_lit.find(following) {
                Some(n) => n,
                None => return false,
            }
        };
        let part = &after_lit[..part_len];
        let well_formed = match hole {
            Hole::Queue => {
                queue = Some(part);
                is_valid_queue_name(part)
            }
            Hole::TaskId => queue_of(part).is_some_and(|q| queue.is_none_or(|own| own == q)),
            Hole::ClientKey => is_valid_key(part),
            Hole::WorkerId => !part.is_empty() && !part.contains(char::is_whitespace),
            Hole::Provider => crate::config::LLM_PROVIDERS.contains(&part),
            Hole::Model => is_model_part(part),
            Hole::Lane => lane::is_valid_lane(part),
        };
        if !well_formed {
            return false;
        }
        rest_key = &after_lit[part_len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_are_pinned() {
        let k = Keys::new("sy:");
        assert_eq!(k.stream("chat"), "sy:{chat}:stream");
        assert_eq!(k.stream("chat.h.tn-ab"), "sy:{chat}:stream:h.tn-ab");
        assert_eq!(k.stats("chat.h.tn-ab"), "sy:{chat}:stats");
        assert_eq!(k.lanes("chat"), "sy:{chat}:lanes");
        assert_eq!(k.task("tool", "tool-01J"), "sy:{tool}:task:tool-01J");
        assert_eq!(k.events("chat"), "sy:{chat}:events");
        assert_eq!(k.delayed("chat"), "sy:{chat}:delayed");
        assert_eq!(k.dead("chat"), "sy:{chat}:dead");
        assert_eq!(k.stats("chat"), "sy:{chat}:stats");
        assert_eq!(k.idempotency("chat", "abc"), "sy:{chat}:idem:abc");
        assert_eq!(k.output("chat", "chat-01J"), "sy:{chat}:out:chat-01J");
        assert_eq!(k.resumes("chat", "chat-01J"), "sy:{chat}:resumes:chat-01J");
        assert_eq!(k.worker("w1"), "sy:worker:w1");
        assert_eq!(k.workers(), "sy:workers");
        assert_eq!(k.session("s1"), "sy:session:s1");
        assert_eq!(k.cancel_channel(), "sy:cancel");
        assert_eq!(k.limit_budget("openai", None), "sy:{limits}:budget:openai");
        assert_eq!(
            k.limit_budget("openai", Some("gpt-4o")),
            "sy:{limits}:budget:openai:gpt-4o"
        );
        assert_eq!(
            k.limit_pause("openai", "gpt-4o"),
            "sy:{limits}:pause:openai:gpt-4o"
        );
        assert_eq!(
            k.limit_pause("openai", "a b}{"),
            format!("sy:{{limits}}:pause:openai:~{:016x}", fnv1a(b"a b}{"))
        );
        assert_ne!(
            k.limit_pause("openai", "a b"),
            k.limit_pause("openai", "a c")
        );

        assert_eq!(k.paused(), "sy:paused");
        assert_eq!(k.paused_channel(), "sy:pause");
        assert_eq!(k.tenants(), "sy:{tenants}:ids");
        assert_eq!(k.tenant("tn-1"), "sy:{tenants}:tenant:tn-1");
        assert_eq!(k.tenant_key("ab12"), "sy:{tenants}:key:ab12");
        assert_eq!(k.tenant_rpm("tn-1"), "sy:rpm:{tn-1}");
        assert_eq!(k.tenant_running("tn-1"), "sy:running:{tn-1}");
        assert_eq!(k.tenant_tokens("tn-1"), "sy:tpm:{tn-1}");
        assert_eq!(GROUP, "workers");
    }

    #[test]
    fn every_key_of_the_layout_is_recognised_and_nothing_else() {
        let k = Keys::new("t1:");
        let id = crate::task::new_task_id("tool");
        let cases = [
            (k.stream("tool"), KeyKind::Stream),
            (k.stream("tool.l.tn-0190a"), KeyKind::Stream),
            (k.stream("tool.h"), KeyKind::Stream),
            (k.lanes("tool"), KeyKind::Lanes),
            (
                k.task("tool", &crate::task::new_task_id("tool.h.tn-ab")),
                KeyKind::Task,
            ),
            (k.task("tool", &id), KeyKind::Task),
            (k.events("chat"), KeyKind::Events),
            (k.delayed("tool"), KeyKind::Delayed),
            (k.dead("tool"), KeyKind::Dead),
            (k.stats("tool"), KeyKind::Stats),
            (k.output("tool", &id), KeyKind::Output),
            (k.resumes("tool", &id), KeyKind::Resumes),
            (k.idempotency("tool", "user:42.a_b-c"), KeyKind::Idempotency),
            (
                k.idempotency("tool", &tenant_scoped(Some("tn-0190a"), &"k".repeat(128))),
                KeyKind::Idempotency,
            ),
            (k.worker("host-1234"), KeyKind::Worker),
            (k.workers(), KeyKind::Workers),
            (k.session("s-01J"), KeyKind::Session),
            (k.limit_budget("openai", None), KeyKind::LimitBudget),
            (
                k.limit_budget("anthropic", Some("claude-x")),
                KeyKind::LimitBudget,
            ),
            (k.limit_budget("openai", Some("a b")), KeyKind::LimitBudget),
            (
                k.limit_pause("openai", "ft:gpt-4o:org:1"),
                KeyKind::LimitPause,
            ),
            (k.limit_pause("openai", "{x} y"), KeyKind::LimitPause),
            (k.paused(), KeyKind::Paused),
            (k.tenants(), KeyKind::Tenants),
            (k.tenant("tn-0190a"), KeyKind::Tenant),
            (k.tenant_key("ba7816bf"), KeyKind::TenantKey),
            (k.tenant_rpm("tn-0190a"), KeyKind::TenantRpm),
            (k.tenant_running("tn-0190a"), KeyKind::TenantRunning),
            (k.tenant_tokens("tn-0190a"), KeyKind::TenantTokens),
            (k.console_session("ba7816bf"), KeyKind::ConsoleSession),
        ];
        for (key, kind) in &cases {
            assert_eq!(k.recognise(key), Some(*kind), "{key}");
        }
        let chat_id = crate::task::new_task_id("chat");
        for stranger in [
            "t1:other".to_owned(),
            "t2:workers".to_owned(),
            format!("t1:{{tool}}:task:{chat_id}"),
            "t1:{tool}:task:tool-nope".to_owned(),
            "t1:{Bad Queue}:stream".to_owned(),
            "t1:{tool}:idem:a*b".to_owned(),
            "t1:{tool}:idem:{x}".to_owned(),
            format!("t1:{{tool}}:idem:{}", "k".repeat(129)),
            "t1:session:a b".to_owned(),
            "t1:session:".to_owned(),
            "t1:{tool}:stream:extra".to_owned(),
            "t1:{tool}:stream:n".to_owned(),
            "t1:{tool}:streams".to_owned(),
            "t1:worker:".to_owned(),
            "t1:{limits}:budget:gemini".to_owned(),
            "t1:{limits}:pause:openai:a b".to_owned(),
            "t1:{limits}:pause:openai".to_owned(),
            "t1:{tenants}:tenant:a b".to_owned(),
            "t1:rpm:{}".to_owned(),
            "t1:running:{}".to_owned(),
            "t1:tpm:tn-1".to_owned(),
        ] {
            assert_eq!(k.recognise(&stranger), None, "{stranger}");
        }
    }

    #[test]
    fn prefix_is_configurable() {
        assert_eq!(Keys::new("prod:").stream("chat"), "prod:{chat}:stream");
    }
}
