//! The only module with `libc` calls and `unsafe`: CPU affinity, file limits, socket options,
//! the per-worker epoll set that watches idle subscribers for hang-ups, signal handling and the
//! iovec list that lets one `writev` carry several shared frames.
//!
//! Every `unsafe` block states why it holds (`clippy::undocumented_unsafe_blocks` is denied).
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use bytes::Bytes;

/// Most iovecs one `sendmsg` takes (Linux's UIO_MAXIOV).
const IOV_MAX: usize = 1024;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A listening TCP socket with SO_REUSEPORT (each worker binds its own on the same address, and
/// the kernel spreads new connections across them). Accepted sockets inherit its send buffer
/// cap and TCP_NODELAY, which saves two system calls per connection.
pub fn reuseport_listener(
    addr: std::net::SocketAddr,
    backlog: i32,
    send_buffer_bytes: usize,
) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_send_buffer_size(send_buffer_bytes)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    defer_accept(std::os::fd::AsRawFd::as_raw_fd(&socket), DEFER_ACCEPT_SECS)?;
    Ok(socket.into())
}

/// A connection is handed to accept once its first bytes have arrived (or, if it sends nothing,
/// after about this long): the request is then read at once instead of after a wake-up.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// TCP_DEFER_ACCEPT on a listening socket.
fn defer_accept(fd: RawFd, secs: libc::c_int) -> io::Result<()> {
    // SAFETY: `secs` is a c_int that outlives the call, and its size is the length passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Pin the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu index out of range",
        ));
    }
    // SAFETY: cpu < CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Raise the soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit with cur <= max.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// The memory page size in bytes (4096 when the system does not say).
pub fn page_size_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant; it takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// `shutdown(2)`: the cheap way to abort a write stuck on a client that stopped reading; a
/// pending read or write then completes with an error or EOF.
pub fn shutdown(fd: RawFd, read: bool, write: bool) {
    let how = match (read, write) {
        (true, true) => libc::SHUT_RDWR,
        (true, false) => libc::SHUT_RD,
        (false, true) => libc::SHUT_WR,
        (false, false) => return,
    };
    // SAFETY: shutdown on any fd value is memory-safe; errors (e.g. ENOTCONN) are irrelevant here.
    unsafe { libc::shutdown(fd, how) };
}

/// Make closing `fd` abortive (SO_LINGER with a zero timeout: RST instead of FIN). For a
/// peer that has already closed its end: it reads nothing more, and the FIN, its ACK and the
/// peer's TIME_WAIT are work (on loopback, on this core) for nobody.
pub fn abort_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct that outlives the call, and its size is the length
    // passed. A failure leaves the ordinary close, which is correct too.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Discard whatever a subscriber sent after its request; returns false once the peer has
/// closed (read returned 0) or failed.
pub fn drain_input(fd: RawFd) -> bool {
    let mut scratch = [0u8; 2048];
    for _ in 0..16 {
        // SAFETY: `scratch` is a writable buffer of the length passed; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
        }
    }
    true
}

/// Read what has already arrived on `fd` into the spare capacity of `buf`, without waiting
/// (`MSG_DONTWAIT`, whatever the descriptor's mode). `Ok(None)`: nothing yet; `Ok(Some(0))`: the
/// peer closed.
pub fn recv_now(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        return Ok(None);
    }
    // The system call itself, not libc's cancellation-point wrapper (see `send_now`).
    // SAFETY: `spare` is writable memory of the length passed, owned by `buf` for the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            spare.as_mut_ptr(),
            spare.len(),
            libc::MSG_DONTWAIT,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(err),
        };
    }
    let n = usize::try_from(n).unwrap_or(0);
    let len = buf.len() + n;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity (n ≤ its length).
    unsafe { buf.set_len(len) };
    Ok(Some(n))
}

/// Write as much of `bytes` as `fd` takes now, without waiting (`MSG_DONTWAIT`; `MSG_NOSIGNAL`:
/// a peer that hung up is an error, not a SIGPIPE). Returns the bytes written, 0 when the send
/// buffer is full.
pub fn send_now(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    if bytes.is_empty() {
        return Ok(0);
    }
    // The system call itself: libc's send is a pthread cancellation point, and its wrapper's
    // bookkeeping shows in profiles of stream opens.
    // SAFETY: `bytes` is readable memory of the length passed, borrowed for the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            bytes.as_ptr(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(err),
        };
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// CPU time (user + system) this process has used so far, in microseconds.
pub fn process_cpu_micros() -> u64 {
    // SAFETY: rusage is plain data; zeroed is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let micros = |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000 + tv.tv_usec as u64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// A hang-up or input seen on a watched socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub token: u64,
    /// The peer closed or reset, or the socket failed.
    pub hung_up: bool,
    /// Bytes are waiting to be read.
    pub readable: bool,
}

/// A per-worker epoll set watching idle subscriber sockets for FIN/RST (EPOLLRDHUP), so that an
/// idle connection needs no pending operation of its own. The worker keeps one readiness wait on
/// the epoll fd itself (see [`Epoll::watch_handle`]).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; on success it returns a new fd that we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn raw(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// Watch `fd` for hang-up and input (edge-triggered), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLRDHUP | libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.raw(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Stop watching `fd` (before it is closed or handed to a writer).
    pub fn remove(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is valid (ignored by DEL on modern kernels); a failure (not watched) is fine.
        unsafe { libc::epoll_ctl(self.raw(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Collect what is ready without blocking.
    pub fn poll_now(&self, out: &mut Vec<Readiness>) -> io::Result<()> {
        const BATCH: usize = 256;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: `events` has room for BATCH entries; timeout 0 never blocks.
            let n = cvt(unsafe {
                libc::epoll_wait(self.raw(), events.as_mut_ptr(), BATCH as libc::c_int, 0)
            })?;
            let n = usize::try_from(n).unwrap_or(0).min(BATCH);
            for ev in events.iter().take(n) {
                let flags = ev.events as libc::c_int;
                out.push(Readiness {
                    token: ev.u64,
                    hung_up: flags & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0,
                    readable: flags & libc::EPOLLIN != 0,
                });
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }

    /// A monoio stream over a duplicate of the epoll fd, used only to wait for readability
    /// (`readable(false)`): one poll on it stands for every socket in the set.
    pub fn watch_handle(&self) -> io::Result<monoio::net::UnixStream> {
        // SAFETY: F_DUPFD_CLOEXEC on our own valid fd returns a new fd we own.
        let dup = cvt(unsafe { libc::fcntl(self.raw(), libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: `dup` is a fresh fd owned by nobody else. It is not a socket, but the stream is
        // only ever polled for readability, which is valid on an epoll fd; no socket call is made.
        let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(dup) };
        std_stream.set_nonblocking(true)?;
        monoio::net::UnixStream::from_std(std_stream)
    }
}

/// Block SIGTERM and SIGINT in the calling thread (and every thread it spawns afterwards), so
/// that [`wait_for_termination`] can take them synchronously.
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is a valid, initialised sigset_t; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
    }
    set
}

/// Wait until SIGTERM or SIGINT arrives (they must be blocked, see above); returns its number.
pub fn wait_for_termination() -> i32 {
    let set = termination_set();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is writable.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 {
            return sig;
        }
    }
}

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
