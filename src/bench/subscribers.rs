//! The subscribers of an idle or fanout run: generator threads in this process (one monoio
//! runtime each), or, with `--procs`, child processes that each hold a slice of them
//! ([`super::procs`]). Every subscriber has a tally from the start, so one that never connects
//! or is cut off counts its missing events as lost.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::client::{connect, read_events, source_addr, subscribe_request};
use super::procs::Children;
use super::stats::{json_u64, Latencies, Tally, Timeline, Totals};
use super::target::{now_micros, HttpUrl};

/// Most error messages kept per report.
const MAX_ERRORS: usize = 20;

/// Counters the subscribers share with the coordinator (and its progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// Streams whose response head arrived.
    pub opened: AtomicU64,
    /// Subscribers that never opened: connect error, refused status, closed before the head.
    pub refused: AtomicU64,
    /// Subscribers whose stream ended, whatever the reason.
    pub finished: AtomicU64,
    /// Subscribers whose stream ended in an error before every event arrived (refused included).
    pub failed: AtomicU64,
    /// Unique deliveries so far (flushed every 20 ms).
    pub delivered: AtomicU64,
    /// Set by the coordinator: stop reading, report.
    pub stop: AtomicBool,
}

impl Progress {
    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What subscribers received.
#[derive(Debug, Default)]
pub struct Received {
    pub totals: Totals,
    /// From each event's actual send (`ts`) to its arrival.
    pub latencies: Latencies,
    /// From each event's scheduled publish time (`due`) to its arrival: what a publisher that
    /// a slow server holds back cannot hide (no coordinated omission).
    pub scheduled: Latencies,
    /// Deliveries per 100 ms.
    pub deliveries: Timeline,
    /// Stream opens per 100 ms.
    pub opens: Timeline,
    pub heartbeats: u64,
    pub errors: Vec<String>,
}

impl Received {
    pub fn merge(&mut self, other: Received) {
        self.totals.merge(&other.totals);
        self.latencies.extend(&other.latencies);
        self.scheduled.extend(&other.scheduled);
        self.deliveries.merge(&other.deliveries);
        self.opens.merge(&other.opens);
        self.heartbeats += other.heartbeats;
        let room = MAX_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        }
    }
}

/// How each generator thread connects and reads.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where subscriber i connects: `urls[i % urls.len()]` (several instances of a cluster).
    pub urls: Vec<HttpUrl>,
    /// Numbered events each subscriber expects (fanout), or none (idle).
    pub events: Option<u64>,
    pub threads: usize,
    /// Pin generator thread i to CPU (cpu + i).
    pub cpu: Option<usize>,
    /// Loopback source addresses to spread over.
    pub spread: usize,
    /// Most handshakes in flight per thread.
    pub window: usize,
}

/// Where the subscribers run.
#[derive(Debug)]
pub enum Subscribers {
    Threads(Vec<JoinHandle<Received>>),
    Procs(Children),
}

impl Subscribers {
    /// Start subscribers `conns` (global indices, which pick source addresses) in this process.
    pub fn threads(plan: &Plan, conns: Vec<usize>, progress: &Arc<Progress>) -> Subscribers {
        let threads = plan.threads.max(1);
        let handles = (0..threads)
            .map(|t| {
                let mine: Vec<usize> = conns.iter().copied().skip(t).step_by(threads).collect();
                let plan = plan.clone();
                let progress = Arc::clone(progress);
                std::thread::spawn(move || read_thread(t, mine, plan, progress))
            })
            .collect();
        Subscribers::Threads(handles)
    }

    /// CPU time the generator has used so far: this process and its children.
    pub fn cpu_micros(&self) -> u64 {
        let own = crate::sys::process_cpu_micros();
        match self {
            Subscribers::Threads(_) => own,
            Subscribers::Procs(children) => own + children.cpu_micros(),
        }
    }

    /// Stop every subscriber and collect what they received.
    pub fn stop(self, progress: &Progress) -> Received {
        progress.stop.store(true, Ordering::Relaxed);
        let mut all = Received::default();
        match self {
            Subscribers::Threads(handles) => {
                for h in handles {
                    match h.join() {
                        Ok(r) => all.merge(r),
                        Err(_) => all.error("a generator thread panicked".into()),
                    }
                }
            }
            Subscribers::Procs(children) => all = children.stop(),
        }
        all
    }
}

