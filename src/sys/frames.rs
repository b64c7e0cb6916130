//! What a write carries and how a burst of them reaches the kernel: [`FrameVec`] (shared
//! frames and the iovecs into them), and the fan-out ring ([`SendRing`]) that submits every
//! subscriber's send of a burst at once. Part of `sys`: the unsafe code here has its SAFETY
//! proofs like the rest.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::Bytes;

use super::{send_now, IOV_MAX};

/// The frames of one `writev`: shared, reference-counted frames (no copy) and the iovec list
/// that points into them, advanced in place after a partial write.
#[derive(Debug, Default)]
pub struct FrameVec {
    frames: Vec<Rc<Bytes>>,
    extra: Vec<Bytes>,
    iovecs: Vec<libc::iovec>,
    /// Index of the first iovec with bytes left.
    first: usize,
    remaining: usize,
}

impl FrameVec {
    pub fn new() -> FrameVec {
        FrameVec::default()
    }

    fn push_iovec(&mut self, bytes: &Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.iovecs.push(libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        });
        self.remaining += bytes.len();
    }

    /// Queue a shared frame (a core-local refcount bump, no copy).
    pub fn push_shared(&mut self, frame: Rc<Bytes>) {
        self.push_iovec(&frame);
        self.frames.push(frame);
    }

    /// Queue bytes owned by this write (response heads, per-connection events).
    pub fn push_owned(&mut self, bytes: Bytes) {
        self.push_iovec(&bytes);
        self.extra.push(bytes);
    }

    /// Bytes not yet written.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Account for `written` bytes of a (possibly partial) write.
    pub fn advance(&mut self, mut written: usize) {
        written = written.min(self.remaining);
        self.remaining -= written;
        while written > 0 {
            let Some(iov) = self.iovecs.get_mut(self.first) else {
                break;
            };
            if written >= iov.iov_len {
                written -= iov.iov_len;
                iov.iov_len = 0;
                self.first += 1;
            } else {
                // SAFETY: `written < iov_len`, so the new base stays inside the same buffer.
                iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(written) }.cast();
                iov.iov_len -= written;
                written = 0;
            }
        }
    }

    /// Write as much as the socket takes now, without waiting: one `sendmsg` with
    /// `MSG_DONTWAIT` (whatever the descriptor's blocking mode), `MSG_NOSIGNAL` (a peer that
    /// hung up is an error, not a SIGPIPE). Returns the bytes written — 0 when the send buffer
    /// is full — and advances past them.
    pub fn send_now(&mut self, fd: RawFd) -> io::Result<usize> {
        let rest = self.iovecs.get(self.first..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(0);
        }
        if let [one] = rest {
            // One buffer (one event, the common case): `send`, which spares the kernel
            // copying in a msghdr and an iovec array.
            // SAFETY: the iovec describes a live frame this value keeps alive (see `IoVecBuf`
            // below), readable for its length during the call.
            let bytes =
                unsafe { std::slice::from_raw_parts(one.iov_base.cast::<u8>(), one.iov_len) };
            let n = send_now(fd, bytes)?;
            self.advance(n);
            return Ok(n);
        }
        // SAFETY: msghdr is plain data; zeroed means no address, no control data, no flags.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = rest.as_ptr().cast_mut();
        msg.msg_iovlen = rest.len().min(IOV_MAX);
        // The system call itself, not libc's wrapper: sendmsg is a pthread cancellation point
        // and its wrapper's bookkeeping showed in profiles of a fan-out (~0.2% of the core).
        // SAFETY: the iovecs point into frames this value keeps alive (see `IoVecBuf` below);
        // the kernel only reads them during the call. `msg` outlives the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                fd,
                &msg as *const libc::msghdr,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let n = usize::try_from(n).unwrap_or(0);
        self.advance(n);
        Ok(n)
    }

    /// Empty the list for reuse, keeping its allocations.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.extra.clear();
        self.iovecs.clear();
        self.first = 0;
        self.remaining = 0;
    }
}

