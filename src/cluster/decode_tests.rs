//! Table-driven tests of [`super::decode`]: one row per reply, malformed ones at least as
//! many as good ones.

use redis::Value;

use super::decode::*;
use super::reply_rows::*;
use crate::bus::NewEvent;
use crate::sse::id::{EventId, IdError};

fn event(channels: &[&str], event_type: &str, data: &str) -> EntryKind {
    EntryKind::Event(NewEvent {
        channels: channels.iter().map(|s| s.to_string()).collect(),
        event_type: event_type.into(),
        data: data.into(),
    })
}

#[test]
fn good_entries() {
    let rows: Vec<(Value, LogEntry)> = vec![
        (
            entry("1-0", GOOD),
            LogEntry {
                id: id(1, 0),
                kind: event(&["a", "b"], "update", "{}"),
            },
        ),
        (
            entry(
                "1732406400000-7",
                &[("data", "[1,2]"), ("type", "m"), ("channels", "news")],
            ),
            LogEntry {
                id: id(1732406400000, 7),
                kind: event(&["news"], "m", "[1,2]"),
            },
        ),
        (
            entry(
                "5-5",
                &[("channels", "x.y:z/w@v-u_t"), ("type", "t"), ("data", "")],
            ),
            LogEntry {
                id: id(5, 5),
                kind: event(&["x.y:z/w@v-u_t"], "t", ""),
            },
        ),
        (
            entry("9-1", &[("marker", "log lost")]),
            LogEntry {
                id: id(9, 1),
                kind: EntryKind::Marker("log lost".into()),
            },
        ),
        (
            arr(vec![
                Value::SimpleString("2-0".into()),
                arr(vec![
                    Value::SimpleString("channels".into()),
                    b("c"),
                    b("type"),
                    b("é"),
                    b("data"),
                    b("\"ü\""),
                ]),
            ]),
            LogEntry {
                id: id(2, 0),
                kind: event(&["c"], "é", "\"ü\""),
            },
        ),
    ];
    for (i, (reply, want)) in rows.into_iter().enumerate() {
        assert_eq!(decode_entry(reply), Ok(want), "row {i}");
    }
}

