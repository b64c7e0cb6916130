//! Start the workers (one pinned thread each, each with its own SO_REUSEPORT listener), wait for
//! SIGTERM/SIGINT, drain, exit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::bus;
use crate::cluster::sequencer::RedisSequencer;
use crate::config::Config;
use crate::metrics::WorkerMetrics;
use crate::sse::id::{unix_ms_now, EventId};
use crate::sys;
use crate::worker::{self, Shared};

/// A server whose workers are running.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    doorbells: Arc<[bus::Doorbell]>,
    threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    /// Cluster mode: the Redis Streams sequencer's threads.
    sequencer: Option<RedisSequencer>,
}

/// Listen backlog of each worker's socket.
const BACKLOG: i32 = 4096;

fn listener(addr: SocketAddr, send_buffer_bytes: usize) -> std::io::Result<std::net::TcpListener> {
    sys::reuseport_listener(addr, BACKLOG, send_buffer_bytes)
}

impl Server {
    /// Bind every worker's listener and start the workers.
    pub fn start(config: Config) -> std::io::Result<Server> {
        Server::start_after(config, None, |_| {})
    }

    /// Like [`Server::start`], but a hand-over: bind the listeners (new connections wait in
    /// their backlog), wait for the process `predecessor` — the old pushcore on the address —
    /// to exit, and only then take a boot id and start serving. Without the shared log, ids
    /// come from the clock: taken after the old process is gone, this server's boot id is above
    /// every id the old one issued, so a client resuming with one of those gets an explicit
    /// `reset` (`previous-run`), never a resume that silently skips events.
    /// `on_bound` is called with the public address once the server serves — or, for a
    /// hand-over, once it is bound, before the wait (the address is taken then).
    pub fn start_after(
        config: Config,
        predecessor: Option<u32>,
        on_bound: impl FnOnce(SocketAddr),
    ) -> std::io::Result<Server> {
        let auth = config
            .auth
            .build()
            .map_err(|msg| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))?;
        let workers = config.worker_count();
        let mut listeners = Vec::with_capacity(workers);
        let sndbuf = usize::try_from(config.sndbuf_bytes).unwrap_or(usize::MAX);
        let first = listener(config.listen, sndbuf)?;
        let local_addr = first.local_addr()?;
        listeners.push(first);
        for _ in 1..workers {
            listeners.push(listener(local_addr, sndbuf)?);
        }
        // The admin listener, served by worker 0 (SO_REUSEPORT too, for --handover).
        let mut admin = match config.admin_listen {
            Some(addr) => Some(listener(addr, sndbuf)?),
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
        let mut on_bound = Some(on_bound);
        if predecessor.is_some() {
            if let Some(f) = on_bound.take() {
                f(local_addr);
            }
        }
        crate::metrics::mark_start();
        let cluster = config
            .cluster
            .validate()
            .map_err(|msg| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))?;
        if let (Some(pid), None) = (predecessor, &cluster) {
            tracing::info!(
                pid,
                "hand-over: listening; serving once PID {pid} has exited (send it SIGTERM)"
            );
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::info!(pid, "hand-over: PID {pid} is gone; serving");
        }
        // Embedded, ids at or below the boot id are an earlier run's. In cluster mode the log
        // outlives any instance: no id is another run's (a lost log is announced instead).
        let boot = match cluster {
            Some(_) => EventId::ZERO,
            None => EventId::new(unix_ms_now(), 0),
        };
        let topology = match cluster {
            Some(_) => bus::Topology::External,
            None => bus::Topology::Embedded {
                floor: boot,
                gzip: config.gzip,
            },
        };
        let bus::Built {
            endpoints,
            doorbells,
            hub,
        } = bus::build(workers, topology)?;
        let ready = Arc::new(AtomicBool::new(cluster.is_none()));
        let (sequencer, history_floor) = match (&cluster, hub) {
            (Some(settings), Some((hub, hub_rx))) => {
                let (seq, start) =
                    RedisSequencer::start(settings, hub, hub_rx, Arc::clone(&ready), config.gzip)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                (Some(seq), start.history_floor)
            }
            _ => (None, boot),
        };
        let metrics: Vec<Arc<WorkerMetrics>> = (0..workers)
            .map(|_| Arc::new(WorkerMetrics::default()))
            .collect();
        let shared = Arc::new(Shared {
            limits: crate::limits::Limits::from_config(&config),
            config: config.clone(),
            metrics,
            open_connections: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            boot,
            auth,
            cluster: sequencer.is_some(),
            ready,
            history_floor,
            board: crate::web::stats::Board::new(workers),
            proxies: config.trusted_proxies(),
            per_ip: crate::per_ip::PerIpCounter::new(
                u32::try_from(config.max_connections_per_ip).unwrap_or(u32::MAX),
            ),
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut threads = Vec::with_capacity(workers);
        for ((index, (endpoint, bell)), listener) in
            endpoints.into_iter().enumerate().zip(listeners)
        {
            let shared = Arc::clone(&shared);
            let admin_listener = if index == 0 { admin.take() } else { None };
            let pin = (!config.no_pin)
                .then(|| (usize::try_from(config.cpu_base).unwrap_or(0) + index) % cores);
            let handle = std::thread::Builder::new()
                .name(format!("pushcore-w{index}"))
                .spawn(move || {
                    if let Some(cpu) = pin {
                        if let Err(e) = sys::pin_to_cpu(cpu) {
                            tracing::warn!("worker {index}: cannot pin to cpu {cpu}: {e}");
                        }
                    }
                    worker::run(index, shared, endpoint, bell, listener, admin_listener)
                })?;
            threads.push(handle);
        }
        if let Some(f) = on_bound.take() {
            f(local_addr);
        }
        Ok(Server {
            shared,
            doorbells,
            threads,
            local_addr,
            admin_addr,
            sequencer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address (`--admin-listen`), if any.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Every worker's counters (for the log's failure summaries).
    pub fn metrics(&self) -> Vec<Arc<WorkerMetrics>> {
        self.shared.metrics.clone()
    }

    /// Begin the drain on every worker.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        for bell in self.doorbells.iter() {
            bell.arm();
            bell.ring();
        }
    }

    /// Wait for the workers to finish; the first worker error, if any.
    pub fn join(self) -> std::io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
                Err(_) => {
                    if result.is_ok() {
                        result = Err(std::io::Error::other("a worker thread panicked"));
                    }
                }
            }
        }
        // After the workers: publishes still waiting for Redis during the drain are answered.
        if let Some(seq) = self.sequencer {
            seq.stop();
        }
        result
    }
}

