//! The drain (SIGTERM/SIGINT): stop accepting, tell every subscriber `event: shutdown` with a
//! jittered `retry:` (sent by its writer after what is due), end idle publishers and unfinished
//! handshakes, and wait — up to `--drain-timeout` — for every connection to close.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::slots::{Control, SlotKey};
use super::Worker;
use crate::sys;

impl Worker {
    pub(super) fn begin_drain(self: &Rc<Self>) {
        let keys: Vec<SlotKey> = {
            let mut st = self.state.borrow_mut();
            st.draining = true;
            st.subscribers.keys().collect()
        };
        self.drain_signal.raise();
        for &key in &keys {
            if let Some(sub) = self.state.borrow_mut().subscribers.get_mut(key) {
                sub.pending.set(Control::Shutdown);
            }
        }
        self.start_writers(keys);
        // Idle publishers and unfinished handshakes: end their pending reads.
        let st = self.state.borrow();
        for e in st.handshakes.iter() {
            sys::shutdown(e.fd, true, false);
        }
    }

    pub(super) fn is_draining(&self) -> bool {
        self.state.borrow().draining
    }

    /// After the accept loop stops: wait (up to the drain timeout) for every connection to close,
    /// then force-close what is left.
    pub(super) async fn finish_drain(self: &Rc<Self>) {
        let deadline = Instant::now() + self.limits().drain_timeout;
        loop {
            let (streams, others) = {
                let st = self.state.borrow();
                (st.subscribers.len(), st.handshakes.open())
            };
            if streams + others == 0 {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    worker = self.index,
                    streams,
                    others,
                    "worker {}: drain timeout with {streams} streams and {others} other connections open; closing them",
                    self.index
                );
                break;
            }
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        let keys: Vec<SlotKey> = self.state.borrow().subscribers.keys().collect();
        for key in keys {
            self.close_subscriber(key);
        }
    }
}

/// A worker-local, level-triggered event: once raised, every wait completes. A wait that is
/// dropped unfinished (the losing branch of a `select!`) takes its waker back out.
#[derive(Default)]
pub(super) struct Signal {
    raised: Cell<bool>,
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Signal {
    pub(super) fn raise(&self) {
        self.raised.set(true);
        let wakers: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    pub(super) fn wait(&self) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            slot: None,
        }
    }
}

pub(super) struct SignalWait<'a> {
    signal: &'a Signal,
    slot: Option<usize>,
}

impl Future for SignalWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.raised.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.signal.waiters.borrow_mut();
        match self.slot {
            Some(i) => {
                if let Some(entry) = waiters.get_mut(i) {
                    *entry = Some(cx.waker().clone());
                }
            }
            None => {
                let i = match self.signal.free.borrow_mut().pop() {
                    Some(i) => i,
                    None => {
                        waiters.push(None);
                        waiters.len() - 1
                    }
                };
                if let Some(entry) = waiters.get_mut(i) {
                    *entry = Some(cx.waker().clone());
                }
                drop(waiters);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for SignalWait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            if let Some(entry) = self.signal.waiters.borrow_mut().get_mut(i) {
                *entry = None;
            }
            self.signal.free.borrow_mut().push(i);
        }
    }
}
