//! The fuzz targets' bodies, one module per input surface.
//!
//! Each `check(&[u8])` panics when a property fails and returns quietly otherwise. The fuzz
//! targets (`fuzz/fuzz_targets/*.rs`) and the stable replay test (`tests/fuzz_corpus.rs`) both
//! include this module with `#[path]`, so a corpus or regression file is checked the same way
//! on stable as under libFuzzer. Only `pushcore`, `httparse` and `serde_json` are used here.
#![allow(dead_code)]

pub mod chunked;
pub mod differential;
pub mod encode_roundtrip;
pub mod forwarded;
pub mod last_event_id;
pub mod parse_head;
pub mod publish_body;
pub mod query;
pub mod sse_parser;

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[&str] = &[
    "parse_head",
    "differential",
    "chunked",
    "query",
    "encode_roundtrip",
    "publish_body",
    "last_event_id",
    "forwarded",
];

/// The check for the target `name`.
pub fn by_name(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "parse_head" => parse_head::check,
        "differential" => differential::check,
        "chunked" => chunked::check,
        "query" => query::check,
        "encode_roundtrip" => encode_roundtrip::check,
        "publish_body" => publish_body::check,
        "last_event_id" => last_event_id::check,
        "forwarded" => forwarded::check,
        _ => return None,
    })
}

/// Bytes shown as an escaped string, for assertion messages.
pub fn esc(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
