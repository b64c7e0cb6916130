//! One HTTP connection's I/O while it is reading requests: the stream, its read buffer, the
//! parsed header spans and the timeout flag the sweep raises. Handlers get a `&mut Conn`
//! instead of a bundle of arguments.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::accept::{Peer, Side};
use crate::http::parse::{find_header, BodyKind, Head, HeadLimits, Header, Parsed};
use crate::http::response::CONTINUE;
use crate::http::{check_length, parse_head, ChunkedDecoder, HttpError};
use crate::sys;

/// Why reading a request stopped.
#[derive(Debug)]
pub(super) enum ReadFail {
    /// The peer left (or a timeout ended a request that had not begun): close quietly.
    Gone,
    /// Answer with this error, then close.
    Refuse(HttpError),
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    /// Bytes read and not yet consumed: the current request's head (and body), and anything
    /// pipelined after it.
    pub(super) buf: Vec<u8>,
    /// The current head's header spans into `buf`.
    pub(super) headers: Vec<Header>,
    /// Raised by the sweep when the current request ran out of time; the sweep also shuts the
    /// socket's read side, so the pending read ends.
    pub(super) timed_out: Rc<Cell<bool>>,
    /// No request has been read on this connection yet.
    pub(super) first: bool,
    /// The last answer was an early refusal: close with [`Conn::linger_close`], so that the
    /// answer is not lost to a reset while the client is still sending.
    pub(super) linger: bool,
    /// The client, as counted per address (see [`Peer`]).
    pub(super) peer: Peer,
    /// The listener it came in on.
    pub(super) side: Side,
}

/// Lingering close (as nginx does it): after an early answer, read and discard what the client
/// still sends, up to this many bytes…
const LINGER_MAX_BYTES: usize = 8 * 1024 * 1024;
/// …or for this long, before closing.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

impl Conn {
    pub(super) fn new(stream: TcpStream, peer: Peer, side: Side) -> Conn {
        Conn {
            peer,
            side,
            stream,
            buf: Vec::with_capacity(1024),
            headers: Vec::new(),
            timed_out: Rc::new(Cell::new(false)),
            first: true,
            linger: false,
        }
    }

    /// Close after an early answer without losing it: send our FIN, then take what the client
    /// still sends (its request body, typically) until it closes or a bound passes. Closing a
    /// socket with unread input sends RST, which can destroy the answer before it is read.
    pub(super) async fn linger_close(mut self) {
        crate::sys::shutdown(std::os::fd::AsRawFd::as_raw_fd(&self.stream), false, true);
        let drain = async {
            let mut taken = 0;
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            buf.reserve(16 * 1024);
            while taken < LINGER_MAX_BYTES {
                let (res, b) = self.stream.read(buf).await;
                buf = b;
                match res {
                    Ok(n) if n > 0 => {
                        taken += n;
                        buf.clear();
                    }
                    _ => break,
                }
            }
        };
        let _ = monoio::time::timeout(LINGER_TIME, drain).await;
    }

    /// The value of header `name` in the current head.
    pub(super) fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.buf, &self.headers, name)
    }

    /// Every value of header `name` in the current head, in order.
    pub(super) fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|h| h.name.get(&self.buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(&self.buf))
            .collect()
    }

    /// Drop the first `n` bytes of the buffer (a request that was answered).
    pub(super) fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Write `bytes`; false if the peer is gone. What the socket takes at once is written
    /// without a trip through the runtime (an answer almost always fits).
    pub(super) async fn send(&mut self, mut bytes: Vec<u8>) -> bool {
        match sys::send_now(self.stream.as_raw_fd(), &bytes) {
            Ok(n) if n == bytes.len() => return true,
            Ok(n) => {
                bytes.drain(..n);
            }
            Err(_) => return false,
        }
        self.stream.write_all(bytes).await.0.is_ok()
    }

    /// Read more bytes onto the end of `buf`; Ok(0) means end of stream.
    async fn read_more(&mut self, want: usize) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(want.clamp(1024, 64 * 1024));
        }
        // A new connection's request has usually arrived with it (the listener defers accept
        // until it does): take it without a trip through the runtime.
        if self.first && self.buf.is_empty() {
            if let Some(n) = sys::recv_now(self.stream.as_raw_fd(), &mut self.buf)? {
                return Ok(n);
            }
        }
        let mut owned = std::mem::take(&mut self.buf);
        let len = owned.len();
        let end = owned.bytes_total();
        let (res, slice) = self.stream.read(owned.slice_mut(len..end)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Read until a whole request head is in the buffer.
    pub(super) async fn read_head(&mut self, limits: &HeadLimits) -> Result<Head, ReadFail> {
        loop {
            match parse_head(&self.buf, limits, &mut self.headers) {
                Ok(Parsed::Complete(head)) => return Ok(head),
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(ReadFail::Refuse(e)),
            }
            let want = self.buf.capacity();
            match self.read_more(want).await {
                Ok(n) if n > 0 => {}
                _ => {
                    // A timeout on a request that has begun (or on a new connection) gets 408.
                    let begun = self.first || !self.buf.is_empty();
                    return Err(if self.timed_out.get() && begun {
                        ReadFail::Refuse(HttpError::HeadTimeout)
                    } else {
                        ReadFail::Gone
                    });
                }
            }
        }
    }

    /// Read the body that follows `head`; returns it and how many bytes of the buffer the
    /// request used (head + body), so pipelined bytes after it are kept.
    pub(super) async fn read_body(
        &mut self,
        head: &Head,
        max_body: usize,
    ) -> Result<(Vec<u8>, usize), ReadFail> {
        let expects_continue = self
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        let start = head.len;
        match head.body {
            BodyKind::None => Err(ReadFail::Refuse(HttpError::LengthRequired)),
            BodyKind::Length(n) => {
                let n = check_length(n, max_body).map_err(ReadFail::Refuse)?;
                let end = start + n;
                if expects_continue && self.buf.len() < end {
                    let _ = self.stream.write_all(CONTINUE).await;
                }
                while self.buf.len() < end {
                    match self.read_more(end - self.buf.len()).await {
                        Ok(k) if k > 0 => {}
                        _ => return Err(self.ended()),
                    }
                }
                Ok((self.buf.get(start..end).unwrap_or_default().to_vec(), end))
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new(max_body);
                let mut body = Vec::new();
                let mut pos = start;
                if expects_continue && self.buf.len() <= start {
                    let _ = self.stream.write_all(CONTINUE).await;
                }
                loop {
                    let input = self.buf.get(pos..).unwrap_or_default();
                    let step = decoder.decode(input, &mut body).map_err(ReadFail::Refuse)?;
                    pos += step.consumed;
                    if step.done {
                        return Ok((body, pos));
                    }
                    match self.read_more(4096).await {
                        Ok(k) if k > 0 => {}
                        _ => return Err(self.ended()),
                    }
                }
            }
        }
    }

    /// The sweep ends a stalled read (EOF); a body cut short by it is answered 408.
    fn ended(&self) -> ReadFail {
        if self.timed_out.get() {
            ReadFail::Refuse(HttpError::HeadTimeout)
        } else {
            ReadFail::Gone
        }
    }
}