// SAFETY: the iovecs point into `frames` and `extra`, whose heap buffers (Bytes and Rc<Bytes>
// contents) never move while this value is alive; the vectors are not modified while the runtime
// owns the value (only `advance`/`clear` change them, and they take `&mut self`). The pointer and
// count describe `iovecs[first..]`, which are valid, initialised iovec structs.
unsafe impl monoio::buf::IoVecBuf for FrameVec {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iovecs
            .get(self.first..)
            .map_or(std::ptr::null(), |rest| rest.as_ptr())
    }

    fn read_iovec_len(&self) -> usize {
        self.iovecs.len().saturating_sub(self.first)
    }
}

/// One subscriber's share of a fan-out: its socket, what is due to it, and — once
/// [`SendRing::send_all`] has run — what happened (`None`: not sent; send it another way).
#[derive(Debug, Default)]
pub struct Outgoing {
    pub fd: RawFd,
    pub list: FrameVec,
    pub result: Option<io::Result<usize>>,
}

/// A worker's own small io_uring for fan-out: every socket's send of one burst submitted with
/// one `io_uring_enter`, as the floor does (a system call per socket is a point where a busy
/// core switches away mid-burst, and the readers fall asleep between the pieces). Every send
/// carries `MSG_DONTWAIT`, so it completes during the submit — what fits is written, a full
/// socket fails with EAGAIN — and never stays in flight: when `send_all` returns, the kernel
/// is done with every buffer it was given.
pub struct SendRing {
    ring: io_uring::IoUring,
    msgs: Vec<libc::msghdr>,
    /// A submit failed in a way that may leave entries queued: the ring is never entered again
    /// (so the kernel never reads them), and sends go the other way.
    broken: bool,
}

impl std::fmt::Debug for SendRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRing")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Sends per submit (and the ring's size).
const RING_ENTRIES: usize = 256;

impl SendRing {
    pub fn new() -> io::Result<SendRing> {
        Ok(SendRing {
            ring: io_uring::IoUring::new(RING_ENTRIES as u32)?,
            msgs: Vec::with_capacity(RING_ENTRIES),
            broken: false,
        })
    }

    /// Send each item's list to its socket, as much as it takes now; set each `result` (and
    /// advance each list past what was written). Items left with `None` were not sent.
    pub fn send_all(&mut self, items: &mut [Outgoing]) {
        for chunk in items.chunks_mut(RING_ENTRIES) {
            if self.broken {
                return;
            }
            self.send_chunk(chunk);
        }
    }

