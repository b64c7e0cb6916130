//! Subscriber slots: a dense slab of small records, one per open event stream. An idle
//! subscriber is just its slot (no task, no buffer, no timer); what is due is sent straight
//! from the slot while the socket has room, and a writer task exists only while a full socket
//! holds bytes back ([`super::writer`]).
//!
//! **Who owns the socket.** A subscriber's `TcpStream` is in exactly one place: in its slot
//! ([`Writer::Idle`]) or in its writer task ([`Writer::Busy`]). The writer task gives it back,
//! or — when the stream must end ([`Control::Close`] is pending) — drops it and removes the slot
//! in the same synchronous step. So the raw [`Subscriber::fd`] copy is valid exactly as long as
//! the slot exists, and is only used for `shutdown(2)` and the epoll set.

use std::os::fd::RawFd;

use monoio::net::TcpStream;

use crate::channel::ChannelIdx;
use crate::sse::id::EventId;

/// Who holds the stream.
#[derive(Debug)]
pub(super) enum Writer {
    /// No write in flight: the slot holds the stream.
    Idle(TcpStream),
    /// A writer task holds the stream; it gives it back when nothing is due, or drops it with
    /// the slot when [`Control::Close`] is pending.
    Busy,
}

/// Work due on a stream besides its events, done by its next write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Control {
    /// `: heartbeat`, if nothing else is due.
    Heartbeat,
    /// `event: shutdown` after what is due, then close (draining).
    Shutdown,
    /// `event: token-expired`, then close.
    TokenExpired,
    /// End the stream as soon as its writer lets go of it (the socket is already shut down).
    Close,
    /// `event: reset` (reason `log-lost`) before what is due: the cluster's log was lost.
    LogLost,
}

/// The set of pending [`Control`]s, one byte per slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Pending(u8);

impl Control {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl Pending {
    pub(super) fn has(self, c: Control) -> bool {
        self.0 & c.bit() != 0
    }

    pub(super) fn set(&mut self, c: Control) {
        self.0 |= c.bit();
    }

    /// Whether `c` was pending; it no longer is.
    pub(super) fn take(&mut self, c: Control) -> bool {
        let had = self.has(c);
        self.0 &= !c.bit();
        had
    }

    pub(super) fn any(self) -> bool {
        self.0 != 0
    }
}

/// One subscriber.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) writer: Writer,
    /// The stream's descriptor; valid while the slot exists (see the module doc).
    pub(super) fd: RawFd,
    pub(super) pending: Pending,
    /// Was over `--max-lag` at the last sweep (a second time in a row disconnects).
    pub(super) lagging: bool,
    /// Seconds (worker clock) of the last completed write, or of the start of the write in flight.
    pub(super) last_write_secs: u32,
    pub(super) channels: Box<[ChannelIdx]>,
    /// The newest event id handed to this connection's writer.
    pub(super) cursor: EventId,
    /// The newest event id known when the stream opened: older events are replay, which does
    /// not count as lag.
    pub(super) joined: EventId,
    /// Evictions at or below this id were already announced with a `reset` event.
    pub(super) acknowledged_floor: EventId,
    /// The client address as counted for `--max-connections-per-ip`.
    pub(super) peer_key: u64,
    /// Unix second at which the stream ends (0: never): its token expires, or its
    /// `--max-stream-lifetime` is over, whichever comes first.
    pub(super) ends_at: u32,
    /// `ends_at` is the token's expiry (`event: token-expired`), not the lifetime's end
    /// (`event: shutdown`, as in a drain).
    pub(super) ends_with_token: bool,
    /// The stream is gzip-encoded (`--gzip` and `Accept-Encoding: gzip`): events go out as
    /// their shared gzip segments, per-connection frames as stored blocks.
    pub(super) gzip: bool,
}

