//! `MODEL_ROUTES`: which queue a chat task goes to, by its model's name. A heterogeneous fleet
//! (workers with different keys, regions or local models) lists its queues in `WORKER_QUEUES`;
//! the dispatcher picks the queue by the first pattern that matches the model, e.g.
//! `gpt-*=chat-openai,claude-*=chat-anthropic,*=chat`. Patterns are globs where `*` matches any
//! run of characters (none too) and everything else matches itself.

use serde::Deserialize;

/// The queue every model goes to without `MODEL_ROUTES`.
pub const DEFAULT_CHAT_QUEUE: &str = "chat";

/// One `pattern=queue` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The model-name glob.
    pub pattern: String,
    /// The queue its models go to.
    pub queue: String,
}

/// The parsed `MODEL_ROUTES`, in order (first match wins). Empty: no routing, every model goes
/// to [`DEFAULT_CHAT_QUEUE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ModelRoutes {
    routes: Vec<ModelRoute>,
}

impl TryFrom<String> for ModelRoutes {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| format!("MODEL_ROUTES: {e}"))
    }
}

impl ModelRoutes {
    /// Parses `pattern=queue[,pattern=queue…]`. Refuses an empty entry, one without `=`, an
    /// empty pattern or queue, and an entry no model can reach (after a `*` that matches all).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut routes: Vec<ModelRoute> = Vec::new();
        for (i, entry) in s.split(',').enumerate() {
            let n = i + 1;
            let (pattern, queue) = entry.trim().split_once('=').ok_or_else(|| {
                format!("entry {n} {entry:?} is not `pattern=queue` (e.g. `gpt-*=chat-openai`)")
            })?;
            let (pattern, queue) = (pattern.trim(), queue.trim());
            if pattern.is_empty() || queue.is_empty() {
                return Err(format!(
                    "entry {n} {entry:?} needs both a model pattern and a queue"
                ));
            }
            if let Some(all) = routes.iter().find(|r| r.pattern.chars().all(|c| c == '*')) {
                return Err(format!(
                    "entry {n} {entry:?} is never used: the earlier pattern {:?} matches every model",
                    all.pattern
                ));
            }
            routes.push(ModelRoute {
                pattern: pattern.to_owned(),
                queue: queue.to_owned(),
            });
        }
        Ok(Self { routes })
    }

    /// Whether `MODEL_ROUTES` was set.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The entries, in order.
    pub fn routes(&self) -> &[ModelRoute] {
        &self.routes
    }

    /// The queue of `model`: the first matching entry's, [`DEFAULT_CHAT_QUEUE`] without routes,
    /// `None` when routes are set and none matches.
    pub fn queue_for(&self, model: &str) -> Option<&str> {
        if self.routes.is_empty() {
            return Some(DEFAULT_CHAT_QUEUE);
        }
        self.routes
            .iter()
            .find(|r| glob_matches(&r.pattern, model))
            .map(|r| r.queue.as_str())
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` always yields a first part: the literal prefix.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name must be the literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        let cases = [
            ("gpt-*", "gpt-4o", true),
            ("gpt-*", "gpt-", true),
            ("gpt-*", "claude-3", false),
            ("*", "", true),
            ("*", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*-mini", "gpt-4o-mini", true),
            ("*-mini", "gpt-4o", false),
            ("llama*:8b", "llama3.1:8b", true),
            ("llama*:8b", "llama3.1:70b", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_matches(pattern, name), want, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn first_match_wins_and_no_routes_means_chat() {
        let r =
            ModelRoutes::parse("gpt-*=chat-openai, claude-*=chat-anthropic,*=chat").expect("valid");
        assert_eq!(r.queue_for("gpt-4o"), Some("chat-openai"));
        assert_eq!(r.queue_for("claude-sonnet-4-5"), Some("chat-anthropic"));
        assert_eq!(r.queue_for("llama3"), Some("chat"));
        let r = ModelRoutes::parse("gpt-*=chat-openai").expect("valid");
        assert_eq!(r.queue_for("llama3"), None);
        let none = ModelRoutes::parse("").expect("empty is no routing");
        assert!(none.is_empty());
        assert_eq!(none.queue_for("anything"), Some("chat"));
    }

    #[test]
    fn bad_entries_are_refused_by_position() {
        for (s, part) in [
            ("gpt-*", "entry 1"),
            ("gpt-*=a,,*=b", "entry 2"),
            ("=chat", "entry 1"),
            ("gpt-*=", "entry 1"),
            ("*=chat,gpt-*=other", "never used"),
        ] {
            let e = ModelRoutes::try_from(s.to_owned()).expect_err(s);
            assert!(e.starts_with("MODEL_ROUTES: "), "{e}");
            assert!(e.contains(part), "{s}: {e}");
        }
    }
}
