//! Redis replies → log entries and stream state, as pure functions with errors that say what
//! was wrong where. Nothing here does I/O; the tests feed it malformed replies.
//!
//! One log entry per event: id = event id, fields `channels` (comma-joined names), `type`
//! and `data` (the JSON text). A `marker` entry (one field) marks where a log was re-created
//! above ids already delivered; tailers skip it.

use std::fmt;

use redis::Value;

use crate::bus::NewEvent;
use crate::channel::name::validate_stored as validate_channel;
use crate::sse::id::{parse as parse_id, EventId, IdError};

/// Field holding the comma-joined channel names.
pub const FIELD_CHANNELS: &str = "channels";
/// Field holding the event type.
pub const FIELD_TYPE: &str = "type";
/// Field holding the event's JSON data.
pub const FIELD_DATA: &str = "data";
/// The only field of a marker entry; its value says why the marker was written.
pub const FIELD_MARKER: &str = "marker";

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub id: EventId,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A published event.
    Event(NewEvent),
    /// A marker written when the log was re-created (its text says why); not an event.
    Marker(String),
}

/// An entry of a read: decoded, or refused with the id it had (so a reader can step over it
/// and report it instead of stalling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Entry(LogEntry),
    Bad { id: EventId, error: DecodeError },
}

impl Decoded {
    pub fn id(&self) -> EventId {
        match self {
            Decoded::Entry(e) => e.id,
            Decoded::Bad { id, .. } => *id,
        }
    }
}

/// The state of the log stream (`XINFO STREAM`, Redis 7.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogState {
    /// Entries in the stream now.
    pub length: u64,
    /// Id of the first entry, if any.
    pub first_entry: Option<EventId>,
    /// Highest id ever handed out in this stream (`last-generated-id`).
    pub last_generated: EventId,
    /// Highest id ever deleted or trimmed (`max-deleted-entry-id`; `0-0` if none).
    pub max_deleted: EventId,
    /// Entries ever added (`entries-added`): only grows while the stream lives.
    pub entries_added: u64,
}

