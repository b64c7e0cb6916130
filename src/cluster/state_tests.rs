//! Table-driven tests of the stream-state and Lua-script replies of [`super::decode`] and
//! [`super::log`]: one row per reply, malformed ones at least as many as good ones.

use redis::Value;

use super::decode::*;
use super::log::decode_raised;
use super::log::Raised;
use super::reply_rows::*;
use crate::sse::id::{EventId, IdError};

fn info(pairs: Vec<(&str, Value)>) -> Value {
    arr(pairs.into_iter().flat_map(|(k, v)| [b(k), v]).collect())
}

fn full_info() -> Vec<(&'static str, Value)> {
    vec![
        ("length", Value::Int(2)),
        ("radix-tree-keys", Value::Int(1)),
        ("radix-tree-nodes", Value::Int(2)),
        ("last-generated-id", b("5-1")),
        ("max-deleted-entry-id", b("1-0")),
        ("entries-added", Value::Int(4)),
        ("recorded-first-entry-id", b("3-0")),
        ("groups", Value::Int(0)),
        ("first-entry", entry("3-0", GOOD)),
        ("last-entry", entry("5-1", GOOD)),
    ]
}

#[test]
fn stream_state() {
    let want = LogState {
        length: 2,
        first_entry: Some(id(3, 0)),
        last_generated: id(5, 1),
        max_deleted: id(1, 0),
        entries_added: 4,
    };
    assert_eq!(decode_stream_state(info(full_info())), Ok(want));
    let empty = info(vec![
        ("length", Value::Int(0)),
        ("last-generated-id", b("0-0")),
        ("max-deleted-entry-id", b("0-0")),
        ("entries-added", Value::Int(0)),
        ("first-entry", Value::Nil),
        ("last-entry", Value::Nil),
    ]);
    assert_eq!(
        decode_stream_state(empty),
        Ok(LogState {
            length: 0,
            first_entry: None,
            last_generated: EventId::ZERO,
            max_deleted: EventId::ZERO,
            entries_added: 0,
        })
    );
    let map = Value::Map(full_info().into_iter().map(|(k, v)| (b(k), v)).collect());
    assert_eq!(decode_stream_state(map), Ok(want));

    let without = |name: &str| {
        info(
            full_info()
                .into_iter()
                .filter(|(k, _)| *k != name)
                .collect(),
        )
    };
    let with = |name: &str, value: Value| {
        info(
            full_info()
                .into_iter()
                .map(|(k, v)| {
                    if k == name {
                        (k, value.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
        )
    };
    let mut doubled = full_info();
    doubled.push(("entries-added", Value::Int(9)));
    let rows: Vec<(Value, DecodeError)> = vec![
        (without("length"), DecodeError::MissingField("length")),
        (
            without("last-generated-id"),
            DecodeError::MissingField("last-generated-id"),
        ),
        (
            without("max-deleted-entry-id"),
            DecodeError::MissingField("max-deleted-entry-id"),
        ),
        (
            without("entries-added"),
            DecodeError::MissingField("entries-added"),
        ),
        (
            without("first-entry"),
            DecodeError::MissingField("first-entry"),
        ),
        (
            with("length", Value::Int(-1)),
            DecodeError::Number { what: "length" },
        ),
        (
            with("entries-added", b("many")),
            DecodeError::Number {
                what: "entries-added",
            },
        ),
        (
            with("last-generated-id", b("5")),
            DecodeError::Id {
                what: "last-generated-id",
                error: IdError::Malformed,
            },
        ),
        (
            with("first-entry", b("3-0")),
            DecodeError::Type {
                what: "entry",
                expected: "array",
                found: "bulk string",
            },
        ),
        (
            with("first-entry", entry("9-0", GOOD)),
            DecodeError::Order {
                previous: id(5, 1),
                next: id(9, 0),
            },
        ),
        (
            info(doubled),
            DecodeError::DuplicateField("entries-added".into()),
        ),
        (arr(vec![b("length")]), DecodeError::OddFields(1)),
        (
            Value::Nil,
            DecodeError::Type {
                what: "stream info",
                expected: "array",
                found: "nil",
            },
        ),
    ];
    for (i, (reply, want)) in rows.into_iter().enumerate() {
        assert_eq!(decode_stream_state(reply), Err(want), "row {i}");
    }
}

#[test]
fn recreate_replies() {
    assert_eq!(
        decode_raised(arr(vec![b("created"), b("5-1")])),
        Ok(Raised::Created(id(5, 1)))
    );
    assert_eq!(
        decode_raised(arr(vec![b("raised"), b("5-1")])),
        Ok(Raised::Raised(id(5, 1)))
    );
    assert_eq!(
        decode_raised(arr(vec![b("above"), b("7-0")])),
        Ok(Raised::Above(id(7, 0)))
    );
    assert!(decode_raised(arr(vec![b("other"), b("7-0")])).is_err());
    assert!(decode_raised(arr(vec![b("above")])).is_err());
    assert!(decode_raised(arr(vec![b("above"), b("x")])).is_err());
    assert!(decode_raised(Value::Nil).is_err());
}
