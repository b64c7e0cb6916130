//! The only module with `libc` calls and `unsafe`: CPU affinity, file limits, socket options,
//! non-blocking sends and receives, the per-worker epoll set that watches idle subscribers for
//! hang-ups, signal handling; and ([`frames`]) the iovec list that lets one write carry several
//! shared frames, and the fan-out ring that submits a burst's sends at once.
//!
//! Every `unsafe` block states why it holds (`clippy::undocumented_unsafe_blocks` is denied).
#![deny(clippy::undocumented_unsafe_blocks)]

mod frames;
pub use frames::{FrameVec, Outgoing, SendRing};

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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
