//! The format of a queue's events stream, written by the scripts and read by every dispatcher
//! (to wake waiting requests) and the bench: an entry names the tasks that reached one terminal
//! state, either one (`id`, from the scripts that end one task) or a whole completion batch
//! (`ids`, comma-separated, from `complete.lua`: one `XADD` per batch instead of per task).

use redis::streams::StreamId;

/// Field of an entry that names one task.
pub const ID: &str = "id";
/// Field of an entry that names a batch of tasks, comma-separated.
pub const IDS: &str = "ids";
/// Field with the terminal state the tasks reached.
pub const STATE: &str = "state";

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The tasks.
    pub ids: Vec<String>,
    /// The state they reached.
    pub state: String,
}

/// Why an entry is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Neither `id` nor `ids`, or an empty one.
    #[error("event {0} names no task (no `id` or `ids` field)")]
    NoTask(String),
    /// No `state`.
    #[error("event {0} has no `state` field")]
    NoState(String),
}

/// Decodes `entry` of an events stream.
pub fn decode(entry: &StreamId) -> Result<Event, EventError> {
    let state: String = entry
        .get(STATE)
        .ok_or_else(|| EventError::NoState(entry.id.clone()))?;
    let ids: Vec<String> = match (entry.get::<String>(ID), entry.get::<String>(IDS)) {
        (Some(id), _) if !id.is_empty() => vec![id],
        (_, Some(ids)) => ids
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return Err(EventError::NoTask(entry.id.clone()));
    }
    Ok(Event { ids, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> StreamId {
        crate::test_support::stream_entry("1-0", fields)
    }

    #[test]
    fn one_task_and_a_batch_decode_alike() {
        let one = decode(&entry(&[("id", "a"), ("state", "failed")])).expect("event");
        assert_eq!(one.ids, vec!["a"]);
        assert_eq!(one.state, "failed");
        let batch = decode(&entry(&[("ids", "a,b,c"), ("state", "succeeded")])).expect("event");
        assert_eq!(batch.ids, vec!["a", "b", "c"]);
        assert_eq!(batch.state, "succeeded");
    }

    #[test]
    fn an_entry_without_tasks_or_state_is_refused_by_name() {
        let e = decode(&entry(&[("state", "succeeded")])).expect_err("no task");
        assert_eq!(e, EventError::NoTask("1-0".to_owned()));
        let e = decode(&entry(&[("ids", ""), ("state", "succeeded")])).expect_err("no task");
        assert_eq!(e, EventError::NoTask("1-0".to_owned()));
        let e = decode(&entry(&[("id", "a")])).expect_err("no state");
        assert!(e.to_string().contains("state"), "{e}");
    }
}
