//! The Redis key layout (SPEC §4): every key name the project uses is built here and nowhere else.
//!
//! Keys of one queue carry the queue name as a hash tag (`sy:{chat}:stream`), so every script
//! touches a single cluster slot and a queue can live on one Redis Cluster node.

/// Builds key names under one deployment prefix (`QUEUE_PREFIX`, default `sy:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
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

    fn queue_key(&self, queue: &str, suffix: &str) -> String {
        format!("{}{{{}}}:{}", self.prefix, queue, suffix)
    }

    /// Stream (consumer group `workers`): waiting and in-flight entries of a queue.
    pub fn stream(&self, queue: &str) -> String {
        self.queue_key(queue, "stream")
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_are_pinned() {
        let k = Keys::new("sy:");
        assert_eq!(k.stream("chat"), "sy:{chat}:stream");
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
        assert_eq!(GROUP, "workers");
    }

    #[test]
    fn prefix_is_configurable() {
        assert_eq!(Keys::new("prod:").stream("chat"), "prod:{chat}:stream");
    }
}