/// One generator thread: open `conns` streams, at most `window` handshakes at a time, read
/// them until each has every event, or until `stop`.
fn read_thread(t: usize, conns: Vec<usize>, plan: Plan, progress: Arc<Progress>) -> Received {
    if let Some(cpu) = plan.cpu {
        let _ = crate::sys::pin_to_cpu(cpu + t);
    }
    let shared = Rc::new(RefCell::new(Received::default()));
    // Tallies live outside the reader tasks: a task dropped at `stop` still counts.
    let tallies: Vec<Rc<RefCell<Tally>>> = match plan.events {
        Some(m) => conns
            .iter()
            .map(|_| Rc::new(RefCell::new(Tally::new(m))))
            .collect(),
        None => Vec::new(),
    };
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(32768)
        .build();
    match runtime {
        Ok(mut rt) => rt.block_on(read_all(
            conns,
            &plan,
            tallies.clone(),
            Rc::clone(&shared),
            progress,
        )),
        Err(e) => shared.borrow_mut().error(format!("runtime: {e}")),
    }
    // The runtime is gone: its tasks and sockets are dropped, the tallies are ours alone.
    let mut out = std::mem::take(&mut *shared.borrow_mut());
    for t in &tallies {
        out.totals.add(&t.borrow());
    }
    out
}

async fn read_all(
    conns: Vec<usize>,
    plan: &Plan,
    tallies: Vec<Rc<RefCell<Tally>>>,
    shared: Rc<RefCell<Received>>,
    progress: Arc<Progress>,
) {
    let n = conns.len() as u64;
    let window = plan.window.max(1) as u64;
    // Readers that ended, and handshakes that completed or failed (the rest are in flight).
    let done = Rc::new(Cell::new(0u64));
    let settled = Rc::new(Cell::new(0u64));
    // Deliveries not yet added to `progress.delivered`.
    let delivered = Rc::new(Cell::new(0u64));
    let flush = |delivered: &Cell<u64>| {
        progress
            .delivered
            .fetch_add(delivered.replace(0), Ordering::Relaxed);
    };
    for (k, i) in conns.into_iter().enumerate() {
        if progress.stopped() {
            break;
        }
        // Clients arrive, they do not all connect in the same instant.
        while k as u64 >= settled.get() + window && !progress.stopped() {
            monoio::time::sleep(Duration::from_millis(1)).await;
            flush(&delivered);
        }
        let refuse = |e: String| {
            progress.refused.fetch_add(1, Ordering::Relaxed);
            progress.failed.fetch_add(1, Ordering::Relaxed);
            progress.finished.fetch_add(1, Ordering::Relaxed);
            done.set(done.get() + 1);
            settled.set(settled.get() + 1);
            shared.borrow_mut().error(e);
        };
        let Some(url) = plan.urls.get(i % plan.urls.len().max(1)) else {
            refuse("no subscribe URL".into());
            continue;
        };
        let source = source_addr(i, plan.spread, &url.addr);
        let socket = connect(url.addr, source, Duration::from_secs(5))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .and_then(monoio::net::TcpStream::from_std);
        let mut stream = match socket {
            Ok(s) => s,
            Err(e) => {
                refuse(format!("connect: {e}"));
                continue;
            }
        };
        let request = subscribe_request(url, None);
        let tally = tallies.get(k).cloned();
        let (progress, shared) = (Arc::clone(&progress), Rc::clone(&shared));
        let (done, settled, delivered) =
            (Rc::clone(&done), Rc::clone(&settled), Rc::clone(&delivered));
        monoio::spawn(async move {
            let opened = Cell::new(false);
            let on_open = || {
                progress.opened.fetch_add(1, Ordering::Relaxed);
                settled.set(settled.get() + 1);
                opened.set(true);
                shared.borrow_mut().opens.record(now_micros());
            };
            let on_comments = |n| shared.borrow_mut().heartbeats += n;
            let (_, end) = read_events(
                &mut stream,
                request,
                on_open,
                |ev| {
                    if progress.stopped() {
                        return false;
                    }
                    let Some(tally) = &tally else { return true };
                    let Some(seq) = json_u64(&ev.data, "seq") else {
                        return true;
                    };
                    let mut t = tally.borrow_mut();
                    let unique = t.unique;
                    t.record(seq);
                    if t.unique > unique {
                        let now = now_micros();
                        let mut r = shared.borrow_mut();
                        r.deliveries.record(now);
                        if let Some(sent) = json_u64(&ev.data, "ts") {
                            r.latencies.push(now.saturating_sub(sent));
                        }
                        if let Some(due) = json_u64(&ev.data, "due") {
                            r.scheduled.push(now.saturating_sub(due));
                        }
                        delivered.set(delivered.get() + 1);
                    }
                    t.unique < t.events()
                },
                on_comments,
            )
            .await;
            let mut r = shared.borrow_mut();
            let complete = tally
                .as_ref()
                .is_some_and(|t| t.borrow().unique == t.borrow().events());
            if let Err(e) = end {
                if !complete && !progress.stopped() {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    if !opened.get() {
                        progress.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    r.error(e);
                }
            }
            if !opened.get() {
                settled.set(settled.get() + 1);
            }
            progress.finished.fetch_add(1, Ordering::Relaxed);
            done.set(done.get() + 1);
        });
    }
    while done.get() < n && !progress.stopped() {
        monoio::time::sleep(Duration::from_millis(20)).await;
        flush(&delivered);
    }
    flush(&delivered);
}
