//! Who writes to a subscriber's socket. What is due — every frame after the subscriber's
//! cursor (merged by id across its channels), due control frames and heartbeats — is gathered
//! into one list of shared buffers and sent at once, without waiting (`MSG_DONTWAIT`): for a
//! burst, every subscriber's send goes to the kernel in one submit of the worker's fan-out
//! ring ([`sys::SendRing`]; one `send`/`sendmsg` per socket on the epoll driver). The common
//! case, a socket with room, costs no task and no allocation. Only when the socket takes less than everything does the stream leave its
//! slot for a writer task, which finishes the rest with `writev`s on the runtime, repeats until
//! nothing is due, and then gives the stream back — or, when the stream must end (shutdown,
//! token expiry, an error, a hang-up: [`Control::Close`]), drops it and removes the slot.
//! That task's end and the fast path's end are the writer's exits.

use std::rc::Rc;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use super::slots::{Control, SlotKey, Writer};
use super::{State, Worker};
use crate::channel::resume::ResetReason;
use crate::sse::encode::{self, Frame};
use crate::sse::gzip;
use crate::sys::{self, FrameVec};

/// Most frames in one write (well under IOV_MAX).
const MAX_FRAMES_PER_WRITE: usize = 256;
/// Stop adding frames to one write after this many bytes.
const MAX_BYTES_PER_WRITE: usize = 256 * 1024;
/// Emptied frame lists kept for the next fan-out.
const MAX_SPARE_LISTS: usize = 4096;

/// What a subscriber's writer should do next.
enum Due {
    Nothing,
    /// `batch` holds what is due; `last`: the stream ends after it; `more`: more frames are
    /// due than one write carries.
    Write {
        last: bool,
        more: bool,
    },
    Close,
}

/// How a writer task ends.
enum End {
    /// Nothing more is due: the stream goes back to its slot.
    Idle,
    /// The stream is over: drop it and remove the slot.
    Close,
}

impl Worker {
    /// Send what is due to `key` now, unless its writer task is running (it will see the new
    /// work).
    pub(super) fn start_writer(self: &Rc<Self>, key: SlotKey) {
        self.start_writers([key]);
    }

    /// [`Self::start_writer`] for many subscribers, with one reading of the clock: what is
    /// due to each is gathered first, then every socket is sent its share in one submit of the
    /// worker's fan-out ring ([`sys::SendRing`]; a system call per socket without one).
    pub(super) fn start_writers(self: &Rc<Self>, keys: impl IntoIterator<Item = SlotKey>) {
        let now = self.now_secs();
        let mut keys: Vec<SlotKey> = keys.into_iter().collect();
        let mut out = self.outgoing.take();
        // Per item: its subscriber, whether the stream ends after it, whether more is due,
        // and its bytes.
        let mut plan: Vec<(SlotKey, bool, bool, u64)> = Vec::new();
        while !keys.is_empty() {
            out.clear();
            plan.clear();
            for key in keys.drain(..) {
                let fd = {
                    let st = self.state.borrow();
                    match st.subscribers.get(key) {
                        Some(sub) if matches!(sub.writer, Writer::Idle(_)) => sub.fd,
                        _ => continue,
                    }
                };
                let mut list = self.spare_lists.borrow_mut().pop().unwrap_or_default();
                list.clear();
                match self.collect(key, &mut list) {
                    Due::Nothing => self.spare_list(list),
                    Due::Close => {
                        self.spare_list(list);
                        self.remove_subscriber(key);
                    }
                    Due::Write { last, more } => {
                        let total = list.remaining() as u64;
                        out.push(sys::Outgoing {
                            fd,
                            list,
                            result: None,
                        });
                        plan.push((key, last, more, total));
                    }
                }
            }
            if let Some(ring) = self.ring.borrow_mut().as_mut() {
                ring.send_all(&mut out);
            }
            for (item, &(key, last, more, total)) in out.iter_mut().zip(plan.iter()) {
                let result = match item.result.take() {
                    Some(r) => r,
                    None => item.list.send_now(item.fd),
                };
                let list = std::mem::take(&mut item.list);
                if self.after_send(key, list, total, result, last, now) == Some(true) && more {
                    keys.push(key);
                }
            }
        }
        out.clear();
        self.outgoing.replace(out);
    }