#[test]
fn malformed_entries() {
    let long = "c".repeat(201);
    let rows: Vec<(Value, DecodeError)> = vec![
        (
            Value::Nil,
            DecodeError::Type {
                what: "entry",
                expected: "array",
                found: "nil",
            },
        ),
        (
            b("1-0"),
            DecodeError::Type {
                what: "entry",
                expected: "array",
                found: "bulk string",
            },
        ),
        (
            arr(vec![b("1-0")]),
            DecodeError::Length {
                what: "entry",
                expected: "2",
                found: 1,
            },
        ),
        (
            arr(vec![b("1-0"), fields(GOOD), b("x")]),
            DecodeError::Length {
                what: "entry",
                expected: "2",
                found: 3,
            },
        ),
        (
            arr(vec![Value::Int(1), fields(GOOD)]),
            DecodeError::Type {
                what: "entry id",
                expected: "string",
                found: "integer",
            },
        ),
        (
            entry("1", GOOD),
            DecodeError::Id {
                what: "entry id",
                error: IdError::Malformed,
            },
        ),
        (
            entry("01-0", GOOD),
            DecodeError::Id {
                what: "entry id",
                error: IdError::Malformed,
            },
        ),
        (
            entry("99999999999999999999-0", GOOD),
            DecodeError::Id {
                what: "entry id",
                error: IdError::Overflow,
            },
        ),
        (
            entry("", GOOD),
            DecodeError::Id {
                what: "entry id",
                error: IdError::Empty,
            },
        ),
        (
            arr(vec![b("1-0"), b("channels")]),
            DecodeError::Type {
                what: "entry fields",
                expected: "array",
                found: "bulk string",
            },
        ),
        (
            arr(vec![b("1-0"), arr(vec![b("channels"), b("a"), b("type")])]),
            DecodeError::OddFields(3),
        ),
        (
            entry("1-0", &[("type", "t"), ("data", "1")]),
            DecodeError::MissingField("channels"),
        ),
        (
            entry("1-0", &[("channels", "a"), ("data", "1")]),
            DecodeError::MissingField("type"),
        ),
        (
            entry("1-0", &[("channels", "a"), ("type", "t")]),
            DecodeError::MissingField("data"),
        ),
        (
            entry(
                "1-0",
                &[
                    ("channels", "a"),
                    ("type", "t"),
                    ("data", "1"),
                    ("extra", "x"),
                ],
            ),
            DecodeError::UnknownField("extra".into()),
        ),
        (
            entry(
                "1-0",
                &[
                    ("channels", "a"),
                    ("type", "t"),
                    ("data", "1"),
                    ("type", "u"),
                ],
            ),
            DecodeError::DuplicateField("type".into()),
        ),
        (
            entry("1-0", &[("marker", "m"), ("data", "1")]),
            DecodeError::UnknownField("data".into()),
        ),
        (
            entry("1-0", &[("channels", ""), ("type", "t"), ("data", "1")]),
            DecodeError::Channels("channel name is empty".into()),
        ),
        (
            entry("1-0", &[("channels", "a,,b"), ("type", "t"), ("data", "1")]),
            DecodeError::Channels("channel name is empty".into()),
        ),
        (
            entry("1-0", &[("channels", "a,"), ("type", "t"), ("data", "1")]),
            DecodeError::Channels("channel name is empty".into()),
        ),
        (
            entry("1-0", &[("channels", "a b"), ("type", "t"), ("data", "1")]),
            DecodeError::Channels(
                "channel name \"a b\" may only contain letters, digits and . _ : / @ -".into(),
            ),
        ),
        (
            entry("1-0", &[("channels", &long), ("type", "t"), ("data", "1")]),
            DecodeError::Channels("channel name is longer than 200 bytes".into()),
        ),
        (
            entry(
                "1-0",
                &[("channels", "a,b,a"), ("type", "t"), ("data", "1")],
            ),
            DecodeError::Channels("\"a\" is listed twice".into()),
        ),
        (
            entry("1-0", &[("channels", "a"), ("type", ""), ("data", "1")]),
            DecodeError::EventType,
        ),
        (
            entry("1-0", &[("channels", "a"), ("type", "a\nb"), ("data", "1")]),
            DecodeError::EventType,
        ),
        (
            arr(vec![
                b("1-0"),
                arr(vec![
                    b("channels"),
                    b("a"),
                    b("type"),
                    b("t"),
                    b("data"),
                    Value::BulkString(vec![0xff, 0xfe]),
                ]),
            ]),
            DecodeError::NotUtf8 { what: "data" },
        ),
        (
            arr(vec![
                b("1-0"),
                arr(vec![Value::BulkString(vec![0xc3]), b("a")]),
            ]),
            DecodeError::NotUtf8 { what: "field name" },
        ),
        (
            arr(vec![
                b("1-0"),
                arr(vec![
                    b("channels"),
                    Value::Int(3),
                    b("type"),
                    b("t"),
                    b("data"),
                    b("1"),
                ]),
            ]),
            DecodeError::Type {
                what: "channels",
                expected: "string",
                found: "integer",
            },
        ),
        (
            arr(vec![b("1-0"), arr(vec![Value::Nil, b("a")])]),
            DecodeError::Type {
                what: "field name",
                expected: "string",
                found: "nil",
            },
        ),
    ];
    for (i, (reply, want)) in rows.into_iter().enumerate() {
        assert_eq!(decode_entry(reply), Err(want), "row {i}");
    }
}

#[test]
fn entry_lists_keep_order_and_report_bad_entries() {
    let bad_fields = entry("3-0", &[("channels", "a")]);
    let got = decode_entries(
        arr(vec![entry("2-0", GOOD), bad_fields, entry("4-1", GOOD)]),
        id(1, 0),
    );
    assert!(got.is_ok(), "{got:?}");
    let got = got.unwrap_or_default();
    let ids: Vec<EventId> = got.iter().map(Decoded::id).collect();
    assert_eq!(ids, vec![id(2, 0), id(3, 0), id(4, 1)]);
    assert!(matches!(got.get(1), Some(Decoded::Bad { .. })));
    assert_eq!(decode_entries(arr(vec![]), id(1, 0)), Ok(vec![]));

    let rows: Vec<(Value, EventId, DecodeError)> = vec![
        (
            arr(vec![entry("2-0", GOOD), entry("2-0", GOOD)]),
            EventId::ZERO,
            DecodeError::Order {
                previous: id(2, 0),
                next: id(2, 0),
            },
        ),
        (
            arr(vec![entry("3-0", GOOD), entry("2-9", GOOD)]),
            EventId::ZERO,
            DecodeError::Order {
                previous: id(3, 0),
                next: id(2, 9),
            },
        ),
        (
            arr(vec![entry("5-0", GOOD)]),
            id(5, 0),
            DecodeError::Order {
                previous: id(5, 0),
                next: id(5, 0),
            },
        ),
        (
            arr(vec![entry("x-0", GOOD)]),
            EventId::ZERO,
            DecodeError::Id {
                what: "entry id",
                error: IdError::Malformed,
            },
        ),
        (
            Value::Int(0),
            EventId::ZERO,
            DecodeError::Type {
                what: "entries",
                expected: "array",
                found: "integer",
            },
        ),
        (
            arr(vec![b("1-0")]),
            EventId::ZERO,
            DecodeError::Type {
                what: "entry",
                expected: "array",
                found: "bulk string",
            },
        ),
    ];
    for (i, (reply, after, want)) in rows.into_iter().enumerate() {
        assert_eq!(decode_entries(reply, after), Err(want), "row {i}");
    }
}

