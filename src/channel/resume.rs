//! The resume rule: where a new stream starts, given the `Last-Event-ID` it sent and what this
//! worker retains. Pure: no I/O, no state — the worker supplies the facts.
//!
//! An id is served exactly when it is well formed, not newer than any id issued, from this run
//! of the server, and not older than the floor of any requested channel (the newest id evicted
//! from it). Otherwise the stream starts with `event: reset` naming the reason, then carries on
//! with what is retained.

use crate::sse::id::{self, EventId};

/// Why a resume id cannot be served exactly; the text is the `reason` of the `reset` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// Not an id of the `<ms>-<seq>` shape.
    MalformedId,
    /// Newer than every id issued (not from this server, or from a log that was lost).
    UnknownId,
    /// From before this server started: its history is gone.
    PreviousRun,
    /// Older than what one of the requested channels still retains.
    Evicted,
    /// Cluster mode: the shared log was lost (Redis came back without its data); sent to open
    /// streams, whose position can no longer be served exactly.
    LogLost,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::MalformedId => "malformed-id",
            ResetReason::UnknownId => "unknown-id",
            ResetReason::PreviousRun => "previous-run",
            ResetReason::Evicted => "evicted",
            ResetReason::LogLost => "log-lost",
        }
    }
}

/// What the worker knows when a stream opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The newest id this worker has seen.
    pub newest: EventId,
    /// Ids at or below this belong to an earlier run (or an earlier log).
    pub boot: EventId,
    /// The highest floor among the requested channels.
    pub floor: EventId,
}

/// Where a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Events after this id are due.
    pub cursor: EventId,
    /// The newest id when the stream opened: older events are replay, not lag.
    pub joined: EventId,
    /// Evictions at or below this were announced by the reset; they must not disconnect it.
    pub acknowledged_floor: EventId,
    /// Send `event: reset` with this reason first.
    pub reset: Option<ResetReason>,
}

/// Decide where a stream that sent `requested` (None: no resume) starts.
pub fn plan(requested: Option<&[u8]>, known: Known) -> Start {
    let live = Start {
        cursor: known.newest,
        joined: known.newest,
        acknowledged_floor: EventId::ZERO,
        reset: None,
    };
    let Some(raw) = requested else {
        return live;
    };
    let (reset, cursor) = match id::parse(raw) {
        Err(_) => (Some(ResetReason::MalformedId), EventId::ZERO),
        Ok(id) if id > known.newest => (Some(ResetReason::UnknownId), EventId::ZERO),
        Ok(id) if id < known.boot => (Some(ResetReason::PreviousRun), id),
        Ok(id) if id < known.floor => (Some(ResetReason::Evicted), id),
        Ok(id) => (None, id),
    };
    Start {
        cursor,
        joined: known.newest,
        acknowledged_floor: if reset.is_some() {
            known.floor
        } else {
            EventId::ZERO
        },
        reset,
    }
}

#[cfg(test)]
mod tests {
    use super::ResetReason::*;
    use super::*;

    const fn id(ms: u64, seq: u64) -> EventId {
        EventId::new(ms, seq)
    }

    #[test]
    fn rows() {
        // boot 100-0, channels' floor 150-0, newest 200-5.
        let known = Known {
            newest: id(200, 5),
            boot: id(100, 0),
            floor: id(150, 0),
        };
        type Row = (Option<&'static str>, Option<ResetReason>, EventId, EventId);
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // requested         reset               cursor       acknowledged floor
            (None,               None,               id(200, 5),  EventId::ZERO),
            (Some("200-5"),      None,               id(200, 5),  EventId::ZERO),
            (Some("150-0"),      None,               id(150, 0),  EventId::ZERO),
            (Some("199-9"),      None,               id(199, 9),  EventId::ZERO),
            (Some("200-6"),      Some(UnknownId),    EventId::ZERO, id(150, 0)),
            (Some("9999-0"),     Some(UnknownId),    EventId::ZERO, id(150, 0)),
            (Some("149-99"),     Some(Evicted),      id(149, 99), id(150, 0)),
            (Some("100-0"),      Some(Evicted),      id(100, 0),  id(150, 0)),
            (Some("99-7"),       Some(PreviousRun),  id(99, 7),   id(150, 0)),
            (Some("0-0"),        Some(PreviousRun),  id(0, 0),    id(150, 0)),
            (Some("junk"),       Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some(""),           Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some("200"),        Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some("200-5-1"),    Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some("-1-0"),       Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some("0200-5"),     Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some("200-5 "),     Some(MalformedId),  EventId::ZERO, id(150, 0)),
            (Some("18446744073709551616-0"), Some(MalformedId), EventId::ZERO, id(150, 0)),
        ];
        for (requested, reset, cursor, ack) in rows {
            let start = plan(requested.map(str::as_bytes), known);
            assert_eq!(start.reset, *reset, "{requested:?}");
            assert_eq!(start.cursor, *cursor, "{requested:?}");
            assert_eq!(start.acknowledged_floor, *ack, "{requested:?}");
            assert_eq!(start.joined, known.newest, "{requested:?}");
        }
    }

    #[test]
    fn exact_at_the_edges() {
        // Nothing retained yet: the floor is the boot id, and the boot id itself is exact.
        let fresh = Known {
            newest: id(100, 0),
            boot: id(100, 0),
            floor: id(100, 0),
        };
        assert_eq!(plan(Some(b"100-0"), fresh).reset, None);
        assert_eq!(plan(Some(b"100-1"), fresh).reset, Some(UnknownId));
        assert_eq!(plan(Some(b"99-999"), fresh).reset, Some(PreviousRun));
    }

    #[test]
    fn reasons_have_their_wire_names() {
        let names: Vec<&str> = [MalformedId, UnknownId, PreviousRun, Evicted, LogLost]
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "malformed-id",
                "unknown-id",
                "previous-run",
                "evicted",
                "log-lost"
            ]
        );
    }
}