/// Key of a slot: index plus the generation that detects a reused index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlotKey {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl SlotKey {
    /// The key as one number (the epoll token).
    pub(super) fn token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub(super) fn from_token(token: u64) -> SlotKey {
        SlotKey {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    slot: Option<T>,
}

/// The slab: indices are reused, generations tell a stale key from the current occupant.
#[derive(Debug)]
pub(super) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

/// The subscribers of one worker.
pub(super) type Slots = Slab<Subscriber>;

impl<T> Slab<T> {
    pub(super) fn insert(&mut self, value: T) -> SlotKey {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            if let Some(entry) = self.entries.get_mut(index as usize) {
                entry.generation = entry.generation.wrapping_add(1);
                entry.slot = Some(value);
                return SlotKey {
                    index,
                    generation: entry.generation,
                };
            }
        }
        self.entries.push(Entry {
            generation: 0,
            slot: Some(value),
        });
        SlotKey {
            index: (self.entries.len() - 1) as u32,
            generation: 0,
        }
    }

    pub(super) fn get(&self, key: SlotKey) -> Option<&T> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation)
            .and_then(|e| e.slot.as_ref())
    }

    pub(super) fn get_mut(&mut self, key: SlotKey) -> Option<&mut T> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)
            .and_then(|e| e.slot.as_mut())
    }

    /// The live slot at `index`, whatever its generation (channel subscriber lists hold indices).
    pub(super) fn at_mut(&mut self, index: u32) -> Option<(SlotKey, &mut T)> {
        let entry = self.entries.get_mut(index as usize)?;
        let key = SlotKey {
            index,
            generation: entry.generation,
        };
        entry.slot.as_mut().map(|s| (key, s))
    }

    pub(super) fn remove(&mut self, key: SlotKey) -> Option<T> {
        let entry = self
            .entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)?;
        let slot = entry.slot.take()?;
        self.free.push(key.index);
        self.len -= 1;
        Some(slot)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keys of every live slot.
    pub(super) fn keys(&self) -> impl Iterator<Item = SlotKey> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.slot.is_some())
            .map(|(i, e)| SlotKey {
                index: i as u32,
                generation: e.generation,
            })
    }

    /// Visit every live slot.
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(SlotKey, &mut T)) {
        for (i, e) in self.entries.iter_mut().enumerate() {
            let generation = e.generation;
            if let Some(slot) = e.slot.as_mut() {
                f(
                    SlotKey {
                        index: i as u32,
                        generation,
                    },
                    slot,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_controls_are_independent() {
        let all = [
            Control::Heartbeat,
            Control::Shutdown,
            Control::TokenExpired,
            Control::Close,
            Control::LogLost,
        ];
        for c in all {
            let mut p = Pending::default();
            assert!(!p.any());
            p.set(c);
            for other in all {
                assert_eq!(p.has(other), other == c, "{c:?} set, {other:?} asked");
            }
            assert!(p.take(c));
            assert!(!p.take(c));
            assert!(!p.any());
        }
    }

    #[test]
    fn a_slot_stays_small() {
        // 168 bytes before the writer became an explicit state; keep it there.
        assert!(std::mem::size_of::<Subscriber>() <= 168);
    }

    #[test]
    fn a_reused_index_gets_a_new_generation_and_stale_keys_miss() {
        let mut slab: Slab<&str> = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!((a.index, a.generation), (0, 0));
        assert_eq!((b.index, b.generation), (1, 0));
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "removed twice");
        let c = slab.insert("c");
        assert_eq!(
            (c.index, c.generation),
            (0, 1),
            "index reused, generation bumped"
        );
        assert_eq!(
            slab.get(a),
            None,
            "a stale key does not reach the new occupant"
        );
        assert_eq!(slab.get_mut(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(c), Some(&"c"));
        // By index (as channel subscriber lists hold it) the current occupant is found.
        let (key, value) = slab.at_mut(0).expect("occupied");
        assert_eq!((key, *value), (c, "c"));
        assert_eq!(slab.len(), 2);
        let mut keys: Vec<SlotKey> = slab.keys().collect();
        keys.sort_by_key(|k| k.index);
        assert_eq!(keys, vec![c, b]);
    }

    #[test]
    fn keys_round_trip_through_epoll_tokens() {
        for key in [
            SlotKey {
                index: 0,
                generation: 0,
            },
            SlotKey {
                index: 7,
                generation: 3,
            },
            SlotKey {
                index: u32::MAX,
                generation: u32::MAX,
            },
        ] {
            assert_eq!(SlotKey::from_token(key.token()), key);
        }
    }

    #[test]
    fn generations_wrap_instead_of_overflowing() {
        let mut slab: Slab<u8> = Slab::default();
        let mut key = slab.insert(0);
        if let Some(e) = slab.entries.get_mut(0) {
            e.generation = u32::MAX;
        }
        key.generation = u32::MAX;
        slab.remove(key);
        let next = slab.insert(1);
        assert_eq!(next.generation, 0);
    }
}
