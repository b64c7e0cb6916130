//! One worker: a pinned thread with its own monoio runtime, listener (SO_REUSEPORT), connection
//! slots, channel histories and bus endpoint. Nothing here is shared with another thread except
//! through the bus rings, the doorbells and the metrics counters.
//!
//! Tasks on a worker: the accept loop, the bus loop (sequencing on worker 0, applying frames,
//! answering publishers), the hang-up watcher (one poll on an epoll set of idle subscribers),
//! the sweep (heartbeats and timeouts, once a second), one task per connection while it is in
//! its handshake (or is a publisher), and one writer task per subscriber while it has bytes due.

mod conn;
mod dashboard;
mod http;
pub mod publish;
pub mod subscribe;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use monoio::io::AsyncReadRent;
use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use crate::bus::{DoorbellRx, Endpoint, NewEvent, Outcome, PublishRequest, Sequenced};
use crate::channel::{ChannelIdx, Channels, Retention};
use crate::config::Config;
use crate::metrics::WorkerMetrics;
use crate::per_ip::{self, PerIpCounter};
use crate::sse::encode::{self, Frame};
use crate::sse::id::{unix_ms_now, EventId};
use crate::sys::{self, Epoll, FrameVec};
use conn::{
    ConnKey, ConnSlot, Conns, CLOSING, HEARTBEAT_DUE, LAGGING, SHUTDOWN_DUE, TOKEN_EXPIRED, WRITING,
};

/// Most frames in one writev (well under IOV_MAX).
const MAX_FRAMES_PER_WRITE: usize = 256;
/// Stop adding frames to one writev after this many bytes.
const MAX_BYTES_PER_WRITE: usize = 256 * 1024;

/// How often the sweep runs: the resolution of heartbeats and timeouts.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// State every worker reads, set up once by the server.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub metrics: Vec<Arc<WorkerMetrics>>,
    /// Open connections across all workers (for `--max-connections`).
    pub open_connections: AtomicU64,
    pub draining: AtomicBool,
    /// Ids at or below this belong to an earlier run of the server.
    pub boot: EventId,
    /// Connections per client address (`--max-connections-per-ip`).
    pub per_ip: PerIpCounter,
    /// JWT verification and the CORS policy (off unless configured).
    pub auth: crate::auth::Auth,
    /// What each worker posts for the dashboard's snapshot (used with `--dashboard`).
    pub board: crate::web::stats::Board,
}

/// The per-worker state behind one `RefCell`; never borrowed across an await.
struct State {
    conns: Conns,
    channels: Channels,
    /// The newest event id this worker has seen.
    newest: EventId,
    handshakes: Handshakes,
    draining: bool,
}

/// Connections still reading a request head (or idle publishers between requests).
#[derive(Default)]
struct Handshakes {
    entries: Vec<Option<HandshakeEntry>>,
    free: Vec<usize>,
}

struct HandshakeEntry {
    fd: RawFd,
    since_ms: u64,
    timed_out: Rc<Cell<bool>>,
    idle_keepalive: bool,
}

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    metrics: Arc<WorkerMetrics>,
    state: RefCell<State>,
    bus: RefCell<Endpoint>,
    epoll: Epoll,
    started: Instant,
    next_token: Cell<u64>,
    next_client: Cell<u64>,
    pending: RefCell<HashMap<u64, Rc<PendingReply>>>,
    drain_signal: Signal,
}

/// Run worker `index` until it has drained. Blocks the calling thread.
pub fn run(
    index: usize,
    shared: Arc<Shared>,
    endpoint: Endpoint,
    bell_rx: DoorbellRx,
    listener: std::net::TcpListener,
) -> std::io::Result<()> {
    let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(32768)
        .build()?;
    runtime.block_on(async move {
        let listener = monoio::net::TcpListener::from_std(listener)?;
        let bell = bell_rx.into_stream()?;
        let config = &shared.config;
        let retention = Retention {
            max_events: usize::try_from(config.history_events).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(config.history_bytes).unwrap_or(usize::MAX),
            max_age_ms: config.history_age_secs.saturating_mul(1000),
        };
        let metrics = shared.metrics.get(index).cloned().unwrap_or_default();
        let worker = Rc::new(Worker {
            index,
            metrics,
            state: RefCell::new(State {
                conns: Conns::default(),
                channels: Channels::new(retention, shared.boot),
                newest: shared.boot,
                handshakes: Handshakes::default(),
                draining: false,
            }),
            bus: RefCell::new(endpoint),
            epoll: Epoll::new()?,
            started: Instant::now(),
            next_token: Cell::new(1),
            next_client: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            drain_signal: Signal::default(),
            shared,
        });
        monoio::spawn(Rc::clone(&worker).bus_loop(bell));
        monoio::spawn(Rc::clone(&worker).hangup_loop());
        monoio::spawn(Rc::clone(&worker).sweep_loop());
        if worker.config().dashboard {
            monoio::spawn(Rc::clone(&worker).dashboard_loop());
        }
        Rc::clone(&worker).accept_loop(listener).await;
        worker.finish_drain().await;
        Ok(())
    })
}

