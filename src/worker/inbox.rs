//! The bus loop: sleep on this worker's doorbell until the bus has something, then take it —
//! on the worker hosting the sequencer, sequence the other workers' requests first — record
//! each sequenced event in the history of every channel it names, and, once everything taken
//! is recorded, start the writers of the local subscribers of those channels (so a burst goes
//! out as one write per subscriber).

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use monoio::io::AsyncReadRent;

use super::slots::{Control, SlotKey, Writer};
use super::{State, Worker};
use crate::bus::{Delivery, Sequenced};
use crate::channel::{ChannelIdx, Entry};
use crate::sse::id::{unix_ms_now, EventId};

impl Worker {
    pub(super) async fn bus_loop(self: Rc<Self>, mut bell: monoio::net::UnixStream) {
        let mut buf = vec![0u8; 64];
        loop {
            self.pump_bus();
            if self.drain_requested() {
                self.begin_drain();
            }
            {
                let bus = self.bus.borrow();
                let Some(door) = bus.doorbell() else { return };
                // Arm, then look again: a producer that pushed before the arm is seen now, one
                // that pushes after it rings.
                door.arm();
                if bus.has_input() || self.drain_requested() {
                    door.disarm();
                    continue;
                }
            }
            let (res, b) = bell.read(buf).await;
            buf = b;
            if let Some(door) = self.bus.borrow().doorbell() {
                door.disarm();
            }
            if matches!(res, Ok(0) | Err(_)) {
                return;
            }
        }
    }

    /// The server asked for a drain that this worker has not begun.
    fn drain_requested(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst) && !self.state.borrow().draining
    }

    /// Take everything waiting on the bus, apply it, and write to the subscribers it concerns.
    pub(super) fn pump_bus(self: &Rc<Self>) {
        let mut touched = self.take_in();
        for idx in self.wake_later.take() {
            if !touched.contains(&idx) {
                touched.push(idx);
            }
        }
        if !touched.is_empty() {
            self.wake(&touched);
        }
    }

    /// [`Self::pump_bus`] for a publisher on the worker hosting the sequencer: its events are
    /// recorded now, and the subscribers are written to by a task that runs after the
    /// publisher's answer is out (the answer does not wait for the fan-out).
    pub(super) fn pump_bus_then_write(self: &Rc<Self>) {
        let touched = self.take_in();
        if touched.is_empty() {
            return;
        }
        let mut later = self.wake_later.take();
        let first = later.is_empty();
        for idx in touched {
            if !later.contains(&idx) {
                later.push(idx);
            }
        }
        self.wake_later.replace(later);
        if first {
            let worker = Rc::clone(self);
            monoio::spawn(async move { worker.pump_bus() });
        }
    }

    /// Take everything waiting on the bus and record it; the channels it touched.
    fn take_in(self: &Rc<Self>) -> Vec<ChannelIdx> {
        let mut deliveries = Vec::new();
        self.bus
            .borrow_mut()
            .drain(unix_ms_now(), |d| deliveries.push(d));
        let mut touched = Vec::new();
        for delivery in deliveries {
            match delivery {
                Delivery::Event(seq) => self.apply(&seq, &mut touched),
                Delivery::LogLost { floor } => self.log_lost(floor),
            }
        }
        touched
    }

    /// Start the writers of the idle local subscribers of `touched` channels.
    fn wake(self: &Rc<Self>, touched: &[ChannelIdx]) {
        let mut keys = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            let State {
                subscribers,
                channels,
                ..
            } = &mut *st;
            for &idx in touched {
                let Some(ch) = channels.get(idx) else {
                    continue;
                };
                for &index in &ch.subscribers {
                    if let Some((key, sub)) = subscribers.at_mut(index) {
                        if matches!(sub.writer, Writer::Idle(_)) {
                            keys.push(key);
                        }
                    }
                }
            }
        }
        self.start_writers(keys);
    }

    /// The log was lost: ids up to `floor` belong to a log that is gone (a resume from there
    /// gets `reset: previous-run`), and every open stream is told with `event: reset`, since
    /// events appended to the lost log may never have reached this instance.
    fn log_lost(self: &Rc<Self>, floor: EventId) {
        let keys: Vec<SlotKey> = {
            let mut st = self.state.borrow_mut();
            st.boot = st.boot.max(floor);
            st.newest = st.newest.max(floor);
            let mut keys = Vec::new();
            st.subscribers.for_each_mut(|key, sub| {
                sub.pending.set(Control::LogLost);
                keys.push(key);
            });
            keys
        };
        self.metrics.resets_total.add(keys.len() as u64);
        self.start_writers(keys);
    }

    /// Record a sequenced event in every channel it names; note those channels in `touched`
    /// (their subscribers are woken once the whole drain is recorded).
    fn apply(&self, seq: &Arc<Sequenced>, touched: &mut Vec<ChannelIdx>) {
        // One handle per worker; everything below clones this core-local Rc.
        let frame = Rc::new(seq.frame.clone());
        let gzip = seq.gzip.clone().map(Rc::new);
        let mut st = self.state.borrow_mut();
        let State {
            channels,
            newest,
            draining,
            ..
        } = &mut *st;
        *newest = (*newest).max(seq.id);
        for name in seq.channels.iter() {
            let idx = channels.find_or_create(name);
            channels.append(
                idx,
                Entry {
                    id: seq.id,
                    frame: Rc::clone(&frame),
                    gzip: gzip.clone(),
                    at_ms: seq.at_ms,
                },
            );
            if !*draining && !touched.contains(&idx) {
                touched.push(idx);
            }
        }
    }
}
