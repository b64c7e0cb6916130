//! Event ids: `<unix-ms>-<seq>`, the shape of a Redis stream id.
//!
//! Ids are totally ordered by `(ms, seq)`, and the server hands them out strictly increasing
//! ([`IdGenerator`]), so "every event after id X" is well defined across channels and, later,
//! across instances sharing a Redis stream.
//!
//! The text form is canonical and parsing is strict (see [`parse`]): an id that a client sends
//! back in `Last-Event-ID` is accepted only if it is exactly what this server (or Redis) could
//! have written. Anything else is refused, and the engine answers it with an `event: reset`
//! rather than guessing what the client meant.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest canonical id: two 20-digit `u64`s and the dash.
pub const MAX_LEN: usize = 41;

/// An event id: milliseconds since the Unix epoch, and a sequence number within that
/// millisecond. The derived order, `(ms, seq)` lexicographic, is the delivery order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    /// Unix time in milliseconds (as the sequencer saw it; see [`IdGenerator`]).
    pub ms: u64,
    /// Sequence number within `ms`.
    pub seq: u64,
}

impl EventId {
    /// `0-0`: lower than every id the generator issues.
    pub const ZERO: EventId = EventId { ms: 0, seq: 0 };
    /// The largest id, `18446744073709551615-18446744073709551615`.
    pub const MAX: EventId = EventId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The id `<ms>-<seq>`.
    pub const fn new(ms: u64, seq: u64) -> Self {
        EventId { ms, seq }
    }

    /// Appends the canonical text form (`1732406400000-0`) to `out`.
    #[inline]
    pub fn write_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(IdText::new(self).as_bytes());
    }

    /// Number of bytes of the canonical text form.
    #[inline]
    pub fn text_len(self) -> usize {
        decimal_len(self.ms) + 1 + decimal_len(self.seq)
    }

    /// The next id in the total order: `(ms, seq + 1)`, or `(ms + 1, 0)` when `seq` is full.
    /// Saturates at [`EventId::MAX`], which has no successor.
    #[inline]
    pub fn successor(self) -> EventId {
        match self.seq.checked_add(1) {
            Some(seq) => EventId { ms: self.ms, seq },
            None => match self.ms.checked_add(1) {
                Some(ms) => EventId { ms, seq: 0 },
                None => EventId::MAX,
            },
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(IdText::new(*self).as_str())
    }
}

impl FromStr for EventId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s.as_bytes())
    }
}

/// Why a text is not an event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// Nothing to parse.
    Empty,
    /// Longer than [`MAX_LEN`] bytes: cannot be a canonical id.
    TooLong,
    /// Not `<digits>-<digits>` in canonical form.
    Malformed,
    /// A part has more value than a `u64` holds.
    Overflow,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::Empty => "event id is empty",
            IdError::TooLong => "event id is longer than 41 bytes",
            IdError::Malformed => {
                "event id is not <unix-ms>-<seq> (ASCII digits, no sign, no leading zeros)"
            }
            IdError::Overflow => "event id part does not fit in 64 bits",
        })
    }
}

impl std::error::Error for IdError {}

/// Parses a canonical id, `<ms>-<seq>`, from bytes (a header value or a query parameter).
///
/// Strict on purpose, so that an accepted id is one this server could have issued and
/// `parse(id.to_string()) == id` holds both ways:
/// - exactly two parts separated by one `-`, both non-empty, ASCII digits `0-9` only (no sign,
///   no spaces, no other Unicode digits);
/// - no leading zeros, except the single digit `0` (Redis accepts `007-0`, we do not: it would
///   be a second spelling of `7-0`);
/// - a bare `<ms>` is refused (Redis' `XRANGE` reads it as `<ms>-0`, but no client holds such
///   an id from us, so it is a mistake or a foreign id);
/// - each part fits in a `u64`, and the whole is at most [`MAX_LEN`] bytes.
pub fn parse(bytes: &[u8]) -> Result<EventId, IdError> {
    if bytes.is_empty() {
        return Err(IdError::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(IdError::TooLong);
    }
    let mut parts = bytes.splitn(2, |&b| b == b'-');
    let ms = parts.next().ok_or(IdError::Malformed)?;
    let seq = parts.next().ok_or(IdError::Malformed)?;
    // Check both parts' shape before their size, so `x-99…9` is Malformed, not Overflow.
    if !is_canonical_decimal(ms) || !is_canonical_decimal(seq) {
        return Err(IdError::Malformed);
    }
    Ok(EventId {
        ms: decimal_value(ms)?,
        seq: decimal_value(seq)?,
    })
}

/// Non-empty ASCII digits without a leading zero (but `0` itself).
fn is_canonical_decimal(part: &[u8]) -> bool {
    match part {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        _ => part.iter().all(u8::is_ascii_digit),
    }
}

/// Value of a run of ASCII digits.
fn decimal_value(digits: &[u8]) -> Result<u64, IdError> {
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(d.wrapping_sub(b'0'))))
            .ok_or(IdError::Overflow)
    })
}

