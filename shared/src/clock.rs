//! Wall-clock time in the two forms the task records use: RFC 3339 text and epoch milliseconds.
//! Anything whose correctness depends on time takes these values as parameters, so tests can
//! pass their own.

use chrono::{SecondsFormat, Utc};

/// Now, as RFC 3339 UTC with milliseconds (`2026-11-21T23:41:36.123Z`).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds; the epoch itself when out of
/// range.
pub fn ms_to_rfc3339(ms: u64) -> String {
    let t = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_default();
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