#[test]
fn xread_replies() {
    let one = arr(vec![arr(vec![b("k"), arr(vec![entry("7-0", GOOD)])])]);
    let got = decode_xread(one, "k", EventId::ZERO).map(|v| v.len());
    assert_eq!(got, Ok(1));
    assert_eq!(decode_xread(Value::Nil, "k", EventId::ZERO), Ok(vec![]));
    let map = Value::Map(vec![(b("k"), arr(vec![entry("7-0", GOOD)]))]);
    assert_eq!(
        decode_xread(map, "k", EventId::ZERO).map(|v| v.len()),
        Ok(1)
    );

    let rows: Vec<(Value, DecodeError)> = vec![
        (
            arr(vec![arr(vec![b("other"), arr(vec![])])]),
            DecodeError::WrongStream("other".into()),
        ),
        (
            arr(vec![]),
            DecodeError::Length {
                what: "read reply",
                expected: "1 stream",
                found: 0,
            },
        ),
        (
            arr(vec![arr(vec![b("k")])]),
            DecodeError::Length {
                what: "read stream",
                expected: "2",
                found: 1,
            },
        ),
        (
            b("k"),
            DecodeError::Type {
                what: "read reply",
                expected: "array",
                found: "bulk string",
            },
        ),
        (
            arr(vec![arr(vec![b("k"), b("entries")])]),
            DecodeError::Type {
                what: "entries",
                expected: "array",
                found: "bulk string",
            },
        ),
    ];
    for (i, (reply, want)) in rows.into_iter().enumerate() {
        assert_eq!(
            decode_xread(reply, "k", EventId::ZERO),
            Err(want),
            "row {i}"
        );
    }
}

#[test]
fn added_ids() {
    let good: Vec<(Value, usize, Option<Vec<EventId>>)> = vec![
        (arr(vec![b("1-0")]), 1, Some(vec![id(1, 0)])),
        (
            arr(vec![b("1-0"), b("1-1"), b("2-0")]),
            3,
            Some(vec![id(1, 0), id(1, 1), id(2, 0)]),
        ),
        (arr(vec![Value::Nil, Value::Nil]), 2, None),
        (arr(vec![]), 0, Some(vec![])),
    ];
    for (i, (reply, n, want)) in good.into_iter().enumerate() {
        assert_eq!(decode_added_ids(reply, n), Ok(want), "good row {i}");
    }
    let bad: Vec<(Value, usize, DecodeError)> = vec![
        (
            arr(vec![b("1-0")]),
            2,
            DecodeError::Length {
                what: "append reply",
                expected: "one per event",
                found: 1,
            },
        ),
        (
            arr(vec![b("1-0"), Value::Nil]),
            2,
            DecodeError::Type {
                what: "appended id",
                expected: "string",
                found: "nil",
            },
        ),
        (
            arr(vec![b("2-0"), b("1-0")]),
            2,
            DecodeError::Order {
                previous: id(2, 0),
                next: id(1, 0),
            },
        ),
        (
            Value::Okay,
            1,
            DecodeError::Type {
                what: "append reply",
                expected: "array",
                found: "OK",
            },
        ),
        (
            arr(vec![b("0-0")]),
            1,
            DecodeError::Order {
                previous: EventId::ZERO,
                next: EventId::ZERO,
            },
        ),
    ];
    for (i, (reply, n, want)) in bad.into_iter().enumerate() {
        assert_eq!(decode_added_ids(reply, n), Err(want), "bad row {i}");
    }
}