/// Appends `n` in decimal to `out` (no `fmt` machinery).
#[inline]
pub(crate) fn write_decimal(n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let start = put_decimal(&mut buf, n);
    out.extend_from_slice(buf.get(start..).unwrap_or_default());
}

/// Number of decimal digits of `n`.
#[inline]
pub(crate) fn decimal_len(n: u64) -> usize {
    match n.checked_ilog10() {
        Some(log) => log as usize + 1,
        None => 1,
    }
}

/// "00" "01" … "99": two digits per division halves the work of formatting.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The canonical text of an id, formatted right-aligned on the stack.
struct IdText {
    buf: [u8; MAX_LEN],
    start: usize,
}

impl IdText {
    #[inline]
    fn new(id: EventId) -> Self {
        let mut buf = [0u8; MAX_LEN];
        let seq_start = put_decimal(&mut buf, id.seq);
        let dash = seq_start.saturating_sub(1);
        let (head, tail) = buf.split_at_mut(dash);
        if let Some(slot) = tail.first_mut() {
            *slot = b'-';
        }
        let start = put_decimal(head, id.ms);
        IdText { buf, start }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// Writes `n` in decimal at the end of `dst`; returns the index of its first digit.
/// `dst` must hold 20 bytes (the longest `u64`); a shorter one gets the low digits only.
#[inline]
fn put_decimal(dst: &mut [u8], mut n: u64) -> usize {
    let mut start = dst.len();
    let mut pairs = dst.rchunks_exact_mut(2);
    while n >= 100 {
        let Some(pair) = pairs.next() else {
            return start;
        };
        pair.copy_from_slice(digit_pair(n % 100));
        n /= 100;
        start = start.saturating_sub(2);
    }
    let (tens, ones) = match digit_pair(n) {
        [t, o] => (*t, *o),
        _ => (b'0', b'0'),
    };
    // The last one or two digits: `pairs` may have run out, so go through the slice again.
    let rest = dst.get_mut(..start).unwrap_or_default();
    let mut slots = rest.iter_mut().rev();
    if let Some(slot) = slots.next() {
        *slot = ones;
        start = start.saturating_sub(1);
    }
    if n >= 10 {
        if let Some(slot) = slots.next() {
            *slot = tens;
            start = start.saturating_sub(1);
        }
    }
    start
}

/// The two ASCII digits of `n < 100`.
#[inline]
fn digit_pair(n: u64) -> &'static [u8] {
    let i = (n as usize % 100) * 2;
    DIGIT_PAIRS.get(i..i + 2).unwrap_or(b"00")
}

/// Hands out strictly increasing ids. Owned by the one sequencer; not shared.
#[derive(Debug)]
pub struct IdGenerator {
    last: EventId,
}

impl IdGenerator {
    /// A generator whose every id is greater than `floor` (the last id of a previous run, or
    /// [`EventId::ZERO`]). The only exception is `floor == EventId::MAX`, which has no
    /// successor: the generator then keeps returning `MAX`.
    pub fn new(floor: EventId) -> Self {
        IdGenerator { last: floor }
    }

    /// The next id, given the wall clock `now_ms`: `(now_ms, 0)` if the clock moved past the
    /// last id, else the last id's successor. So ids stay strictly increasing when the clock
    /// stands still, steps backwards, or jumps; after a backward step they borrow the last
    /// `ms` until the clock catches up.
    #[inline]
    pub fn next(&mut self, now_ms: u64) -> EventId {
        self.last = if now_ms > self.last.ms {
            EventId::new(now_ms, 0)
        } else {
            self.last.successor()
        };
        self.last
    }

    /// The last id issued (or the floor, before the first).
    pub fn last(&self) -> EventId {
        self.last
    }
}

/// Milliseconds since the Unix epoch; 0 if the clock reads earlier than the epoch.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