/// Why a reply is not what the log expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A value of the wrong RESP type.
    Type {
        what: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// An array of the wrong length.
    Length {
        what: &'static str,
        expected: &'static str,
        found: usize,
    },
    /// An id that is not `<ms>-<seq>`.
    Id { what: &'static str, error: IdError },
    /// Ids not strictly increasing (or not after the position read from).
    Order { previous: EventId, next: EventId },
    /// Bytes that are not UTF-8.
    NotUtf8 { what: &'static str },
    /// A field the entry needs is missing.
    MissingField(&'static str),
    /// A field given twice.
    DuplicateField(String),
    /// A field the log does not write.
    UnknownField(String),
    /// Field names and values do not pair up.
    OddFields(usize),
    /// The channel list is not 1+ comma-separated valid, distinct names.
    Channels(String),
    /// The event type is empty or has a line break.
    EventType,
    /// A number that is negative or not a number.
    Number { what: &'static str },
    /// A read of another stream than the one asked for.
    WrongStream(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Type {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected}, got {found}"),
            DecodeError::Length {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected} elements, got {found}"),
            DecodeError::Id { what, error } => write!(f, "{what}: {error}"),
            DecodeError::Order { previous, next } => {
                write!(f, "entry {next} does not come after {previous}")
            }
            DecodeError::NotUtf8 { what } => write!(f, "{what} is not UTF-8"),
            DecodeError::MissingField(name) => write!(f, "entry has no {name:?} field"),
            DecodeError::DuplicateField(name) => write!(f, "entry has field {name:?} twice"),
            DecodeError::UnknownField(name) => write!(f, "entry has unknown field {name:?}"),
            DecodeError::OddFields(n) => {
                write!(f, "entry fields do not pair up ({n} names and values)")
            }
            DecodeError::Channels(why) => write!(f, "entry channels: {why}"),
            DecodeError::EventType => f.write_str("entry type is empty or has a line break"),
            DecodeError::Number { what } => write!(f, "{what} is not a non-negative integer"),
            DecodeError::WrongStream(key) => write!(f, "read returned stream {key:?}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The RESP type of a value, for messages.
pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "integer",
        Value::BulkString(_) => "bulk string",
        Value::Array(_) => "array",
        Value::SimpleString(_) => "simple string",
        Value::Okay => "OK",
        Value::Map(_) => "map",
        Value::Set(_) => "set",
        Value::ServerError(_) => "error",
        _ => "other reply",
    }
}

fn type_error(what: &'static str, expected: &'static str, v: &Value) -> DecodeError {
    DecodeError::Type {
        what,
        expected,
        found: kind_name(v),
    }
}

fn as_bytes<'a>(v: &'a Value, what: &'static str) -> Result<&'a [u8], DecodeError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        other => Err(type_error(what, "string", other)),
    }
}

fn into_string(v: Value, what: &'static str) -> Result<String, DecodeError> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).map_err(|_| DecodeError::NotUtf8 { what }),
        Value::SimpleString(s) => Ok(s),
        other => Err(type_error(what, "string", &other)),
    }
}

fn into_array(v: Value, what: &'static str) -> Result<Vec<Value>, DecodeError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(type_error(what, "array", &other)),
    }
}

/// An id in a reply.
pub fn decode_id(v: &Value, what: &'static str) -> Result<EventId, DecodeError> {
    parse_id(as_bytes(v, what)?).map_err(|error| DecodeError::Id { what, error })
}

fn decode_count(v: &Value, what: &'static str) -> Result<u64, DecodeError> {
    match v {
        Value::Int(n) => u64::try_from(*n).map_err(|_| DecodeError::Number { what }),
        Value::BulkString(_) | Value::SimpleString(_) => std::str::from_utf8(as_bytes(v, what)?)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(DecodeError::Number { what }),
        other => Err(type_error(what, "integer", other)),
    }
}

/// The id of an entry reply (`[id, [fields…]]`), without decoding its fields.
pub fn decode_entry_id(v: &Value) -> Result<EventId, DecodeError> {
    match v {
        Value::Array(parts) => match parts.first() {
            Some(id) => decode_id(id, "entry id"),
            None => Err(DecodeError::Length {
                what: "entry",
                expected: "2",
                found: 0,
            }),
        },
        other => Err(type_error("entry", "array", other)),
    }
}

/// Checks a comma-joined channel list: one or more valid, distinct names.
pub fn split_channels(list: &str) -> Result<Vec<String>, DecodeError> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',') {
        validate_channel(name).map_err(|e| DecodeError::Channels(e.to_string()))?;
        if out.iter().any(|n| n == name) {
            return Err(DecodeError::Channels(format!("{name:?} is listed twice")));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// The fields of one entry, `[name, value, …]`, into an event or a marker.
fn decode_fields(fields: Vec<Value>) -> Result<EntryKind, DecodeError> {
    if !fields.len().is_multiple_of(2) {
        return Err(DecodeError::OddFields(fields.len()));
    }
    let mut channels = None;
    let mut event_type = None;
    let mut data = None;
    let mut marker = None;
    let mut it = fields.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let name = into_string(name, "field name")?;
        let slot = match name.as_str() {
            FIELD_CHANNELS => &mut channels,
            FIELD_TYPE => &mut event_type,
            FIELD_DATA => &mut data,
            FIELD_MARKER => &mut marker,
            _ => return Err(DecodeError::UnknownField(name)),
        };
        if slot.is_some() {
            return Err(DecodeError::DuplicateField(name));
        }
        let what = match name.as_str() {
            FIELD_CHANNELS => "channels",
            FIELD_TYPE => "type",
            FIELD_DATA => "data",
            _ => "marker",
        };
        *slot = Some(into_string(value, what)?);
    }
    if let Some(marker) = marker {
        return match (channels, event_type, data) {
            (None, None, None) => Ok(EntryKind::Marker(marker)),
            (Some(_), _, _) => Err(DecodeError::UnknownField(FIELD_CHANNELS.into())),
            (_, Some(_), _) => Err(DecodeError::UnknownField(FIELD_TYPE.into())),
            (_, _, Some(_)) => Err(DecodeError::UnknownField(FIELD_DATA.into())),
        };
    }
    let channels = channels.ok_or(DecodeError::MissingField(FIELD_CHANNELS))?;
    let event_type = event_type.ok_or(DecodeError::MissingField(FIELD_TYPE))?;
    let data = data.ok_or(DecodeError::MissingField(FIELD_DATA))?;
    if event_type.is_empty() || event_type.contains(['\r', '\n']) {
        return Err(DecodeError::EventType);
    }
    Ok(EntryKind::Event(NewEvent {
        channels: split_channels(&channels)?,
        event_type,
        data,
    }))
}

/// One entry reply, `[id, [name, value, …]]`.
pub fn decode_entry(v: Value) -> Result<LogEntry, DecodeError> {
    let parts = into_array(v, "entry")?;
    if parts.len() != 2 {
        return Err(DecodeError::Length {
            what: "entry",
            expected: "2",
            found: parts.len(),
        });
    }
    let mut parts = parts.into_iter();
    let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(DecodeError::Length {
            what: "entry",
            expected: "2",
            found: 0,
        });
    };
    let id = decode_id(&id, "entry id")?;
    let kind = decode_fields(into_array(fields, "entry fields")?)?;
    Ok(LogEntry { id, kind })
}

