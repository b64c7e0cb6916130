//! Channels on one worker: the registry from name to channel, each channel's local subscribers
//! and its history ring, and the replay merge across several channels.
//!
//! Every worker keeps the history of every channel (each event reaches every worker), so a
//! client can resume on whichever core accepts its reconnection.

pub mod history;
pub mod name;
pub mod resume;

use std::collections::HashMap;

pub use history::{Entry, History, Retention};
pub use name::{validate as validate_name, NameError, MAX_CHANNEL_NAME_BYTES};

use crate::sse::id::EventId;

/// Index of a channel in its worker's registry (stable while the channel exists).
pub type ChannelIdx = u32;

/// One channel on one worker.
#[derive(Debug)]
pub struct Channel {
    pub name: Box<str>,
    pub history: History,
    /// Connection slots following this channel on this worker.
    pub subscribers: Vec<u32>,
}

/// Name → channel, with slots reused after idle channels are collected.
#[derive(Debug)]
pub struct Channels {
    by_name: HashMap<Box<str>, ChannelIdx>,
    slots: Vec<Option<Channel>>,
    free: Vec<ChannelIdx>,
    retention: Retention,
    /// Floor given to a channel created now: the boot id, raised to the floor of every
    /// collected channel so that dropping a channel never hides an eviction.
    new_floor: EventId,
}

/// Why a replay stopped where it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collected {
    pub frames: usize,
    pub bytes: usize,
    /// More events are due than the limits let through.
    pub more: bool,
}

impl Channels {
    pub fn new(retention: Retention, boot: EventId) -> Channels {
        Channels {
            by_name: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            retention,
            new_floor: boot,
        }
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    pub fn find(&self, name: &str) -> Option<ChannelIdx> {
        self.by_name.get(name).copied()
    }

    /// The channel called `name`, created empty if it does not exist yet.
    pub fn find_or_create(&mut self, name: &str) -> ChannelIdx {
        if let Some(idx) = self.find(name) {
            return idx;
        }
        let channel = Channel {
            name: name.into(),
            history: History::new(self.new_floor),
            subscribers: Vec::new(),
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(slot) = self.slots.get_mut(idx as usize) {
                    *slot = Some(channel);
                }
                idx
            }
            None => {
                self.slots.push(Some(channel));
                (self.slots.len() - 1) as ChannelIdx
            }
        };
        self.by_name.insert(name.into(), idx);
        idx
    }

