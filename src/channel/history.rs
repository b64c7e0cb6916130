//! A channel's replay history on one worker: a ring of `(id, frame)` bounded by count, bytes and
//! age, and the floor: the newest id that was evicted, below which the channel cannot be replayed.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use crate::sse::id::EventId;

/// How many of the newest entries `seek` tries one by one before it searches.
const NEAR_END: usize = 4;

/// Retention limits of one channel's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_events: usize,
    pub max_bytes: usize,
    /// 0 = no age limit.
    pub max_age_ms: u64,
}

/// One retained event.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: EventId,
    pub frame: Rc<Bytes>,
    /// The frame as a gzip segment (`--gzip`), shared like the frame.
    pub gzip: Option<Rc<Bytes>>,
    pub at_ms: u64,
}

/// The retained events of one channel, oldest first, ids strictly increasing.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Every id at or below this may have been evicted: a resume from below it is not exact.
    floor: EventId,
}

impl History {
    pub fn new(floor: EventId) -> History {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            floor,
        }
    }

    pub fn floor(&self) -> EventId {
        self.floor
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn newest(&self) -> Option<EventId> {
        self.entries.back().map(|e| e.id)
    }

    /// Append an event (ids arrive in increasing order; an older or repeated id is ignored) and
    /// evict what the retention no longer allows.
    pub fn push(&mut self, entry: Entry, retention: &Retention) {
        if self.newest().is_some_and(|newest| entry.id <= newest) || entry.id <= self.floor {
            return;
        }
        self.bytes += entry.frame.len();
        self.entries.push_back(entry);
        while self.entries.len() > retention.max_events || self.bytes > retention.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Evict events older than the age limit; returns how many went.
    pub fn expire(&mut self, now_ms: u64, retention: &Retention) -> usize {
        if retention.max_age_ms == 0 {
            return 0;
        }
        let mut evicted = 0;
        while self
            .entries
            .front()
            .is_some_and(|e| now_ms.saturating_sub(e.at_ms) > retention.max_age_ms)
        {
            self.evict_oldest();
            evicted += 1;
        }
        evicted
    }

    fn evict_oldest(&mut self) -> bool {
        match self.entries.pop_front() {
            Some(old) => {
                self.bytes -= old.frame.len();
                self.floor = self.floor.max(old.id);
                true
            }
            None => false,
        }
    }

    /// Index of the first entry with an id greater than `after`.
    pub fn seek(&self, after: EventId) -> usize {
        // A live subscriber is at most a few events behind: look from the newest end first.
        let n = self.entries.len();
        for back in 1..=NEAR_END.min(n) {
            let i = n - back;
            if self.entries.get(i).is_some_and(|e| e.id <= after) {
                return i + 1;
            }
        }
        self.entries.partition_point(|e| e.id <= after)
    }

    /// How many retained events are newer than `after`.
    pub fn count_after(&self, after: EventId) -> usize {
        self.entries.len() - self.seek(after)
    }

    pub fn get(&self, index: usize) -> Option<&Entry> {
        self.entries.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: u64, len: usize) -> Entry {
        Entry {
            gzip: None,
            id: EventId::new(ms, 0),
            frame: Rc::new(Bytes::from(vec![b'x'; len])),
            at_ms: ms,
        }
    }

    const ROOMY: Retention = Retention {
        max_events: 1000,
        max_bytes: 1 << 20,
        max_age_ms: 0,
    };

    #[test]
    fn count_limit_evicts_oldest_and_raises_floor() {
        let r = Retention {
            max_events: 3,
            ..ROOMY
        };
        let mut h = History::new(EventId::ZERO);
        for ms in 1..=5 {
            h.push(entry(ms, 10), &r);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.floor(), EventId::new(2, 0));
        assert_eq!(h.get(0).map(|e| e.id), Some(EventId::new(3, 0)));
        assert_eq!(h.bytes(), 30);
    }

    #[test]
    fn byte_limit_evicts_until_it_fits() {
        let r = Retention {
            max_bytes: 25,
            ..ROOMY
        };
        let mut h = History::new(EventId::ZERO);
        for ms in 1..=4 {
            h.push(entry(ms, 10), &r);
        }
        assert_eq!(h.len(), 2);
        assert_eq!(h.floor(), EventId::new(2, 0));
    }

    #[test]
    fn an_event_larger_than_the_byte_limit_is_not_retained() {
        let r = Retention {
            max_bytes: 5,
            ..ROOMY
        };
        let mut h = History::new(EventId::ZERO);
        h.push(entry(7, 10), &r);
        assert!(h.is_empty());
        assert_eq!(h.floor(), EventId::new(7, 0));
    }

    #[test]
    fn age_limit_expires_old_events() {
        let r = Retention {
            max_age_ms: 100,
            ..ROOMY
        };
        let mut h = History::new(EventId::ZERO);
        h.push(entry(1000, 1), &r);
        h.push(entry(1050, 1), &r);
        h.push(entry(1200, 1), &r);
        assert_eq!(h.expire(1160, &r), 2);
        assert_eq!(h.len(), 1);
        assert_eq!(h.floor(), EventId::new(1050, 0));
    }

    #[test]
    fn seek_and_count_after() {
        let mut h = History::new(EventId::ZERO);
        for ms in [10, 20, 30] {
            h.push(entry(ms, 1), &ROOMY);
        }
        assert_eq!(h.seek(EventId::ZERO), 0);
        assert_eq!(h.seek(EventId::new(20, 0)), 2);
        assert_eq!(h.seek(EventId::new(25, 0)), 2);
        assert_eq!(h.count_after(EventId::new(10, 0)), 2);
        assert_eq!(h.count_after(EventId::new(30, 0)), 0);
    }

    #[test]
    fn seek_agrees_with_a_search_at_every_position() {
        let mut h = History::new(EventId::ZERO);
        for ms in (10..=200).step_by(10) {
            h.push(entry(ms, 1), &ROOMY);
        }
        for after in 0..=210 {
            let id = EventId::new(after, 0);
            let want = h.entries.partition_point(|e| e.id <= id);
            assert_eq!(h.seek(id), want, "after {after}");
        }
        let empty = History::new(EventId::ZERO);
        assert_eq!(empty.seek(EventId::new(5, 0)), 0);
    }

    #[test]
    fn out_of_order_or_repeated_ids_are_ignored() {
        let mut h = History::new(EventId::ZERO);
        h.push(entry(10, 1), &ROOMY);
        h.push(entry(10, 1), &ROOMY);
        h.push(entry(5, 1), &ROOMY);
        assert_eq!(h.len(), 1);
    }
}
