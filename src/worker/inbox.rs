//! The bus loop: sleep on this worker's doorbell until the bus has something, then take it —
//! on the worker hosting the sequencer, sequence the other workers' requests first — record
//! each sequenced event in the history of every channel it names, and start the writers of
//! the local subscribers of those channels.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use monoio::io::AsyncReadRent;

use super::slots::Writer;
use super::{State, Worker};
use crate::bus::Sequenced;
use crate::channel::Entry;
use crate::sse::id::unix_ms_now;

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

    /// Take everything waiting on the bus and apply it.
    pub(super) fn pump_bus(self: &Rc<Self>) {
        let mut events = Vec::new();
        self.bus
            .borrow_mut()
            .drain(unix_ms_now(), |seq| events.push(Arc::clone(seq)));
        for seq in &events {
            self.apply(seq);
        }
    }

    /// Record a sequenced event in every channel it names and wake the subscribers that follow
    /// those channels here.
    fn apply(self: &Rc<Self>, seq: &Arc<Sequenced>) {
        // One handle per worker; everything below clones this core-local Rc.
        let frame = Rc::new(seq.frame.clone());
        let mut to_start = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            let State {
                subscribers,
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
                        at_ms: seq.at_ms,
                    },
                );
                if *draining {
                    continue;
                }
                let Some(ch) = channels.get(idx) else {
                    continue;
                };
                for &index in &ch.subscribers {
                    if let Some((key, sub)) = subscribers.at_mut(index) {
                        if matches!(sub.writer, Writer::Idle(_)) {
                            to_start.push(key);
                        }
                    }
                }
            }
        }
        for key in to_start {
            self.start_writer(key);
        }
    }
}