impl Worker {
    fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Seconds since this worker started (the coarse clock of the sweep).
    fn now_secs(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Milliseconds since this worker started.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    // ----- accepting ------------------------------------------------------------------------

    async fn accept_loop(self: Rc<Self>, listener: monoio::net::TcpListener) {
        loop {
            let accepted = monoio::select! {
                r = listener.accept() => Some(r),
                _ = self.drain_signal.wait() => None,
            };
            let Some(accepted) = accepted else { break };
            match accepted {
                Ok((stream, peer)) => {
                    self.metrics.connections_accepted_total.inc();
                    let peer_key = per_ip::key(peer.ip());
                    let open = self.shared.open_connections.fetch_add(1, Ordering::Relaxed);
                    if open >= self.config().max_connections {
                        self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
                        self.metrics.connections_rejected_total.inc();
                        monoio::spawn(http::reject(stream, http::Refusal::AtCapacity));
                    } else if !self.shared.per_ip.acquire(peer_key) {
                        self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
                        self.metrics.connections_rejected_per_ip_total.inc();
                        monoio::spawn(http::reject(stream, http::Refusal::TooManyFromAddress));
                    } else {
                        self.metrics.connections.inc();
                        monoio::spawn(http::serve_connection(Rc::clone(&self), stream, peer_key));
                    }
                }
                Err(e) => {
                    self.metrics.accept_errors_total.inc();
                    // EMFILE/ENFILE/ENOBUFS/ENOMEM: back off instead of spinning on a full table.
                    let pause = match e.raw_os_error() {
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                            Duration::from_millis(100)
                        }
                        _ => Duration::from_millis(5),
                    };
                    monoio::select! {
                        _ = monoio::time::sleep(pause) => {},
                        _ = self.drain_signal.wait() => break,
                    }
                }
            }
        }
    }

    /// A connection (of any kind) ended.
    fn connection_closed(&self, peer_key: u64) {
        self.metrics.connections.dec();
        self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        self.shared.per_ip.release(peer_key);
    }

    // ----- handshake registry (the sweep enforces its timeout) ---------------------------------

    fn handshake_begin(&self, fd: RawFd, idle_keepalive: bool) -> (usize, Rc<Cell<bool>>) {
        let timed_out = Rc::new(Cell::new(false));
        let entry = HandshakeEntry {
            fd,
            since_ms: self.now_ms(),
            timed_out: Rc::clone(&timed_out),
            idle_keepalive,
        };
        let mut st = self.state.borrow_mut();
        let hs = &mut st.handshakes;
        let id = match hs.free.pop() {
            Some(id) => {
                if let Some(e) = hs.entries.get_mut(id) {
                    *e = Some(entry);
                }
                id
            }
            None => {
                hs.entries.push(Some(entry));
                hs.entries.len() - 1
            }
        };
        (id, timed_out)
    }

    fn handshake_end(&self, id: usize) {
        let mut st = self.state.borrow_mut();
        if let Some(e) = st.handshakes.entries.get_mut(id) {
            if e.take().is_some() {
                st.handshakes.free.push(id);
            }
        }
    }

    fn handshakes_open(&self) -> usize {
        let st = self.state.borrow();
        st.handshakes.entries.len() - st.handshakes.free.len()
    }

    // ----- the bus --------------------------------------------------------------------------

