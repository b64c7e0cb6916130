//! Event → `text/event-stream` bytes, per the WHATWG rules, encoded once per event.
//!
//! Wire format of one event, fields in this order, each present only if set:
//!
//! ```text
//! retry: <ms>\n
//! id: <id>\n
//! event: <type>\n
//! data: <line 1>\n
//! data: <line n>\n
//! \n
//! ```
//!
//! - The separator is `": "`: a parser strips exactly one space after the colon, so a value
//!   that itself starts with a space still arrives intact.
//! - `data` is split at every line break (CRLF, lone CR, lone LF; CRLF counts as one) into
//!   `data:` lines; a client joins them with LF. So line breaks arrive as LF whatever they were,
//!   a trailing line break survives (`"a\n"` → `data: a` + `data: `), and empty data is one
//!   `data: ` line: the event is still dispatched, with data `""`.
//! - `id` and `event` cannot be split, so CR or LF in them is an error; so is NUL (browsers
//!   ignore an `id` containing NUL) and an empty event type (it would arrive as `message`).
//!
//! Every [`Frame`] ends with the blank line, so frames can be concatenated in any order.

use std::fmt;

use bytes::Bytes;
use memchr::{memchr2, memchr3};

use super::id::{decimal_len, write_decimal, EventId};

/// One SSE event to encode. `data` may contain CR, LF, CRLF: it is split into several `data:`
/// lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Event<'a> {
    /// `id:` line: becomes the client's Last-Event-ID. `None` leaves it unchanged.
    pub id: Option<&'a str>,
    /// `event:` line: the event type; `None` means the client's default, `message`.
    pub event: Option<&'a str>,
    /// The payload, any text.
    pub data: &'a str,
    /// `retry:` line: the client's reconnection delay from now on.
    pub retry_ms: Option<u64>,
}

/// A fully encoded event-stream chunk, shared by every subscriber (cheap clone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(Bytes);

/// Why an event cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The `id` contains CR, LF or NUL.
    IdHasLineBreakOrNul,
    /// The event type contains CR, LF or NUL.
    EventHasLineBreakOrNul,
    /// The event type is `Some("")`, which a client would read as `message`.
    EmptyEventName,
    /// The comment contains CR or LF.
    CommentHasLineBreak,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::IdHasLineBreakOrNul => "event id contains CR, LF or NUL",
            EncodeError::EventHasLineBreakOrNul => "event type contains CR, LF or NUL",
            EncodeError::EmptyEventName => "event type is empty",
            EncodeError::CommentHasLineBreak => "comment contains CR or LF",
        })
    }
}

impl std::error::Error for EncodeError {}

const RETRY: &[u8] = b"retry: ";
const ID: &[u8] = b"id: ";
const EVENT: &[u8] = b"event: ";
const DATA: &[u8] = b"data: ";

impl Frame {
    /// Encodes one event.
    pub fn encode(event: &Event<'_>) -> Result<Frame, EncodeError> {
        check_event(event)?;
        let len = event_len(event);
        let mut out = Vec::with_capacity(len);
        write_event(event, &mut out);
        debug_assert_eq!(out.len(), len, "one exact allocation");
        Ok(Frame(Bytes::from(out)))
    }

    /// A frame from bytes known at compile time. They must be a complete chunk: fields and
    /// comments each ending in LF, and the blank line.
    pub const fn from_static(bytes: &'static [u8]) -> Frame {
        Frame(Bytes::from_static(bytes))
    }

    /// The comment `: <text>\n\n`: ignored by clients, it keeps a connection visibly alive.
    pub fn comment(text: &str) -> Result<Frame, EncodeError> {
        if memchr2(b'\r', b'\n', text.as_bytes()).is_some() {
            return Err(EncodeError::CommentHasLineBreak);
        }
        let mut out = Vec::with_capacity(text.len() + 4);
        out.extend_from_slice(b": ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\n\n");
        Ok(Frame(Bytes::from(out)))
    }

    /// `: heartbeat\n\n`, without allocating.
    pub const fn heartbeat() -> Frame {
        Frame::from_static(b": heartbeat\n\n")
    }

    /// `retry: <ms>\n\n`: sets the client's reconnection delay, dispatches nothing.
    pub fn retry(ms: u64) -> Frame {
        let mut out = Vec::with_capacity(RETRY.len() + decimal_len(ms) + 2);
        out.extend_from_slice(RETRY);
        write_decimal(ms, &mut out);
        out.extend_from_slice(b"\n\n");
        Frame(Bytes::from(out))
    }

    /// The bytes to write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared buffer (clone it to hand out another reference).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The shared buffer, without touching the reference count.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the frame has no bytes (never true for a frame built here).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Frame> for Bytes {
    fn from(frame: Frame) -> Bytes {
        frame.0
    }
}

/// Appends an encoded event to `out` (for building several events into one buffer).
/// On error `out` is left as it was.
pub fn encode_into(event: &Event<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_event(event)?;
    out.reserve(event_len(event));
    write_event(event, out);
    Ok(())
}

/// A published event, the sequencer's fast path: `id: <id>\nevent: <type>\ndata: <json>\n\n`.
/// `json_data` is expected on one line (compact JSON); if it has line breaks anyway it is split
/// like any data, so the frame is correct either way.
pub fn encode_published(
    id: EventId,
    event_type: &str,
    json_data: &str,
) -> Result<Frame, EncodeError> {
    check_event_type(event_type)?;
    let data = json_data.as_bytes();
    let len =
        ID.len() + id.text_len() + 1 + EVENT.len() + event_type.len() + 1 + data_len(data) + 1;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(ID);
    id.write_to(&mut out);
    out.push(b'\n');
    out.extend_from_slice(EVENT);
    out.extend_from_slice(event_type.as_bytes());
    out.push(b'\n');
    write_data(data, &mut out);
    out.push(b'\n');
    debug_assert_eq!(out.len(), len, "one exact allocation");
    Ok(Frame(Bytes::from(out)))
}