    /// What follows one send of `list` to `key`: done, handed to a writer task (the socket
    /// took less), or the end of the stream. `Some(true)`: everything went, the stream is idle.
    fn after_send(
        self: &Rc<Self>,
        key: SlotKey,
        list: FrameVec,
        total: u64,
        result: std::io::Result<usize>,
        last: bool,
        now: u32,
    ) -> Option<bool> {
        if result.is_err() {
            self.spare_list(list);
            self.remove_subscriber(key);
            return None;
        }
        if !list.is_empty() {
            // The socket is full: the rest waits in a writer task.
            let mut st = self.state.borrow_mut();
            let sub = st.subscribers.get_mut(key)?;
            let Writer::Idle(stream) = std::mem::replace(&mut sub.writer, Writer::Busy) else {
                return None;
            };
            sub.last_write_secs = now;
            drop(st);
            monoio::spawn(Rc::clone(self).write_loop(key, stream, list, last));
            return Some(false);
        }
        self.spare_list(list);
        self.wrote(key, total, now);
        if last {
            self.remove_subscriber(key);
            return None;
        }
        Some(true)
    }

    /// Keep an emptied frame list for the next fan-out (up to a bound).
    fn spare_list(&self, mut list: FrameVec) {
        list.clear();
        let mut spare = self.spare_lists.borrow_mut();
        if spare.len() < MAX_SPARE_LISTS {
            spare.push(list);
        }
    }

    /// Count a completed write and note when it happened (heartbeats wait for quiet).
    fn wrote(&self, key: SlotKey, bytes: u64, now: u32) {
        self.metrics.bytes_written_total.add(bytes);
        self.metrics.writes_total.inc();
        if let Some(sub) = self.state.borrow_mut().subscribers.get_mut(key) {
            sub.last_write_secs = now;
        }
    }

    /// The slow path: finish `batch` (what the socket did not take), then write everything
    /// else due with the runtime until nothing is, and end (see [`End`]).
    async fn write_loop(
        self: Rc<Self>,
        key: SlotKey,
        mut stream: TcpStream,
        mut batch: FrameVec,
        mut last: bool,
    ) {
        let end = loop {
            let written = batch.remaining() as u64;
            while !batch.is_empty() {
                let (res, b) = stream.writev(batch).await;
                batch = b;
                match res {
                    Ok(n) if n > 0 => batch.advance(n),
                    _ => break,
                }
            }
            if !batch.is_empty() {
                break End::Close;
            }
            self.wrote(key, written, self.now_secs());
            if last {
                break End::Close;
            }
            batch.clear();
            last = match self.collect(key, &mut batch) {
                Due::Nothing => break End::Idle,
                Due::Close => break End::Close,
                Due::Write { last, .. } => last,
            };
        };
        self.writer_done(key, stream, end);
    }

    /// The writer task's exit: give the stream back, or drop it with the slot.
    fn writer_done(&self, key: SlotKey, stream: TcpStream, end: End) {
        {
            let mut st = self.state.borrow_mut();
            if let Some(sub) = st.subscribers.get_mut(key) {
                if matches!(end, End::Idle) && !sub.pending.has(Control::Close) {
                    sub.writer = Writer::Idle(stream);
                    return;
                }
            }
        }
        self.remove_subscriber(key);
        drop(stream);
    }