    async fn bus_loop(self: Rc<Self>, mut bell: monoio::net::UnixStream) {
        let mut buf = vec![0u8; 64];
        loop {
            self.pump_bus();
            if self.shared.draining.load(Ordering::SeqCst) && !self.state.borrow().draining {
                self.begin_drain();
            }
            {
                let bus = self.bus.borrow();
                let Some(door) = bus.doorbell() else { return };
                door.arm();
                if bus.has_input()
                    || (self.shared.draining.load(Ordering::SeqCst)
                        && !self.state.borrow().draining)
                {
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

    /// Take everything waiting on the bus: sequence peers' requests (worker 0), apply frames,
    /// answer this worker's publishers.
    fn pump_bus(self: &Rc<Self>) {
        let mut woken = Vec::new();
        let mut frames = Vec::new();
        let mut replies = Vec::new();
        {
            let mut bus = self.bus.borrow_mut();
            if let Some(seq) = bus.sequencer.as_mut() {
                let before = frames.len();
                frames.extend(seq.serve_peers(unix_ms_now(), &mut woken));
                self.metrics
                    .events_published_total
                    .add((frames.len() - before) as u64);
            }
            if let Some(link) = bus.link.as_mut() {
                while let Ok(reply) = link.replies.pop() {
                    replies.push(reply);
                }
                // Frames after replies: a reply's frames were pushed before it, so they are here.
                while let Ok(frame) = link.frames.pop() {
                    frames.push(frame);
                }
            }
            ring(&bus, &woken);
        }
        for seq in frames {
            self.apply(&seq);
        }
        for reply in replies {
            if let Some(p) = self.pending.borrow_mut().remove(&reply.token) {
                p.complete(reply.outcome);
            }
        }
    }

    /// Sequence `events` (through the bus unless this is worker 0). `None` = back-pressure.
    async fn publish(self: &Rc<Self>, events: Vec<NewEvent>) -> Option<Vec<EventId>> {
        let n = events.len() as u64;
        if self.bus.borrow().sequencer.is_some() {
            let done = {
                let mut bus = self.bus.borrow_mut();
                let mut woken = Vec::new();
                let done = bus
                    .sequencer
                    .as_mut()
                    .and_then(|seq| seq.sequence(events, unix_ms_now(), &mut woken));
                ring(&bus, &woken);
                done
            }?;
            self.metrics.events_published_total.add(n);
            let ids = done.iter().map(|s| s.id).collect();
            for seq in &done {
                self.apply(seq);
            }
            return Some(ids);
        }
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        let pending = Rc::new(PendingReply::default());
        {
            let mut bus = self.bus.borrow_mut();
            let link = bus.link.as_mut()?;
            if link
                .requests
                .push(PublishRequest { token, events })
                .is_err()
            {
                return None;
            }
            ring(&bus, &[0]);
        }
        self.pending.borrow_mut().insert(token, Rc::clone(&pending));
        match pending.wait().await {
            Outcome::Sequenced(ids) => Some(ids),
            Outcome::Busy => None,
        }
    }

    /// Record a sequenced event in every channel it names and wake the subscribers that follow
    /// those channels here.
    fn apply(self: &Rc<Self>, seq: &Arc<Sequenced>) {
        let frame = Rc::new(seq.frame.clone());
        let mut to_start = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            let State {
                conns,
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
                    crate::channel::Entry {
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
                for &sub in &ch.subscribers {
                    if let Some((key, slot)) = conns.at_mut(sub) {
                        if slot.flags & (WRITING | CLOSING) == 0 {
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

    // ----- subscribers ----------------------------------------------------------------------

    fn client_id(&self) -> String {
        let n = self.next_client.get();
        self.next_client.set(n + 1);
        format!("{:x}-{}-{}", self.shared.boot.ms, self.index, n)
    }

    /// Resolve a subscription's channels and where its stream starts. A resume id that cannot be
    /// served exactly yields the `reset` frame to send first; the stream then continues with
    /// everything retained after the id (or everything retained, when the id is unusable).
    fn plan_subscription(&self, sub: &subscribe::Subscription) -> (Resume, Option<Frame>) {
        let mut st = self.state.borrow_mut();
        let chans: Box<[ChannelIdx]> = sub
            .channels
            .iter()
            .map(|n| st.channels.find_or_create(n))
            .collect();
        let newest = st.newest;
        let live = Resume {
            cursor: newest,
            joined: newest,
            acknowledged_floor: EventId::ZERO,
        };
        let Some(raw) = sub.last_event_id.as_deref() else {
            return (live, None);
        };
        self.metrics.replays_total.inc();
        let floor = st.channels.floor_of(&chans);
        let (reason, cursor) = match crate::sse::id::parse(raw.as_bytes()) {
            Err(_) => (Some("malformed-id"), EventId::ZERO),
            Ok(id) if id > newest => (Some("unknown-id"), EventId::ZERO),
            Ok(id) if id < self.shared.boot => (Some("previous-run"), id),
            Ok(id) if id < floor => (Some("evicted"), id),
            Ok(id) => (None, id),
        };
        let Some(reason) = reason else {
            return (
                Resume {
                    cursor,
                    joined: newest,
                    acknowledged_floor: EventId::ZERO,
                },
                None,
            );
        };
        self.metrics.resets_total.inc();
        let resume = Resume {
            cursor,
            joined: newest,
            acknowledged_floor: floor,
        };
        (resume, Some(encode::reset(reason, raw)))
    }

    /// Make `stream` (whose response head is written) a subscriber slot.
    fn adopt_subscriber(
        self: &Rc<Self>,
        stream: TcpStream,
        names: &[String],
        start: Resume,
        peer_key: u64,
        expires_at: Option<u64>,
    ) {
        use std::os::fd::AsRawFd;
        let fd = stream.as_raw_fd();
        let key = {
            let mut st = self.state.borrow_mut();
            // Resolved again here, not when the stream was planned: the sweep may have
            // collected a channel that was still empty while the handshake was being written.
            let channels: Box<[ChannelIdx]> = names
                .iter()
                .map(|n| st.channels.find_or_create(n))
                .collect();
            let now = self.now_secs();
            let slot = ConnSlot {
                stream: Some(stream),
                fd,
                flags: 0,
                last_write_secs: now,
                channels,
                cursor: start.cursor,
                joined: start.joined,
                acknowledged_floor: start.acknowledged_floor,
                peer_key,
                // 0 means never; an expiry past 2106 is treated as never too.
                expires_at: expires_at.and_then(|e| u32::try_from(e).ok()).unwrap_or(0),
            };
            let State {
                conns, channels, ..
            } = &mut *st;
            let chans = slot.channels.clone();
            let key = conns.insert(slot);
            for c in chans.iter() {
                if let Some(ch) = channels.get_mut(*c) {
                    ch.subscribers.push(key.index);
                }
            }
            key
        };
        self.metrics.subscribers.inc();
        if self.epoll.add(fd, key.token()).is_err() {
            self.close_subscriber(key);
            return;
        }
        if self.state.borrow().draining {
            if let Some(slot) = self.state.borrow_mut().conns.get_mut(key) {
                slot.flags |= SHUTDOWN_DUE;
            }
        }
        // Replay (or a drain that began meanwhile) may already be due; a live-only stream has
        // nothing to send yet and needs no writer.
        let due = {
            let st = self.state.borrow();
            st.conns.get(key).is_some_and(|slot| {
                slot.flags != 0 || st.channels.lag(&slot.channels, slot.cursor) > 0
            })
        };
        if due {
            self.start_writer(key);
        }
    }

    /// Drop a subscriber now, or as soon as its writer lets go of the stream.
    fn close_subscriber(&self, key: ConnKey) {
        let mut st = self.state.borrow_mut();
        let Some(slot) = st.conns.get_mut(key) else {
            return;
        };
        if slot.has(WRITING) {
            // Once: shutting the socket down makes its writer fail fast, and leaving the epoll set
            // now keeps the shutdown itself from being reported back as one more hang-up.
            if !slot.has(CLOSING) {
                slot.flags |= CLOSING;
                self.epoll.remove(slot.fd);
                sys::shutdown(slot.fd, true, true);
            }
            return;
        }
        let Some(slot) = st.conns.remove(key) else {
            return;
        };
        for c in slot.channels.iter() {
            if let Some(ch) = st.channels.get_mut(*c) {
                if let Some(pos) = ch.subscribers.iter().position(|&s| s == key.index) {
                    ch.subscribers.swap_remove(pos);
                }
            }
        }
        drop(st);
        self.epoll.remove(slot.fd);
        drop(slot.stream);
        self.metrics.subscribers.dec();
        self.connection_closed(slot.peer_key);
    }

    fn start_writer(self: &Rc<Self>, key: ConnKey) {
        let mut st = self.state.borrow_mut();
        let now = self.now_secs();
        let Some(slot) = st.conns.get_mut(key) else {
            return;
        };
        if slot.has(WRITING) {
            return;
        }
        let Some(stream) = slot.stream.take() else {
            return;
        };
        slot.flags |= WRITING;
        slot.last_write_secs = now;
        drop(st);
        monoio::spawn(Rc::clone(self).write_loop(key, stream));
    }

    /// Write everything due to one subscriber, then give the stream back to its slot.
    async fn write_loop(self: Rc<Self>, key: ConnKey, mut stream: TcpStream) {
        let mut batch = FrameVec::new();
        loop {
            batch.clear();
            match self.collect(key, &mut batch) {
                Due::Nothing => {
                    let mut st = self.state.borrow_mut();
                    if let Some(slot) = st.conns.get_mut(key) {
                        if !slot.has(CLOSING) {
                            slot.stream = Some(stream);
                            slot.flags &= !WRITING;
                            return;
                        }
                        slot.flags &= !WRITING;
                    }
                    drop(st);
                    drop(stream);
                    self.close_subscriber(key);
                    return;
                }
                Due::Close => {
                    if let Some(slot) = self.state.borrow_mut().conns.get_mut(key) {
                        slot.flags &= !WRITING;
                    }
                    drop(stream);
                    self.close_subscriber(key);
                    return;
                }
                Due::Write { last } => {
                    let written = batch.remaining() as u64;
                    while !batch.is_empty() {
                        let (res, b) = stream.writev(batch).await;
                        batch = b;
                        match res {
                            Ok(n) if n > 0 => batch.advance(n),
                            _ => {
                                if let Some(slot) = self.state.borrow_mut().conns.get_mut(key) {
                                    slot.flags = (slot.flags & !WRITING) | CLOSING;
                                }
                                drop(stream);
                                self.close_subscriber(key);
                                return;
                            }
                        }
                    }
                    self.metrics.bytes_written_total.add(written);
                    self.metrics.writes_total.inc();
                    let now = self.now_secs();
                    if let Some(slot) = self.state.borrow_mut().conns.get_mut(key) {
                        slot.last_write_secs = now;
                        if last {
                            slot.flags |= CLOSING;
                        }
                    }
                }
            }
        }
    }

    /// Fill `batch` with what is due for `key`: events after its cursor (merged across its
    /// channels), else a heartbeat; the shutdown event when draining.
    fn collect(&self, key: ConnKey, batch: &mut FrameVec) -> Due {
        let mut st = self.state.borrow_mut();
        let State {
            conns, channels, ..
        } = &mut *st;
        let Some(slot) = conns.get_mut(key) else {
            return Due::Close;
        };
        if slot.has(CLOSING) {
            return Due::Close;
        }
        // An expired token ends the stream: nothing more, the client must come back with a new one.
        if slot.has(TOKEN_EXPIRED) {
            slot.flags &= !TOKEN_EXPIRED;
            batch.push_owned(encode::token_expired().into_bytes());
            return Due::Write { last: true };
        }
        // Evicted before this connection sent them: it must resume (and be told of the gap).
        if channels.missed(&slot.channels, slot.cursor, slot.acknowledged_floor) {
            self.metrics.slow_consumer_disconnects_total.inc();
            return Due::Close;
        }
        let mut last_id = slot.cursor;
        let got = channels.collect_after(
            &slot.channels,
            slot.cursor,
            MAX_FRAMES_PER_WRITE,
            MAX_BYTES_PER_WRITE,
            |id, frame| {
                batch.push_shared(Rc::clone(frame));
                last_id = id;
            },
        );
        slot.cursor = last_id;
        if got.frames > 0 {
            self.metrics.deliveries_total.add(got.frames as u64);
            slot.flags &= !HEARTBEAT_DUE;
        }
        if slot.has(SHUTDOWN_DUE) && !got.more {
            slot.flags &= !SHUTDOWN_DUE;
            let spread = self.config().retry_ms.max(1000);
            let jitter = (u64::from(key.index).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % spread;
            batch.push_owned(encode::shutdown(self.config().retry_ms + jitter).into_bytes());
            return Due::Write { last: true };
        }
        if got.frames == 0 && slot.has(HEARTBEAT_DUE) {
            slot.flags &= !HEARTBEAT_DUE;
            self.metrics.heartbeats_total.inc();
            batch.push_owned(Frame::heartbeat().into_bytes());
        }
        if batch.is_empty() {
            Due::Nothing
        } else {
            Due::Write { last: false }
        }
    }

    // ----- hang-ups ---------------------------------------------------------------------------

    async fn hangup_loop(self: Rc<Self>) {
        let Ok(handle) = self.epoll.watch_handle() else {
            return;
        };
        let mut ready = Vec::new();
        loop {
            let woke = monoio::select! {
                r = handle.readable(false) => r.is_ok(),
                _ = self.drain_signal.wait() => false,
            };
            if !woke {
                return;
            }
            ready.clear();
            if self.epoll.poll_now(&mut ready).is_err() {
                continue;
            }
            for r in &ready {
                let key = ConnKey::from_token(r.token);
                let fd = match self.state.borrow().conns.get(key) {
                    Some(slot) => slot.fd,
                    None => continue,
                };
                let gone = r.hung_up || (r.readable && !sys::drain_input(fd));
                if gone {
                    self.metrics.hangups_total.inc();
                    self.close_subscriber(key);
                }
            }
            // On the epoll driver a ready poll completes without yielding: let the writers that
            // were just told to close (and everything else) run before looking again.
            yield_now().await;
        }
    }

    // ----- the sweep ----------------------------------------------------------------------------

    async fn sweep_loop(self: Rc<Self>) {
        let mut ticks = monoio::time::interval(SWEEP_INTERVAL);
        loop {
            monoio::select! {
                _ = ticks.tick() => {},
                _ = self.drain_signal.wait() => return,
            }
            self.sweep();
        }
    }

    /// Heartbeats for quiet streams, write-stall and handshake timeouts, history expiry.
    fn sweep(self: &Rc<Self>) {
        let now = self.now_secs();
        let config = self.config();
        let heartbeat = u32::try_from(config.heartbeat_secs).unwrap_or(u32::MAX);
        let write_timeout = u32::try_from(config.write_timeout_secs).unwrap_or(u32::MAX);
        let handshake_timeout_ms = config.handshake_timeout_secs.saturating_mul(1000);
        let keepalive_timeout_ms = config.keepalive_timeout_secs.saturating_mul(1000);
        let now_ms = self.now_ms();
        let max_lag = usize::try_from(config.max_lag_events).unwrap_or(usize::MAX);
        let mut due = Vec::new();
        let mut stalled = Vec::new();
        let mut lagging = Vec::new();
        let mut expired = 0u64;
        let now_unix = u32::try_from(crate::auth::now_unix()).unwrap_or(u32::MAX);
        {
            let mut st = self.state.borrow_mut();
            let State {
                conns, channels, ..
            } = &mut *st;
            conns.for_each_mut(|key, slot| {
                if slot.expires_at != 0
                    && now_unix >= slot.expires_at
                    && !slot.has(TOKEN_EXPIRED | CLOSING)
                {
                    slot.flags |= TOKEN_EXPIRED;
                    expired += 1;
                    due.push(key);
                    return;
                }
                let quiet = now.saturating_sub(slot.last_write_secs);
                if slot.has(WRITING) {
                    if slot.has(CLOSING) {
                        return;
                    }
                    match lag_verdict(channels, slot, max_lag) {
                        Lag::Drop => lagging.push(key),
                        Lag::Warn => slot.flags |= LAGGING,
                        Lag::Fine => {
                            slot.flags &= !LAGGING;
                            if quiet >= write_timeout {
                                stalled.push(key);
                            }
                        }
                    }
                } else if heartbeat > 0 && quiet >= heartbeat {
                    slot.flags |= HEARTBEAT_DUE;
                    due.push(key);
                }
            });
            for e in st.handshakes.entries.iter().flatten() {
                let limit = if e.idle_keepalive {
                    keepalive_timeout_ms
                } else {
                    handshake_timeout_ms
                };
                if !e.timed_out.get() && now_ms.saturating_sub(e.since_ms) >= limit {
                    e.timed_out.set(true);
                    // The pending read then ends (EOF) and the connection task answers 408.
                    sys::shutdown(e.fd, true, false);
                }
            }
            st.channels.sweep(unix_ms_now());
            self.metrics.channels.set(st.channels.len() as u64);
        }
        for key in stalled {
            self.metrics.write_timeouts_total.inc();
            self.close_subscriber(key);
        }
        self.metrics.token_expiries_total.add(expired);
        for key in lagging {
            self.metrics.slow_consumer_disconnects_total.inc();
            self.close_subscriber(key);
        }
        for key in due {
            self.start_writer(key);
        }
    }

    // ----- drain ------------------------------------------------------------------------------

    fn begin_drain(self: &Rc<Self>) {
        let keys: Vec<ConnKey> = {
            let mut st = self.state.borrow_mut();
            st.draining = true;
            st.conns.keys().collect()
        };
        self.drain_signal.raise();
        for key in keys {
            if let Some(slot) = self.state.borrow_mut().conns.get_mut(key) {
                slot.flags |= SHUTDOWN_DUE;
            }
            self.start_writer(key);
        }
        // Idle publishers and unfinished handshakes: end their pending reads.
        let st = self.state.borrow();
        for e in st.handshakes.entries.iter().flatten() {
            sys::shutdown(e.fd, true, false);
        }
    }

    fn is_draining(&self) -> bool {
        self.state.borrow().draining
    }

    /// After the accept loop stops: wait (up to the drain timeout) for every connection to close,
    /// then force-close what is left.
    async fn finish_drain(self: &Rc<Self>) {
        let deadline = Instant::now() + Duration::from_secs(self.config().drain_timeout_secs);
        loop {
            let open = self.state.borrow().conns.len() + self.handshakes_open();
            if open == 0 {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "pushcore: worker {}: drain timeout with {} streams and {} other connections open; closing them",
                    self.index,
                    self.state.borrow().conns.len(),
                    self.handshakes_open()
                );
                break;
            }
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        let keys: Vec<ConnKey> = self.state.borrow().conns.keys().collect();
        for key in keys {
            self.close_subscriber(key);
        }
    }
}

/// What a subscriber's writer should do next.
enum Due {
    Nothing,
    Write { last: bool },
    Close,
}

/// Where a new subscriber starts.
#[derive(Clone, Copy, Debug)]
struct Resume {
    cursor: EventId,
    joined: EventId,
    acknowledged_floor: EventId,
}

/// The sweep's view of a subscriber with a write in flight.
enum Lag {
    Fine,
    /// Over `--max-lag` for the first time: a burst, or the start of a stall.
    Warn,
    /// Missed evicted events, or over `--max-lag` at two sweeps in a row: disconnect (it
    /// resumes with Last-Event-ID). A reader that keeps up drains a burst between two sweeps.
    Drop,
}

fn lag_verdict(channels: &Channels, slot: &ConnSlot, max_lag: usize) -> Lag {
    if channels.missed(&slot.channels, slot.cursor, slot.acknowledged_floor) {
        return Lag::Drop;
    }
    if channels.lag(&slot.channels, slot.cursor.max(slot.joined)) <= max_lag {
        Lag::Fine
    } else if slot.has(LAGGING) {
        Lag::Drop
    } else {
        Lag::Warn
    }
}

fn ring(bus: &Endpoint, workers: &[usize]) {
    for &w in workers {
        if let Some(bell) = bus.doorbells.get(w) {
            bell.ring();
        }
    }
}

/// A one-shot answer from the sequencer for a publisher on this worker.
#[derive(Default)]
struct PendingReply {
    outcome: RefCell<Option<Outcome>>,
    waker: RefCell<Option<Waker>>,
}

impl PendingReply {
    fn complete(&self, outcome: Outcome) {
        *self.outcome.borrow_mut() = Some(outcome);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn wait(&self) -> Outcome {
        std::future::poll_fn(
            |cx: &mut Context<'_>| match self.outcome.borrow_mut().take() {
                Some(o) => Poll::Ready(o),
                None => {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
        )
        .await
    }
}

/// A worker-local, level-triggered event: once raised, every wait completes. A wait that is
/// dropped unfinished (the losing branch of a `select!`) takes its waker back out.
#[derive(Default)]
struct Signal {
    raised: Cell<bool>,
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Signal {
    fn raise(&self) {
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

    fn wait(&self) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            slot: None,
        }
    }
}

struct SignalWait<'a> {
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

/// Let every other ready task run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
