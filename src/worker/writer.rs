//! Who writes to a subscriber's socket: its writer task, which exists only while something is
//! due. It gathers every frame after the subscriber's cursor (merged by id across its
//! channels), due control frames and heartbeats into one `writev` of shared buffers, repeats
//! until nothing is due, and then gives the stream back to the slot — or, when the stream must
//! end (shutdown, token expiry, an error, a hang-up: [`Control::Close`]), drops it and removes
//! the slot. That is its one exit.

use std::rc::Rc;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use super::slots::{Control, SlotKey, Writer};
use super::{State, Worker};
use crate::channel::resume::ResetReason;
use crate::sse::encode::{self, Frame};
use crate::sse::gzip;
use crate::sys::{self, FrameVec};

/// Most frames in one writev (well under IOV_MAX).
const MAX_FRAMES_PER_WRITE: usize = 256;
/// Stop adding frames to one writev after this many bytes.
const MAX_BYTES_PER_WRITE: usize = 256 * 1024;

/// What a subscriber's writer should do next.
enum Due {
    Nothing,
    Write { last: bool },
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
    /// Start a writer for `key` unless one is running (it will see the new work).
    pub(super) fn start_writer(self: &Rc<Self>, key: SlotKey) {
        let mut st = self.state.borrow_mut();
        let now = self.now_secs();
        let Some(sub) = st.subscribers.get_mut(key) else {
            return;
        };
        let Writer::Idle(stream) = std::mem::replace(&mut sub.writer, Writer::Busy) else {
            return;
        };
        sub.last_write_secs = now;
        drop(st);
        monoio::spawn(Rc::clone(self).write_loop(key, stream));
    }

    /// Write everything due to one subscriber, then end (see [`End`]).
    async fn write_loop(self: Rc<Self>, key: SlotKey, mut stream: TcpStream) {
        let mut batch = FrameVec::new();
        let end = loop {
            batch.clear();
            let last = match self.collect(key, &mut batch) {
                Due::Nothing => break End::Idle,
                Due::Close => break End::Close,
                Due::Write { last } => last,
            };
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
            self.metrics.bytes_written_total.add(written);
            self.metrics.writes_total.inc();
            let now = self.now_secs();
            if let Some(sub) = self.state.borrow_mut().subscribers.get_mut(key) {
                sub.last_write_secs = now;
            }
            if last {
                break End::Close;
            }
        };
        self.writer_done(key, stream, end);
    }

    /// The writer's one exit: give the stream back, or drop it with the slot.
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
            return Due::Write { last: true };
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
            return Due::Write { last: true };
        }
        if got.frames == 0 && sub.pending.take(Control::Heartbeat) {
            self.metrics.heartbeats_total.inc();
            batch.push_owned(own(Frame::heartbeat()));
        }
        if batch.is_empty() {
            Due::Nothing
        } else {
            Due::Write { last: false }
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
    /// closed with it.
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
        self.epoll.remove(sub.fd);
        drop(sub.writer);
        self.metrics.subscribers.dec();
        self.connection_closed(sub.peer_key);
    }
}