    fn send_chunk(&mut self, chunk: &mut [Outgoing]) {
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // Every msghdr is in place before any pointer to one is taken: `msgs` does not move.
        self.msgs.clear();
        for item in chunk.iter() {
            let rest = item.list.iovecs.get(item.list.first..).unwrap_or_default();
            // SAFETY: msghdr is plain data; zeroed means no address, no control data.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = rest.as_ptr().cast_mut();
            msg.msg_iovlen = rest.len().min(IOV_MAX);
            self.msgs.push(msg);
        }
        let mut queued = 0usize;
        {
            let mut sq = self.ring.submission();
            for (i, (item, msg)) in chunk.iter().zip(self.msgs.iter()).enumerate() {
                let rest = item.list.iovecs.get(item.list.first..).unwrap_or_default();
                let entry = match rest {
                    [] => continue,
                    [one] => io_uring::opcode::Send::new(
                        io_uring::types::Fd(item.fd),
                        one.iov_base.cast::<u8>().cast_const(),
                        u32::try_from(one.iov_len).unwrap_or(u32::MAX),
                    )
                    .flags(flags)
                    .build(),
                    _ => io_uring::opcode::SendMsg::new(
                        io_uring::types::Fd(item.fd),
                        msg as *const libc::msghdr,
                    )
                    .flags(flags as u32)
                    .build(),
                }
                .user_data(i as u64);
                // SAFETY: the entry points at buffers `chunk` keeps alive (its frame lists) and
                // at `self.msgs`, neither of which is touched until every entry has completed,
                // which happens before this function returns (MSG_DONTWAIT: no send stays in
                // flight; see the loop below), or never if the ring breaks (then it is never
                // entered again).
                if unsafe { sq.push(&entry) }.is_err() {
                    break;
                }
                queued += 1;
            }
        }
        let mut reaped = 0usize;
        let mut tries = 0;
        // A bound on each wait: with MSG_DONTWAIT every send completes during the submit, so
        // this only matters if a kernel parked one anyway.
        let wait = io_uring::types::Timespec::new().nsec(2_000_000);
        while reaped < queued && tries < 50 {
            tries += 1;
            let args = io_uring::types::SubmitArgs::new().timespec(&wait);
            match self
                .ring
                .submitter()
                .submit_with_args(queued - reaped, &args)
            {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::ETIME)
                    ) => {}
                Err(_) => tries = usize::MAX,
            }
            for cqe in self.ring.completion() {
                reaped += 1;
                let Some(item) = usize::try_from(cqe.user_data())
                    .ok()
                    .and_then(|i| chunk.get_mut(i))
                else {
                    continue;
                };
                let res = cqe.result();
                item.result = Some(if res >= 0 {
                    let n = usize::try_from(res).unwrap_or(0);
                    item.list.advance(n);
                    Ok(n)
                } else if res == -libc::EAGAIN || res == -libc::EINTR {
                    Ok(0)
                } else {
                    Err(io::Error::from_raw_os_error(-res))
                });
            }
        }
        if reaped < queued {
            // Should not happen. Some entries may still be queued or in flight: never enter
            // the ring again, keep their buffers alive for good (leak them), and report those
            // sends as failed so their streams end instead of being written twice.
            self.broken = true;
            for item in chunk.iter_mut() {
                if item.result.is_none() {
                    std::mem::forget(std::mem::take(&mut item.list));
                    item.result = Some(Err(io::Error::other("fan-out ring failed")));
                }
            }
        }
    }
}

#[cfg(test)]
mod frame_vec_tests {
    use super::*;
    use monoio::buf::IoVecBuf;

    /// The bytes the iovecs still describe, in order.
    fn unwritten(v: &FrameVec) -> Vec<u8> {
        let mut out = Vec::new();
        for iov in v.iovecs.get(v.first..).unwrap_or_default() {
            // SAFETY: every iovec points into a frame `v` keeps alive, and `advance` only moves
            // a base forward within its buffer while shrinking its length to match.
            let part =
                unsafe { std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len) };
            out.extend_from_slice(part);
        }
        out
    }

    fn three() -> (FrameVec, Vec<u8>) {
        let mut v = FrameVec::new();
        v.push_shared(Rc::new(Bytes::from_static(b"id: 1\n\n")));
        v.push_owned(Bytes::new()); // empty: no iovec
        v.push_owned(Bytes::from_static(b": heartbeat\n\n"));
        v.push_shared(Rc::new(Bytes::from_static(b"id: 2\n\n")));
        (v, b"id: 1\n\n: heartbeat\n\nid: 2\n\n".to_vec())
    }

    #[test]
    fn every_partial_write_leaves_exactly_the_rest() {
        let (v, all) = three();
        assert_eq!(v.iovecs.len(), 3);
        assert_eq!(v.remaining(), all.len());
        // Every split point, and every pair of split points (two partial writes in a row).
        for a in 0..=all.len() {
            for b in a..=all.len() {
                let (mut v, _) = three();
                v.advance(a);
                assert_eq!(unwritten(&v), all[a..], "after {a}");
                v.advance(b - a);
                assert_eq!(unwritten(&v), all[b..], "after {a} then {}", b - a);
                assert_eq!(v.remaining(), all.len() - b);
                assert_eq!(v.is_empty(), b == all.len());
                assert_eq!(v.read_iovec_len(), v.iovecs.len() - v.first);
            }
        }
    }

    #[test]
    fn advancing_past_the_end_is_clamped_and_clear_resets() {
        let (mut v, all) = three();
        v.advance(all.len() + 100);
        assert!(v.is_empty());
        assert_eq!(v.read_iovec_len(), 0);
        v.clear();
        assert_eq!(v.remaining(), 0);
        v.push_owned(Bytes::from_static(b"x"));
        assert_eq!(unwritten(&v), b"x");
    }
}