/// `event: connected` with `{"clientId":"…","timestamp":<ms>}`; no `id:` line.
pub fn connected(client_id: &str, timestamp_ms: u64) -> Frame {
    let mut out = Vec::with_capacity(64 + client_id.len());
    out.extend_from_slice(b"event: connected\ndata: {\"clientId\":");
    write_json_str(client_id, &mut out);
    out.extend_from_slice(b",\"timestamp\":");
    write_decimal(timestamp_ms, &mut out);
    out.extend_from_slice(b"}\n\n");
    Frame(Bytes::from(out))
}

/// `event: shutdown` with `{"message":"Server shutting down"}`, preceded by `retry: <ms>` so
/// reconnects spread out (the caller jitters `retry_ms`); no `id:` line.
pub fn shutdown(retry_ms: u64) -> Frame {
    const TAIL: &[u8] = b"\nevent: shutdown\ndata: {\"message\":\"Server shutting down\"}\n\n";
    let mut out = Vec::with_capacity(RETRY.len() + decimal_len(retry_ms) + TAIL.len());
    out.extend_from_slice(RETRY);
    write_decimal(retry_ms, &mut out);
    out.extend_from_slice(TAIL);
    Frame(Bytes::from(out))
}

/// `event: reset` with `{"reason":"…","requested":"…"}`: the requested Last-Event-ID cannot be
/// served exactly; what follows is what is retained. No `id:` line.
pub fn reset(reason: &str, requested: &str) -> Frame {
    let mut out = Vec::with_capacity(48 + reason.len() + requested.len());
    out.extend_from_slice(b"event: reset\ndata: {\"reason\":");
    write_json_str(reason, &mut out);
    out.extend_from_slice(b",\"requested\":");
    write_json_str(requested, &mut out);
    out.extend_from_slice(b"}\n\n");
    Frame(Bytes::from(out))
}

/// `event: token-expired` with `{"message":"Token expired"}`: sent before the server closes a
/// stream whose authorization ran out. No `id:` line.
pub const fn token_expired() -> Frame {
    Frame::from_static(b"event: token-expired\ndata: {\"message\":\"Token expired\"}\n\n")
}

/// Appends `s` as a JSON string. serde_json escapes every control character, so the result
/// never holds a raw CR or LF and fits on one `data:` line.
fn write_json_str(s: &str, out: &mut Vec<u8>) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, s).is_err() {
        // Unreachable (writing a str to a Vec cannot fail); keep the JSON valid regardless.
        out.truncate(mark);
        out.extend_from_slice(b"\"\"");
    }
}

fn check_event(event: &Event<'_>) -> Result<(), EncodeError> {
    if let Some(id) = event.id {
        if memchr3(b'\r', b'\n', 0, id.as_bytes()).is_some() {
            return Err(EncodeError::IdHasLineBreakOrNul);
        }
    }
    if let Some(event_type) = event.event {
        check_event_type(event_type)?;
    }
    Ok(())
}

fn check_event_type(event_type: &str) -> Result<(), EncodeError> {
    if event_type.is_empty() {
        return Err(EncodeError::EmptyEventName);
    }
    if memchr3(b'\r', b'\n', 0, event_type.as_bytes()).is_some() {
        return Err(EncodeError::EventHasLineBreakOrNul);
    }
    Ok(())
}

/// Exact encoded length of a checked event.
fn event_len(event: &Event<'_>) -> usize {
    let retry = event
        .retry_ms
        .map_or(0, |ms| RETRY.len() + decimal_len(ms) + 1);
    let id = event.id.map_or(0, |id| ID.len() + id.len() + 1);
    let kind = event.event.map_or(0, |e| EVENT.len() + e.len() + 1);
    retry + id + kind + data_len(event.data.as_bytes()) + 1
}

/// Writes a checked event, blank line included.
fn write_event(event: &Event<'_>, out: &mut Vec<u8>) {
    if let Some(ms) = event.retry_ms {
        out.extend_from_slice(RETRY);
        write_decimal(ms, out);
        out.push(b'\n');
    }
    if let Some(id) = event.id {
        out.extend_from_slice(ID);
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(event_type) = event.event {
        out.extend_from_slice(EVENT);
        out.extend_from_slice(event_type.as_bytes());
        out.push(b'\n');
    }
    write_data(event.data.as_bytes(), out);
    out.push(b'\n');
}

/// Length of the `data:` lines for `data`.
#[inline]
fn data_len(data: &[u8]) -> usize {
    Lines::new(data)
        .map(|line| DATA.len() + line.len() + 1)
        .sum()
}

/// One `data: <line>\n` per line of `data`.
#[inline]
fn write_data(data: &[u8], out: &mut Vec<u8>) {
    for line in Lines::new(data) {
        out.extend_from_slice(DATA);
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// The lines of a text as an event-stream parser sees them: split at CRLF, CR or LF. Always at
/// least one (possibly empty) line; a trailing break yields a final empty line.
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Lines<'a> {
    #[inline]
    fn new(text: &'a [u8]) -> Self {
        Lines { rest: Some(text) }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let Some((line, tail)) = memchr2(b'\r', b'\n', rest).and_then(|i| rest.split_at_checked(i))
        else {
            self.rest = None;
            return Some(rest);
        };
        let after_break = tail
            .strip_prefix(b"\r\n")
            .or_else(|| tail.get(1..))
            .unwrap_or_default();
        self.rest = Some(after_break);
        Some(line)
    }
}
