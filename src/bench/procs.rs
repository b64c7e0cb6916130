//! `--procs N`: subscribers split over N child processes of this binary, for runs that need
//! more sockets than one process may open. Each child is this command again plus a hidden
//! `--proc-slice k/N`; it holds subscribers `i` with `i % N == k`, writes its counters as a
//! JSON line every 100 ms and its [`Received`] as a last line on stdout, and stops when its
//! stdin closes (so it also stops when the parent dies).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::stats::{sample_process, Latencies, Timeline, Totals};
use super::subscribers::{Plan, Progress, Received, Subscribers};

/// Which share of the subscribers a child holds: those with `i % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub index: usize,
    pub count: usize,
}

impl Slice {
    /// Parse `k/N` (the hidden `--proc-slice` value).
    pub fn parse(s: &str) -> Result<Slice, String> {
        let (k, n) = s.split_once('/').ok_or("expected k/N")?;
        let index = k.parse().map_err(|_| "expected k/N")?;
        let count: usize = n.parse().map_err(|_| "expected k/N")?;
        if index >= count {
            return Err("expected k < N".into());
        }
        Ok(Slice { index, count })
    }

    /// This slice's subscribers out of `conns`.
    pub fn members(&self, conns: usize) -> Vec<usize> {
        (self.index..conns).step_by(self.count.max(1)).collect()
    }
}

/// A child's counters: opened, refused, finished, failed, delivered.
type Counters = [u64; 5];

/// One line a child writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Progress(Counters),
    Received(WireReceived),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WireReceived {
    totals: Totals,
    /// [`Latencies::to_runs`].
    latency_runs: Vec<u64>,
    /// [`Latencies::to_runs`] of the latencies from schedule.
    #[serde(default)]
    scheduled_runs: Vec<u64>,
    deliveries: Timeline,
    opens: Timeline,
    heartbeats: u64,
    errors: Vec<String>,
}

fn counters(p: &Progress) -> Counters {
    [
        p.get(&p.opened),
        p.get(&p.refused),
        p.get(&p.finished),
        p.get(&p.failed),
        p.get(&p.delivered),
    ]
}