    pub fn get(&self, idx: ChannelIdx) -> Option<&Channel> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, idx: ChannelIdx) -> Option<&mut Channel> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    /// Record an event in a channel's history.
    pub fn append(&mut self, idx: ChannelIdx, entry: Entry) {
        let retention = self.retention;
        if let Some(ch) = self.get_mut(idx) {
            ch.history.push(entry, &retention);
        }
    }

    /// Expire old events everywhere and drop channels with neither subscribers nor history.
    pub fn sweep(&mut self, now_ms: u64) {
        let retention = self.retention;
        for idx in 0..self.slots.len() {
            let Some(Some(ch)) = self.slots.get_mut(idx) else {
                continue;
            };
            ch.history.expire(now_ms, &retention);
            if ch.subscribers.is_empty() && ch.history.is_empty() {
                self.new_floor = self.new_floor.max(ch.history.floor());
                self.by_name.remove(&ch.name);
                if let Some(slot) = self.slots.get_mut(idx) {
                    *slot = None;
                }
                self.free.push(idx as ChannelIdx);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Every channel on this worker.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.slots.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The highest floor among `channels`: a resume from below it cannot be served exactly.
    pub fn floor_of(&self, channels: &[ChannelIdx]) -> EventId {
        channels
            .iter()
            .filter_map(|&c| self.get(c))
            .map(|c| c.history.floor())
            .max()
            .unwrap_or(self.new_floor)
    }

    /// True if some channel evicted an event newer than `cursor` that is also newer than
    /// `acknowledged` (the floor a reset already told the client about): that connection missed
    /// events and must be disconnected.
    pub fn missed(&self, channels: &[ChannelIdx], cursor: EventId, acknowledged: EventId) -> bool {
        let bar = cursor.max(acknowledged);
        channels
            .iter()
            .filter_map(|&c| self.get(c))
            .any(|c| c.history.floor() > bar)
    }

    /// The largest number of retained events newer than `after` in any one of `channels`.
    pub fn lag(&self, channels: &[ChannelIdx], after: EventId) -> usize {
        channels
            .iter()
            .filter_map(|&c| self.get(c))
            .map(|c| c.history.count_after(after))
            .max()
            .unwrap_or(0)
    }

    /// Append to `out` the retained events of `channels` newer than `after`, merged in id order,
    /// each once (an event published to several of them appears once), stopping at `max_frames`
    /// or after passing `max_bytes`.
    pub fn collect_after(
        &self,
        channels: &[ChannelIdx],
        after: EventId,
        max_frames: usize,
        max_bytes: usize,
        mut emit: impl FnMut(&Entry),
    ) -> Collected {
        let mut got = Collected {
            frames: 0,
            bytes: 0,
            more: false,
        };
        // One channel (the common case): a straight walk, no merge state to allocate.
        if let [only] = channels {
            let Some(h) = self.get(*only).map(|c| &c.history) else {
                return got;
            };
            let mut pos = h.seek(after);
            while let Some(entry) = h.get(pos) {
                if got.frames >= max_frames || got.bytes >= max_bytes {
                    got.more = true;
                    break;
                }
                emit(entry);
                got.frames += 1;
                got.bytes += entry.frame.len();
                pos += 1;
            }
            return got;
        }
        let histories: Vec<&History> = channels
            .iter()
            .filter_map(|&c| self.get(c))
            .map(|c| &c.history)
            .collect();
        let mut positions: Vec<usize> = histories.iter().map(|h| h.seek(after)).collect();
        let mut last = after;
        loop {
            // The smallest head among the channels.
            let mut best: Option<(usize, EventId)> = None;
            for (i, h) in histories.iter().enumerate() {
                let Some(entry) = positions.get(i).and_then(|&p| h.get(p)) else {
                    continue;
                };
                if best.is_none_or(|(_, id)| entry.id < id) {
                    best = Some((i, entry.id));
                }
            }
            let Some((_, id)) = best else { break };
            if got.frames >= max_frames || got.bytes >= max_bytes {
                got.more = true;
                break;
            }
            // Take it once, and step past it in every channel that carries it.
            for (i, h) in histories.iter().enumerate() {
                let Some(pos) = positions.get_mut(i) else {
                    continue;
                };
                if let Some(entry) = h.get(*pos) {
                    if entry.id == id {
                        if id > last {
                            emit(entry);
                            got.frames += 1;
                            got.bytes += entry.frame.len();
                            last = id;
                        }
                        *pos += 1;
                    }
                }
            }
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::rc::Rc;

    const R: Retention = Retention {
        max_events: 100,
        max_bytes: 1 << 20,
        max_age_ms: 0,
    };

    fn put(chs: &mut Channels, name: &str, ms: u64) {
        let idx = chs.find_or_create(name);
        let frame = Rc::new(Bytes::from(format!("{name}:{ms}")));
        chs.append(
            idx,
            Entry {
                gzip: None,
                id: EventId::new(ms, 0),
                frame,
                at_ms: ms,
            },
        );
    }

    fn ids(chs: &Channels, names: &[&str], after: u64, max: usize) -> (Vec<u64>, bool) {
        let idxs: Vec<_> = names.iter().filter_map(|n| chs.find(n)).collect();
        let mut out = Vec::new();
        let got = chs.collect_after(&idxs, EventId::new(after, 0), max, usize::MAX, |e| {
            out.push(e.id.ms)
        });
        (out, got.more)
    }

    #[test]
    fn merge_is_in_id_order_and_deduplicates_shared_events() {
        let mut chs = Channels::new(R, EventId::ZERO);
        put(&mut chs, "a", 1);
        put(&mut chs, "b", 2);
        put(&mut chs, "a", 3);
        put(&mut chs, "b", 3); // one event on both channels
        put(&mut chs, "b", 5);
        assert_eq!(ids(&chs, &["a", "b"], 0, 100), (vec![1, 2, 3, 5], false));
        assert_eq!(ids(&chs, &["a", "b"], 2, 100), (vec![3, 5], false));
        assert_eq!(ids(&chs, &["a", "b"], 0, 2), (vec![1, 2], true));
        // The single-channel path gives what the merge would.
        assert_eq!(ids(&chs, &["b"], 0, 100), (vec![2, 3, 5], false));
        assert_eq!(ids(&chs, &["b"], 2, 100), (vec![3, 5], false));
        assert_eq!(ids(&chs, &["b"], 0, 2), (vec![2, 3], true));
        assert_eq!(ids(&chs, &["b"], 5, 100), (vec![], false));
    }

    #[test]
    fn collected_idle_channels_keep_their_floor_for_new_ones() {
        let retention = Retention {
            max_age_ms: 10,
            ..R
        };
        let mut chs = Channels::new(retention, EventId::new(1, 0));
        put(&mut chs, "a", 100);
        chs.sweep(1000);
        assert!(chs.is_empty());
        let b = chs.find_or_create("b");
        assert_eq!(chs.floor_of(&[b]), EventId::new(100, 0));
    }

    #[test]
    fn missed_and_lag() {
        let retention = Retention { max_events: 2, ..R };
        let mut chs = Channels::new(retention, EventId::ZERO);
        for ms in 1..=4 {
            put(&mut chs, "a", ms);
        }
        let a = chs.find("a").into_iter().collect::<Vec<_>>();
        assert!(chs.missed(&a, EventId::new(1, 0), EventId::ZERO));
        assert!(!chs.missed(&a, EventId::new(2, 0), EventId::ZERO));
        assert!(!chs.missed(&a, EventId::new(1, 0), EventId::new(2, 0)));
        assert_eq!(chs.lag(&a, EventId::new(2, 0)), 2);
    }
}
