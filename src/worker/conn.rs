//! Connection slots: a dense slab of small records, one per open event stream. An idle
//! subscriber is just its slot (no task, no buffer, no timer); a writer task exists only while
//! it has bytes to send.

use std::os::fd::RawFd;

use monoio::net::TcpStream;

use crate::channel::ChannelIdx;
use crate::sse::id::EventId;

/// A write task holds the stream.
pub const WRITING: u8 = 1;
/// Close as soon as the writer (if any) lets go.
pub const CLOSING: u8 = 2;
/// Send a heartbeat if nothing else is due.
pub const HEARTBEAT_DUE: u8 = 4;
/// Send the shutdown event, then close.
pub const SHUTDOWN_DUE: u8 = 8;
/// Was over `--max-lag` at the last sweep.
pub const LAGGING: u8 = 16;
/// The token expired: send `event: token-expired`, then close.
pub const TOKEN_EXPIRED: u8 = 32;

/// One subscriber.
#[derive(Debug)]
pub struct ConnSlot {
    /// `None` while a writer task holds it.
    pub stream: Option<TcpStream>,
    pub fd: RawFd,
    pub flags: u8,
    /// Seconds (worker clock) of the last completed write, or of the start of the write in flight.
    pub last_write_secs: u32,
    pub channels: Box<[ChannelIdx]>,
    /// The newest event id handed to this connection's writer.
    pub cursor: EventId,
    /// The newest event id known when the stream opened: older events are replay, which does
    /// not count as lag.
    pub joined: EventId,
    /// Evictions at or below this id were already announced with a `reset` event.
    pub acknowledged_floor: EventId,
    /// The client address as counted for `--max-connections-per-ip`.
    pub peer_key: u64,
    /// Unix second at which the stream's token expires (0: never).
    pub expires_at: u32,
}

impl ConnSlot {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Key of a slot: index plus the generation that detects a reused index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnKey {
    pub index: u32,
    pub generation: u32,
}

impl ConnKey {
    pub fn token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
    pub fn from_token(token: u64) -> ConnKey {
        ConnKey {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

#[derive(Debug)]
struct Entry {
    generation: u32,
    slot: Option<ConnSlot>,
}

/// The slab.
#[derive(Debug, Default)]
pub struct Conns {
    entries: Vec<Entry>,
    free: Vec<u32>,
    len: usize,
}

impl Conns {
    pub fn insert(&mut self, slot: ConnSlot) -> ConnKey {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            if let Some(entry) = self.entries.get_mut(index as usize) {
                entry.generation = entry.generation.wrapping_add(1);
                entry.slot = Some(slot);
                return ConnKey {
                    index,
                    generation: entry.generation,
                };
            }
        }
        self.entries.push(Entry {
            generation: 0,
            slot: Some(slot),
        });
        ConnKey {
            index: (self.entries.len() - 1) as u32,
            generation: 0,
        }
    }

    pub fn get(&self, key: ConnKey) -> Option<&ConnSlot> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation)
            .and_then(|e| e.slot.as_ref())
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut ConnSlot> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)
            .and_then(|e| e.slot.as_mut())
    }

    /// The live slot at `index`, whatever its generation (channel subscriber lists hold indices).
    pub fn at_mut(&mut self, index: u32) -> Option<(ConnKey, &mut ConnSlot)> {
        let entry = self.entries.get_mut(index as usize)?;
        let key = ConnKey {
            index,
            generation: entry.generation,
        };
        entry.slot.as_mut().map(|s| (key, s))
    }

    pub fn remove(&mut self, key: ConnKey) -> Option<ConnSlot> {
        let entry = self
            .entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)?;
        let slot = entry.slot.take()?;
        self.free.push(key.index);
        self.len -= 1;
        Some(slot)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Keys of every live slot.
    pub fn keys(&self) -> impl Iterator<Item = ConnKey> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.slot.is_some())
            .map(|(i, e)| ConnKey {
                index: i as u32,
                generation: e.generation,
            })
    }

    /// Visit every live slot.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(ConnKey, &mut ConnSlot)) {
        for (i, e) in self.entries.iter_mut().enumerate() {
            let generation = e.generation;
            if let Some(slot) = e.slot.as_mut() {
                f(
                    ConnKey {
                        index: i as u32,
                        generation,
                    },
                    slot,
                );
            }
        }
    }
}
