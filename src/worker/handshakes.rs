//! Connections still reading a request head (or idle publishers between requests), so that
//! the sweep can time them out: it raises the entry's flag and shuts the socket's read side,
//! which ends the pending read; the connection task then answers 408 or closes.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::rc::Rc;

#[derive(Debug, Default)]
pub(super) struct Handshakes {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct Entry {
    /// The connection's socket; valid while the entry exists (its task holds the stream and
    /// removes the entry before it can close it).
    pub(super) fd: RawFd,
    pub(super) since_ms: u64,
    pub(super) timed_out: Rc<Cell<bool>>,
    /// Between two requests of a keep-alive publisher (the keep-alive timeout applies).
    pub(super) idle_keepalive: bool,
}

impl Handshakes {
    /// Register a connection that starts reading a request; returns the id for [`Self::end`].
    pub(super) fn begin(&mut self, entry: Entry) -> usize {
        match self.free.pop() {
            Some(id) => {
                if let Some(e) = self.entries.get_mut(id) {
                    *e = Some(entry);
                }
                id
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        }
    }

    pub(super) fn end(&mut self, id: usize) {
        if let Some(e) = self.entries.get_mut(id) {
            if e.take().is_some() {
                self.free.push(id);
            }
        }
    }

    pub(super) fn open(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().flatten()
    }
}