    /// Fill `batch` with what is due for `key`: events after its cursor (merged across its
    /// channels), else a heartbeat; the shutdown event when draining.
    fn collect(&self, key: SlotKey, batch: &mut FrameVec) -> Due {
        let mut st = self.state.borrow_mut();
        let State {
            subscribers,
            channels,
            ..
        } = &mut *st;
        let Some(sub) = subscribers.get_mut(key) else {
            return Due::Close;
        };
        if sub.pending.has(Control::Close) {
            return Due::Close;
        }
        let gzip_stream = sub.gzip;
        // An expired token ends the stream: nothing more, the client must come back with a new one.
        let own = |frame: Frame| {
            if gzip_stream {
                gzip::stored(frame.as_bytes())
            } else {
                frame.into_bytes()
            }
        };
        if sub.pending.take(Control::TokenExpired) {
            batch.push_owned(own(encode::token_expired()));
            return Due::Write {
                last: true,
                more: false,
            };
        }
        if sub.pending.take(Control::LogLost) {
            let at = sub.cursor.to_string();
            batch.push_owned(own(encode::reset(ResetReason::LogLost.as_str(), &at)));
        }
        // Evicted before this connection sent them: it must resume (and be told of the gap).
        if channels.missed(&sub.channels, sub.cursor, sub.acknowledged_floor) {
            self.metrics.slow_consumer_disconnects_total.inc();
            return Due::Close;
        }
        let mut last_id = sub.cursor;
        let gzip = sub.gzip;
        let got = channels.collect_after(
            &sub.channels,
            sub.cursor,
            MAX_FRAMES_PER_WRITE,
            MAX_BYTES_PER_WRITE,
            |entry| {
                match (gzip, &entry.gzip) {
                    (false, _) => batch.push_shared(Rc::clone(&entry.frame)),
                    (true, Some(segment)) => batch.push_shared(Rc::clone(segment)),
                    // Framed before gzip was available for it (cannot happen with --gzip on
                    // from the start): the frame as stored deflate blocks.
                    (true, None) => batch.push_owned(gzip::stored(&entry.frame)),
                }
                last_id = entry.id;
            },
        );
        sub.cursor = last_id;
        if got.frames > 0 {
            self.metrics.deliveries_total.add(got.frames as u64);
            sub.pending.take(Control::Heartbeat);
        }
        if !got.more && sub.pending.take(Control::Shutdown) {
            let retry_ms = self.limits().retry_ms;
            let spread = retry_ms.max(1000);
            let jitter = (u64::from(key.index).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % spread;
            batch.push_owned(own(encode::shutdown(retry_ms + jitter)));
            return Due::Write {
                last: true,
                more: false,
            };
        }
        if got.frames == 0 && sub.pending.take(Control::Heartbeat) {
            self.metrics.heartbeats_total.inc();
            batch.push_owned(own(Frame::heartbeat()));
        }
        if batch.is_empty() {
            Due::Nothing
        } else {
            Due::Write {
                last: false,
                more: got.more,
            }
        }
    }

    /// End a subscriber: now if its stream is in its slot, else as soon as its writer lets go
    /// (the socket is shut down so that a write in flight fails fast).
    pub(super) fn close_subscriber(&self, key: SlotKey) {
        {
            let mut st = self.state.borrow_mut();
            let Some(sub) = st.subscribers.get_mut(key) else {
                return;
            };
            if let Writer::Busy = sub.writer {
                // Once: shutting the socket down makes its writer fail fast, and leaving the
                // epoll set now keeps the shutdown itself from being reported as a hang-up.
                if !sub.pending.has(Control::Close) {
                    sub.pending.set(Control::Close);
                    self.epoll.remove(sub.fd);
                    sys::shutdown(sub.fd, true, true);
                }
                return;
            }
        }
        self.remove_subscriber(key);
    }

    /// Remove the slot and everything that refers to it; its stream (if the slot holds it) is
    /// closed with it, and a writer task that holds it closes it as it returns.
    fn remove_subscriber(&self, key: SlotKey) {
        let mut st = self.state.borrow_mut();
        let Some(sub) = st.subscribers.remove(key) else {
            return;
        };
        for c in sub.channels.iter() {
            if let Some(ch) = st.channels.get_mut(*c) {
                if let Some(pos) = ch.subscribers.iter().position(|&s| s == key.index) {
                    ch.subscribers.swap_remove(pos);
                }
            }
        }
        drop(st);
        // Closing the socket takes it out of the epoll set (nothing else holds the file), so
        // there is no EPOLL_CTL_DEL here: one system call less per stream. Until the close has
        // run, a report for it carries this slot's old token and is ignored.
        drop(sub.writer);
        self.metrics.subscribers.dec();
        self.connection_closed(sub.peer_key);
    }
}