/// Who holds `addr`, waiting out sockets no process owns any more: a process that just exited
/// on io_uring leaves its listeners in the kernel for some milliseconds while its rings are torn
/// down, so a restart right after it must not be refused. A holder whose PID is visible is
/// answered at once; an ownerless one is probed again for up to a second.
fn probe_settled(addr: SocketAddr) -> std::io::Result<Option<crate::ops::owner::Holder>> {
    let mut found = crate::ops::owner::probe(addr)?;
    for _ in 0..50 {
        match &found {
            Some(holder) if holder.pid.is_none() => {
                std::thread::sleep(Duration::from_millis(20));
                found = crate::ops::owner::probe(addr)?;
            }
            _ => break,
        }
    }
    Ok(found)
}

/// `pushcore serve`: run until SIGTERM/SIGINT, then drain. Returns the process exit code.
/// `effective` is the effective configuration for the start line (secrets already redacted,
/// see [`crate::config::cli::effective`]).
pub fn serve(config: Config, effective: &str) -> i32 {
    use crate::ops::{self, log::fatal};
    let format = config.log_format;
    // A bad key or CORS setting is a bad flag: one line naming it, exit 2.
    if let Err(msg) = config
        .validate()
        .and_then(|()| config.auth.build().map(|_| ()))
    {
        fatal(format, &msg);
        return 2;
    }
    if let Err(e) = sys::block_termination_signals() {
        fatal(format, &format!("cannot block signals: {e}"));
        return 1;
    }
    // After the signal mask: the log thread inherits it.
    let _logging = match ops::log::init(config.log_level, format, config.access_log) {
        Ok(logging) => logging,
        Err(msg) => {
            fatal(format, &msg);
            return 1;
        }
    };
    // One owner per address: a second pushcore would silently split the clients with the first.
    let mut predecessor = None;
    for addr in std::iter::once(config.listen).chain(config.admin_listen) {
        match probe_settled(addr) {
            Ok(None) => {}
            Ok(Some(holder)) if config.handover_allowed() => {
                tracing::info!(
                    listen = %addr,
                    holder = %holder,
                    "hand-over: joining {addr}, served by {holder}; send it SIGTERM to drain it"
                );
                // Without the shared log this server must not issue ids before the old one
                // has stopped (see Server::start_after); with it, both serve at once.
                if config.cluster.redis_url.is_none() && addr == config.listen {
                    predecessor = holder.pid;
                }
            }
            Ok(Some(holder)) => {
                tracing::error!(
                    listen = %addr,
                    pid = holder.pid,
                    "{}",
                    ops::owner::refusal(addr, &holder)
                );
                return 1;
            }
            Err(e) => {
                tracing::error!(listen = %addr, "cannot use {addr}: {e}");
                return 1;
            }
        }
    }
    let fd_limit = match sys::raise_nofile_limit() {
        Ok(limit) => {
            if limit
                < config
                    .max_connections
                    .saturating_add(ops::limits::RESERVED_FDS)
            {
                tracing::warn!(
                    fd_limit = limit,
                    max_connections = config.max_connections,
                    "{}",
                    ops::limits::raise_limit_advice(limit, config.max_connections)
                );
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(
                "cannot raise the open-file limit: {e}; see `ulimit -n` and LimitNOFILE="
            );
            None
        }
    };
    let drain_timeout = Duration::from_secs(config.drain_timeout_secs);
    let workers = config.worker_count();
    let driver = ops::driver_name();
    let max_connections = config.max_connections;
    let listen = config.listen;
    let server = match Server::start_after(config, predecessor, |addr| {
        ops::log::print_listening(format, addr, workers)
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot start on {listen}: {e}");
            return 1;
        }
    };
    tracing::info!(
        addr = %server.local_addr(),
        workers,
        driver,
        fd_limit,
        max_connections,
        config = effective,
        "pushcore {} started: {workers} workers on {driver}, open-file limit {}",
        env!("CARGO_PKG_VERSION"),
        fd_limit.map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
    );
    if let Some(admin) = server.admin_addr() {
        tracing::info!(admin = %admin, "operations paths (/metrics, /healthz, /readyz, /dashboard) on http://{admin} only");
    }
    let counters = server.metrics();
    let reporter =
        ops::failures::FailureReporter::spawn(ops::failures::DEFAULT_INTERVAL, move || {
            ops::failures::FailureCounts::from_metrics(&counters)
        });
    let sig = sys::wait_for_termination();
    let started = std::time::Instant::now();
    tracing::info!(
        signal = sig,
        drain_timeout_secs = drain_timeout.as_secs(),
        "signal {sig}: draining (up to {} s)",
        drain_timeout.as_secs()
    );
    server.drain();
    let joined = server.join();
    if let Ok(reporter) = reporter {
        reporter.stop();
    }
    match joined {
        Ok(()) => {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(drain_secs = secs, "drained in {secs:.2} s; exiting");
            0
        }
        Err(e) => {
            tracing::error!("a worker failed: {e}");
            1
        }
    }
}