/// The child side: hold this slice's subscribers until stdin closes, every subscriber has
/// ended, or `timeout`; report on stdout. Returns the exit code.
pub fn run_slice(plan: &Plan, slice: Slice, conns: usize, timeout: Duration) -> i32 {
    let progress = Arc::new(Progress::default());
    let watcher = Arc::clone(&progress);
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while let Ok(1..) = std::io::stdin().read(&mut sink) {}
        watcher.stop.store(true, Ordering::Relaxed);
    });
    let mine = slice.members(conns);
    let n = mine.len() as u64;
    let subscribers = Subscribers::threads(plan, mine, &progress);
    let deadline = Instant::now() + timeout;
    let mut out = std::io::stdout().lock();
    let mut say = |line: &Line| {
        serde_json::to_string(line)
            .ok()
            .is_some_and(|s| writeln!(out, "{s}").and_then(|_| out.flush()).is_ok())
    };
    while !progress.stopped() && progress.get(&progress.finished) < n && Instant::now() < deadline {
        if !say(&Line::Progress(counters(&progress))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut received = subscribers.stop(&progress);
    say(&Line::Progress(counters(&progress)));
    let wire = WireReceived {
        totals: received.totals,
        latency_runs: received.latencies.to_runs(),
        scheduled_runs: received.scheduled.to_runs(),
        deliveries: received.deliveries,
        opens: received.opens,
        heartbeats: received.heartbeats,
        errors: received.errors,
    };
    if say(&Line::Received(wire)) {
        0
    } else {
        1
    }
}

/// The parent side: the running children.
#[derive(Debug)]
pub struct Children {
    procs: Vec<Child>,
    listeners: Vec<JoinHandle<Received>>,
}

impl Children {
    /// Re-run this command `count` times with `--proc-slice k/count`; their counters are added
    /// to `progress` as they arrive.
    pub fn spawn(
        count: usize,
        conns: usize,
        events: Option<u64>,
        progress: &Arc<Progress>,
    ) -> Result<Children, String> {
        let exe = std::env::current_exe().map_err(|e| format!("--procs: {e}"))?;
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        let mut children = Children {
            procs: Vec::new(),
            listeners: Vec::new(),
        };
        for index in 0..count {
            let spawned = Command::new(&exe)
                .args(&args)
                .arg("--proc-slice")
                .arg(format!("{index}/{count}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    children.stop();
                    return Err(format!("--procs: cannot start a child: {e}"));
                }
            };
            let members = Slice { index, count }.members(conns).len() as u64;
            let stdout = child.stdout.take();
            let progress = Arc::clone(progress);
            children.listeners.push(std::thread::spawn(move || {
                listen(stdout, members, events, &progress)
            }));
            children.procs.push(child);
        }
        Ok(children)
    }

    /// CPU time the children have used so far.
    pub fn cpu_micros(&self) -> u64 {
        self.procs
            .iter()
            .filter_map(|c| sample_process(c.id()))
            .map(|s| s.cpu_micros)
            .sum()
    }

    /// Close the children's stdin (their signal to stop) and merge their reports; a child that
    /// has not reported within 10 s is killed and its subscribers count as lost.
    pub fn stop(mut self) -> Received {
        for c in &mut self.procs {
            drop(c.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.listeners.iter().any(|l| !l.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for (c, l) in self.procs.iter_mut().zip(&self.listeners) {
            if !l.is_finished() {
                let _ = c.kill();
            }
        }
        let mut all = Received::default();
        for l in self.listeners {
            match l.join() {
                Ok(r) => all.merge(r),
                Err(_) => all.errors.push("a child listener panicked".into()),
            }
        }
        for c in &mut self.procs {
            let _ = c.wait();
        }
        all
    }
}

/// Read one child's lines until it ends. A child that ends without a report counts all of its
/// `members` as failed, and their events as lost.
fn listen(
    stdout: Option<std::process::ChildStdout>,
    members: u64,
    events: Option<u64>,
    progress: &Progress,
) -> Received {
    let mut seen: Counters = [0; 5];
    let fields: [&AtomicU64; 5] = [
        &progress.opened,
        &progress.refused,
        &progress.finished,
        &progress.failed,
        &progress.delivered,
    ];
    let add = |now: Counters, seen: &mut Counters| {
        for ((field, new), old) in fields.iter().zip(now).zip(seen.iter_mut()) {
            field.fetch_add(new.saturating_sub(*old), Ordering::Relaxed);
            *old = (*old).max(new);
        }
    };
    if let Some(stdout) = stdout {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Line>(&line) {
                Ok(Line::Progress(now)) => add(now, &mut seen),
                Ok(Line::Received(w)) => {
                    return Received {
                        totals: w.totals,
                        latencies: Latencies::from_runs(&w.latency_runs),
                        scheduled: Latencies::from_runs(&w.scheduled_runs),
                        deliveries: w.deliveries,
                        opens: w.opens,
                        heartbeats: w.heartbeats,
                        errors: w.errors,
                    }
                }
                Err(_) => {}
            }
        }
    }
    let [opened, refused, finished, failed, delivered] = seen;
    let never_opened = members.saturating_sub(opened + refused);
    let unfinished = members.saturating_sub(finished);
    add(
        [
            opened,
            refused + never_opened,
            finished + unfinished,
            failed + unfinished,
            delivered,
        ],
        &mut seen,
    );
    let expected = members * events.unwrap_or(0);
    Received {
        totals: Totals {
            expected,
            lost: expected,
            ..Totals::default()
        },
        errors: vec!["a generator child process ended without a report".into()],
        ..Received::default()
    }
}
