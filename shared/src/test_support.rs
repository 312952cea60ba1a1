//! Test-only builders shared by the unit tests of the stored stream formats.

use redis::streams::StreamId;

/// A stream entry `id` with `fields`, as a stream read would return it.
pub(crate) fn stream_entry(id: &str, fields: &[(&str, &str)]) -> StreamId {
    StreamId {
        id: id.to_owned(),
        map: fields
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    redis::Value::BulkString(v.as_bytes().to_vec()),
                )
            })
            .collect(),
        ..Default::default()
    }
}
