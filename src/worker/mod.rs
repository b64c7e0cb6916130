//! One worker: a pinned thread with its own monoio runtime, listener (SO_REUSEPORT), subscriber
//! slots, channel histories and bus endpoint. Nothing here is shared with another thread except
//! through the bus rings, the doorbells and the metrics counters.
//!
//! | file | job |
//! |---|---|
//! | `accept.rs` | accept loop, capacity and per-address refusals |
//! | `conn.rs` | one HTTP connection's I/O (`Conn`): read a head, read a body, answer |
//! | `routes.rs` | a connection from accept to subscriber or close: keep-alive loop, routing |
//! | `publish.rs` | `POST /events/publish`: auth, body, submit to the bus, wait for ids |
//! | `stream.rs` | `GET /events/stream`: handshake, adoption as a subscriber slot |
//! | `resume.rs` | where a stream starts: the resume rule, and in cluster mode waits and log replay |
//! | `slots.rs` | subscriber slots: the slab, the writer state, who owns the socket |
//! | `inbox.rs` | the bus loop: take sequenced events, record them, wake subscribers |
//! | `writer.rs` | a subscriber's writer: gather what is due, send it now; a task for the rest |
//! | `sweep.rs` | the periodic sweep (heartbeats, timeouts, token expiry, lag) and hang-ups |
//! | `handshakes.rs` | connections still reading a request, for the sweep's timeouts |
//! | `drain.rs` | SIGTERM: tell every subscriber, close, and the worker-local `Signal` |
//! | `dashboard.rs` | `--dashboard`: each worker's board, worker 0's stats snapshot once a second |
//!
//! Tasks on a worker: the accept loop, the bus loop, the hang-up watcher (one poll on an epoll
//! set of idle subscribers), the sweep (every `SWEEP_INTERVAL` (250 ms)), one task per
//! connection while it is in its handshake (or is a publisher), and one writer task per
//! subscriber whose socket is full while it has bytes due (a socket with room is written
//! without one).

mod accept;
mod conn;
mod dashboard;
mod drain;
mod handshakes;
mod inbox;
mod publish;
mod resume;
mod routes;
mod slots;
mod stream;
mod sweep;
mod writer;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

use crate::bus::{DoorbellRx, Endpoint, Wiring};
use crate::channel::{ChannelIdx, Channels};
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::WorkerMetrics;
use crate::per_ip::PerIpCounter;
use crate::sse::id::EventId;
use crate::sys::{Epoll, FrameVec, Outgoing, SendRing};

/// State every worker reads, set up once by the server.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    /// The configuration resolved into the limits workers compare against.
    pub limits: Limits,
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
    /// Cluster mode: the sequencer is the shared log (Redis Streams).
    pub cluster: bool,
    /// The instance has read the log and may answer streams (always true when embedded).
    pub ready: Arc<AtomicBool>,
    /// A channel's history starts above this id (the boot id; in cluster mode, the first entry
    /// of a trimmed log): resumes from below it need the log, or a reset.
    pub history_floor: EventId,
    /// What each worker posts for the dashboard's snapshot (used with `--dashboard`).
    pub board: crate::web::stats::Board,
    /// `--trusted-proxy`: peers whose forwarding headers name the client.
    pub proxies: crate::http::forwarded::TrustedProxies,
}

/// The per-worker state behind one `RefCell`; never borrowed across an await.
struct State {
    subscribers: slots::Slots,
    channels: Channels,
    /// The newest event id this worker has seen.
    newest: EventId,
    /// Ids at or below this belong to an earlier run of the server (or a lost log).
    boot: EventId,
    handshakes: handshakes::Handshakes,
    draining: bool,
}

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    metrics: Arc<WorkerMetrics>,
    state: RefCell<State>,
    bus: RefCell<Endpoint>,
    /// Idle subscribers' sockets, watched for hang-ups by one poll.
    epoll: Epoll,
    started: Instant,
    next_client: Cell<u64>,
    drain_signal: drain::Signal,
    /// The fan-out's per-socket sends of one burst, reused (see `writer.rs`).
    outgoing: Cell<Vec<Outgoing>>,
    /// Emptied frame lists, reused.
    spare_lists: RefCell<Vec<FrameVec>>,
    /// This worker's fan-out ring (none with the epoll driver, or where it cannot be set up:
    /// a system call per socket then).
    ring: RefCell<Option<SendRing>>,
    /// Channels with events recorded whose subscribers are written to by the next bus pump
    /// (see `inbox.rs`).
    wake_later: Cell<Vec<ChannelIdx>>,
}

/// Run worker `index` until it has drained. Blocks the calling thread.
pub fn run(
    index: usize,
    shared: Arc<Shared>,
    wiring: Wiring,
    bell_rx: DoorbellRx,
    listener: std::net::TcpListener,
    admin: Option<std::net::TcpListener>,
) -> std::io::Result<()> {
    let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(32768)
        .build()?;
    runtime.block_on(async move {
        let listener = monoio::net::TcpListener::from_std(listener)?;
        let admin = admin.map(monoio::net::TcpListener::from_std).transpose()?;
        let bell = bell_rx.into_stream()?;
        let metrics = shared.metrics.get(index).cloned().unwrap_or_default();
        let worker = Rc::new(Worker {
            index,
            metrics,
            state: RefCell::new(State {
                subscribers: slots::Slots::default(),
                channels: Channels::new(shared.limits.retention, shared.history_floor),
                newest: shared.boot,
                boot: shared.boot,
                handshakes: handshakes::Handshakes::default(),
                draining: false,
            }),
            bus: RefCell::new(Endpoint::new(wiring)),
            epoll: Epoll::new()?,
            started: Instant::now(),
            next_client: Cell::new(1),
            drain_signal: drain::Signal::default(),
            outgoing: Cell::new(Vec::new()),
            spare_lists: RefCell::new(Vec::new()),
            // Only with the io_uring driver: the epoll driver means io_uring is not to be
            // used here (not allowed, or not wanted).
            ring: RefCell::new(if monoio::utils::detect_uring() {
                SendRing::new().ok()
            } else {
                None
            }),
            wake_later: Cell::new(Vec::new()),
            shared,
        });
        monoio::spawn(Rc::clone(&worker).bus_loop(bell));
        monoio::spawn(Rc::clone(&worker).hangup_loop());
        monoio::spawn(Rc::clone(&worker).sweep_loop());
        if worker.shared.config.dashboard {
            monoio::spawn(Rc::clone(&worker).dashboard_loop());
        }
        if let Some(admin) = admin {
            monoio::spawn(Rc::clone(&worker).accept_loop(admin, accept::Side::Admin));
        }
        Rc::clone(&worker)
            .accept_loop(listener, accept::Side::Public)
            .await;
        worker.finish_drain().await;
        Ok(())
    })
}

impl Worker {
    fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Seconds since this worker started (the coarse clock of the sweep).
    fn now_secs(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Milliseconds since this worker started.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Let every other ready task run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx: &mut std::task::Context<'_>| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
