//! Building Redis replies for the table-driven decoding tests (`decode_tests`, `state_tests`).

use redis::Value;

use crate::sse::id::EventId;

pub(super) fn b(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

pub(super) fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

pub(super) fn fields(pairs: &[(&str, &str)]) -> Value {
    arr(pairs.iter().flat_map(|(k, v)| [b(k), b(v)]).collect())
}

pub(super) fn entry(id: &str, pairs: &[(&str, &str)]) -> Value {
    arr(vec![b(id), fields(pairs)])
}

pub(super) fn id(ms: u64, seq: u64) -> EventId {
    EventId::new(ms, seq)
}

/// The fields of a well-formed event entry.
pub(super) const GOOD: &[(&str, &str)] = &[("channels", "a,b"), ("type", "update"), ("data", "{}")];