/// A list of entries (an `XRANGE` reply, or one stream of an `XREAD` reply), each strictly
/// after the previous and after `after`. An entry whose fields are wrong is returned as
/// [`Decoded::Bad`]; one whose id cannot be read, or out of order, fails the whole reply.
pub fn decode_entries(v: Value, after: EventId) -> Result<Vec<Decoded>, DecodeError> {
    let items = into_array(v, "entries")?;
    let mut out = Vec::with_capacity(items.len());
    let mut previous = after;
    for item in items {
        let id = decode_entry_id(&item)?;
        if id <= previous {
            return Err(DecodeError::Order { previous, next: id });
        }
        previous = id;
        out.push(match decode_entry(item) {
            Ok(entry) => Decoded::Entry(entry),
            Err(error) => Decoded::Bad { id, error },
        });
    }
    Ok(out)
}

/// An `XREAD … STREAMS key id` reply: nil (nothing before the block timeout) or
/// `[[key, entries]]`.
pub fn decode_xread(v: Value, key: &str, after: EventId) -> Result<Vec<Decoded>, DecodeError> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        other => into_array(other, "read reply")?,
    };
    if streams.len() != 1 {
        return Err(DecodeError::Length {
            what: "read reply",
            expected: "1 stream",
            found: streams.len(),
        });
    }
    let Some(stream) = streams.into_iter().next() else {
        return Ok(Vec::new());
    };
    let pair = into_array(stream, "read stream")?;
    if pair.len() != 2 {
        return Err(DecodeError::Length {
            what: "read stream",
            expected: "2",
            found: pair.len(),
        });
    }
    let mut pair = pair.into_iter();
    let (Some(name), Some(entries)) = (pair.next(), pair.next()) else {
        return Ok(Vec::new());
    };
    let name = into_string(name, "stream name")?;
    if name != key {
        return Err(DecodeError::WrongStream(name));
    }
    decode_entries(entries, after)
}

/// The ids an `XADD` batch returned (the `EXEC` reply of `MULTI`, `XADD…`, `EXEC`): `Some`
/// with one id per event, strictly increasing; `None` when every `XADD … NOMKSTREAM` found no
/// stream (nothing was stored).
pub fn decode_added_ids(v: Value, events: usize) -> Result<Option<Vec<EventId>>, DecodeError> {
    let items = into_array(v, "append reply")?;
    if items.len() != events {
        return Err(DecodeError::Length {
            what: "append reply",
            expected: "one per event",
            found: items.len(),
        });
    }
    if !items.is_empty() && items.iter().all(|v| matches!(v, Value::Nil)) {
        return Ok(None);
    }
    let mut ids = Vec::with_capacity(items.len());
    let mut previous = EventId::ZERO;
    for item in &items {
        let id = decode_id(item, "appended id")?;
        if id <= previous {
            return Err(DecodeError::Order { previous, next: id });
        }
        previous = id;
        ids.push(id);
    }
    Ok(Some(ids))
}

/// An `XINFO STREAM key` reply: a flat `[name, value, …]` array (RESP2) or a map (RESP3).
/// Unknown names are ignored (newer Redis versions add some); needed ones must be there.
pub fn decode_stream_state(v: Value) -> Result<LogState, DecodeError> {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(pairs) => pairs,
        other => {
            let items = into_array(other, "stream info")?;
            if !items.len().is_multiple_of(2) {
                return Err(DecodeError::OddFields(items.len()));
            }
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
    };
    let mut length = None;
    let mut first_entry = None;
    let mut last_generated = None;
    let mut max_deleted = None;
    let mut entries_added = None;
    for (name, value) in pairs {
        let name = into_string(name, "stream info name")?;
        let seen = match name.as_str() {
            "length" => length.replace(decode_count(&value, "length")?).is_some(),
            "last-generated-id" => last_generated
                .replace(decode_id(&value, "last-generated-id")?)
                .is_some(),
            "max-deleted-entry-id" => max_deleted
                .replace(decode_id(&value, "max-deleted-entry-id")?)
                .is_some(),
            "entries-added" => entries_added
                .replace(decode_count(&value, "entries-added")?)
                .is_some(),
            "first-entry" => {
                let id = match value {
                    Value::Nil => None,
                    other => Some(decode_entry_id(&other)?),
                };
                first_entry.replace(id).is_some()
            }
            _ => false,
        };
        if seen {
            return Err(DecodeError::DuplicateField(name));
        }
    }
    let state = LogState {
        length: length.ok_or(DecodeError::MissingField("length"))?,
        first_entry: first_entry.ok_or(DecodeError::MissingField("first-entry"))?,
        last_generated: last_generated.ok_or(DecodeError::MissingField("last-generated-id"))?,
        max_deleted: max_deleted.ok_or(DecodeError::MissingField("max-deleted-entry-id"))?,
        entries_added: entries_added.ok_or(DecodeError::MissingField("entries-added"))?,
    };
    if let Some(first) = state.first_entry {
        if first > state.last_generated {
            return Err(DecodeError::Order {
                previous: state.last_generated,
                next: first,
            });
        }
    }
    Ok(state)
}
