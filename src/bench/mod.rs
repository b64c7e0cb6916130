//! `pushcore bench`: a load generator for SSE servers (pushcore, nchan, Mercure, …).
//!
//! Thread-per-core on monoio like the server; client sockets spread over source addresses
//! 127.0.0.2… so ephemeral ports do not run out, and over child processes (`--procs`) when one
//! process may not open enough sockets; streams parsed per the WHATWG rules ([`sse`]); verdicts
//! (lost, duplicated, out of order) from per-subscriber tallies ([`stats`]). With `--pid`, the
//! target's CPU time and memory are read from /proc. Output: a progress bar on a terminal
//! ([`meter`]), a human summary, one final JSON line on stdout, and `--report` ([`report`]).

pub mod client;
pub mod cores;
pub mod meter;
pub mod procs;
pub mod report;
pub mod sse;
pub mod stats;
pub mod storm;
pub mod subscribers;
pub mod target;
pub mod throughput;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;

use client::{connect, open_stream, source_addr, subscribe_request, Publisher};
use cores::{KernelMemory, ServerMeter};
use meter::Meter;
use procs::{Children, Slice};
use report::{Figure, Series};
use stats::{json_u64, Latencies, Timeline};
use subscribers::{Plan, Progress, Subscribers};
use target::{fill, now_micros, parse_url, payload, HttpUrl};

/// `pushcore bench <scenario>`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand, Clone, Debug)]
pub enum Scenario {
    /// Open N subscribers and hold them: connect rate, failures, server memory per connection.
    Idle(Common),
    /// N subscribers on one channel, M events at R/s: delivery verdicts, latency, CPU per delivery.
    Fanout(Common),
    /// Receive K events, disconnect, miss J, resume with Last-Event-ID: pass/fail.
    Replay(Common),
    /// Subscribe/close loops with up to C at once: opens per second, server CPU per handshake.
    Churn(Common),
    /// N subscribers receive K events, all disconnect, J are published, all reconnect with
    /// Last-Event-ID: time until all are resumed, time to first replayed event, CPU per resume.
    Storm(Common),
    /// C publishers post batches of B events as fast as acknowledged for D seconds: events/s
    /// sustained, round trips, CPU per event of every --pid process (instances, Redis).
    Publish(Common),
}

impl Scenario {
    fn parts(&self) -> (&Common, &'static str) {
        match self {
            Scenario::Idle(c) => (c, "idle"),
            Scenario::Fanout(c) => (c, "fanout"),
            Scenario::Replay(c) => (c, "replay"),
            Scenario::Churn(c) => (c, "churn"),
            Scenario::Storm(c) => (c, "storm"),
            Scenario::Publish(c) => (c, "publish"),
        }
    }
}

/// Flags shared by every scenario.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Subscribers (idle, fanout, storm).
    #[arg(long, default_value_t = 100)]
    pub conns: usize,
    /// Events to publish (fanout; replay, storm: J, the events missed while away).
    #[arg(long, default_value_t = 100)]
    pub events: u64,
    /// Publish rate, events per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Size of each event's JSON payload in bytes.
    #[arg(long = "payload-bytes", default_value_t = 64)]
    pub payload_bytes: usize,
    /// Subscribers send `Accept-Encoding: gzip` and inflate a gzip stream (against a server
    /// started with `--gzip`).
    #[arg(long = "gzip")]
    pub gzip: bool,
    /// PID of the server, to report its CPU time and memory (and, without --server-cpus, the
    /// CPUs it may run on, from its threads' affinity). Repeatable for a cluster (each
    /// instance, and Redis): the figures are their sum, and each process is reported too.
    #[arg(long, action = clap::ArgAction::Append)]
    pub pid: Vec<u32>,
    /// The server's CPUs (e.g. 0 or 0-1): charge it with all their busy time (their time less
    /// their idle and iowait time in /proc/stat), kernel work on its behalf included.
    #[arg(long = "server-cpus", value_name = "LIST")]
    pub server_cpus: Option<String>,
    /// Hard limit on the whole run, in seconds: a run always ends.
    #[arg(long = "timeout", default_value_t = 120)]
    pub timeout_secs: u64,
    /// Also write the run to FILE: .svg (latency percentiles and a timeline), .html (the same
    /// with the summary) or .json (the JSON line).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// No progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long, short)]
    pub quiet: bool,
    /// Subscribe URL; `{channel}` is replaced. Repeatable: idle and fanout spread their
    /// subscribers round-robin over the URLs (subscriber i uses URL i mod n; e.g. one per
    /// instance of a cluster); replay resumes on the second URL; churn and storm use the first.
    #[arg(
        long = "sub-url",
        action = clap::ArgAction::Append,
        default_value = "http://127.0.0.1:8080/events/stream?channels={channel}"
    )]
    pub sub_url: Vec<String>,
    /// Publish URL (any instance of a cluster); `{channel}` is replaced. Repeatable for
    /// publish (its publishers spread round-robin); the other scenarios use the first.
    #[arg(
        long = "pub-url",
        action = clap::ArgAction::Append,
        default_value = "http://127.0.0.1:8080/events/publish"
    )]
    pub pub_url: Vec<String>,
    /// Publish: events per publish request (a JSON array when above 1; at most 1000).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Publish body; `{channel}` and `{payload}` (a JSON object) are replaced.
    #[arg(
        long = "pub-body",
        default_value = r#"{"channel":"{channel}","eventType":"bench","data":{payload}}"#
    )]
    pub pub_body: String,
    #[arg(long = "pub-content-type", default_value = "application/json")]
    pub pub_content_type: String,
    /// Channel name used in the templates.
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Generator threads per process (one monoio runtime each).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Idle, fanout: split the subscribers over N child processes (beyond one process's
    /// open-file limit).
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// A child of `--procs`: hold slice k of N (internal).
    #[arg(long = "proc-slice", hide = true, value_parser = Slice::parse)]
    pub proc_slice: Option<Slice>,
    /// Pin generator thread i to CPU (cpu + i).
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Loopback source addresses to spread connections over (127.0.0.2 …); 0 = kernel's choice.
    #[arg(long = "source-addrs", default_value_t = 32)]
    pub source_addrs: usize,
    /// Most subscribe handshakes in flight per generator thread while connecting.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Idle: seconds to hold the connections after they are all open.
    #[arg(long = "hold", default_value_t = 2)]
    pub hold_secs: u64,
    /// Replay, storm: K, the events received before disconnecting.
    #[arg(long = "before", default_value_t = 5)]
    pub before: u64,
    /// Storm: reconnect at a uniformly random moment within this many milliseconds (a client
    /// honouring a jittered `retry:`); 0 = all at once.
    #[arg(long = "spread-ms", default_value_t = 0)]
    pub spread_ms: u64,
    /// Replay: how the resume id is sent: header, lastEventId, last_event_id or lastEventID.
    #[arg(long = "resume-with", default_value = "header")]
    pub resume_with: String,
    /// Churn: connections open at once; publish: publishers at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Churn, publish: seconds to run.
    #[arg(long = "duration", default_value_t = 5)]
    pub duration_secs: u64,
}

/// Sockets a generator process keeps besides its subscribers (runtime, publisher, stdio).
const SPARE_FDS: u64 = 64;

/// What a scenario produced: the JSON summary, the verdict, and what `--report` draws.
struct Outcome {
    summary: serde_json::Value,
    passed: bool,
    figure: Figure,
}

/// Run a scenario; the exit code is 0 when it passed (no loss, no error), 1 when it ran and
/// failed, 2 when it could not run.
pub fn run(args: BenchArgs) -> i32 {
    let (c, name) = args.scenario.parts();
    client::accept_gzip(c.gzip);
    // The coordinating thread publishes (fanout, replay): keep it off the server's cores too.
    if let Some(cpu) = c.cpu {
        if let Err(e) = crate::sys::pin_to_cpu(cpu) {
            eprintln!("pushcore bench: cannot pin to cpu {cpu}: {e}");
        }
    }
    if let Some(slice) = c.proc_slice {
        let _ = crate::sys::raise_nofile_limit();
        return match sub_urls(c) {
            Ok(url) => {
                let events = (name == "fanout").then_some(c.events);
                let timeout = Duration::from_secs(c.timeout_secs + 10);
                let mut plan = plan(c, url, events);
                // Children pin side by side: child k's threads follow child k-1's.
                plan.cpu = c.cpu.map(|cpu| cpu + slice.index * plan.threads);
                procs::run_slice(&plan, slice, c.conns, timeout)
            }
            Err(e) => {
                eprintln!("pushcore bench {name}: {e}");
                2
            }
        };
    }
    let result = check(c, name).and_then(|format| {
        let outcome = match &args.scenario {
            Scenario::Idle(c) => idle(c),
            Scenario::Fanout(c) => fanout(c),
            Scenario::Replay(c) => replay(c),
            Scenario::Churn(c) => churn(c),
            Scenario::Storm(c) => storm::storm(c),
            Scenario::Publish(c) => throughput::publish(c),
        }?;
        Ok((outcome, format))
    });
    match result {
        Ok((mut outcome, format)) => {
            outcome.summary["scenario"] = json!(name);
            outcome.summary["passed"] = json!(outcome.passed);
            let line = outcome.summary.to_string();
            println!("{line}");
            if let (Some(path), Some(format)) = (&c.report, format) {
                outcome.figure.title = format!("pushcore bench {name}");
                if let Err(e) = report::write(path, format, outcome.figure, &line) {
                    eprintln!("pushcore bench: {e}");
                }
            }
            if outcome.passed {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("pushcore bench {name}: {e}");
            2
        }
    }
}

/// Flags that would fail late are refused before anything runs; returns the report format.
fn check(c: &Common, name: &str) -> Result<Option<report::Format>, String> {
    let format = c.report.as_deref().map(report::Format::of).transpose()?;
    if c.procs == 0 {
        return Err("--procs: expected at least 1".into());
    }
    if c.procs > 1 && !matches!(name, "idle" | "fanout") {
        return Err("--procs applies to idle and fanout".into());
    }
    let limit = crate::sys::raise_nofile_limit().unwrap_or(1024);
    let sockets = match name {
        "idle" | "fanout" => c.conns.div_ceil(c.procs) as u64,
        "storm" => c.conns as u64,
        "churn" | "publish" => c.concurrency as u64,
        _ => 2,
    };
    if sockets + SPARE_FDS > limit {
        let procs = (c.conns as u64).div_ceil(limit.saturating_sub(SPARE_FDS).max(1));
        return Err(format!(
            "{sockets} sockets per process exceed the open-file limit ({limit}): split with --procs {procs} or raise `ulimit -n`"
        ));
    }
    Ok(format)
}

/// The first `--sub-url`.
fn sub_url(c: &Common) -> Result<HttpUrl, String> {
    sub_urls(c)?
        .into_iter()
        .next()
        .ok_or_else(|| "--sub-url: expected at least one URL".into())
}

/// Every `--sub-url`, in order.
fn sub_urls(c: &Common) -> Result<Vec<HttpUrl>, String> {
    let urls = c
        .sub_url
        .iter()
        .map(|u| parse_url(&fill(u, "channel", &c.channel)))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("--sub-url: expected at least one URL".into());
    }
    Ok(urls)
}

/// The first `--pub-url`.
fn pub_url(c: &Common) -> Result<HttpUrl, String> {
    let first = c
        .pub_url
        .first()
        .ok_or("--pub-url: expected at least one URL")?;
    parse_url(&fill(first, "channel", &c.channel))
}

fn plan(c: &Common, urls: Vec<HttpUrl>, events: Option<u64>) -> Plan {
    Plan {
        urls,
        events,
        threads: c.threads.max(1),
        cpu: c.cpu,
        spread: c.source_addrs,
        window: c.window,
    }
}

/// Start the subscribers: in this process, or over `--procs` children.
fn start_subscribers(
    c: &Common,
    url: Vec<HttpUrl>,
    events: Option<u64>,
    progress: &Arc<Progress>,
) -> Result<Subscribers, String> {
    if c.procs > 1 {
        Children::spawn(c.procs, c.conns, events, progress).map(Subscribers::Procs)
    } else {
        Ok(Subscribers::threads(
            &plan(c, url, events),
            (0..c.conns).collect(),
            progress,
        ))
    }
}

/// Wait until `done()` or the deadline; returns whether it was done.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// CPUs the generator may run on: `--cpu` onwards for its threads (and children), else
/// wherever this process may run.
fn generator_cpus(c: &Common) -> std::collections::BTreeSet<usize> {
    match c.cpu {
        Some(cpu) => (cpu..cpu + (c.threads.max(1) * c.procs.max(1))).collect(),
        None => cores::process_cpus(std::process::id()).unwrap_or_default(),
    }
}

/// How this run measures the server; warns (stderr) when whole-core figures would be suspect.
fn server_meter(c: &Common) -> Result<ServerMeter, String> {
    let meter = ServerMeter::new(&c.pid, c.server_cpus.as_deref(), &generator_cpus(c))?;
    if let Some(note) = &meter.note {
        eprintln!("pushcore bench: note: {note}");
    }
    Ok(meter)
}

/// Adds the server's CPUs (and any caveat) to the JSON summary.
fn describe_meter(meter: &ServerMeter, summary: &mut serde_json::Value) {
    summary["server_cpus"] = json!(meter.cpu_list());
    summary["server_cpus_background_share"] = json!(meter.background_share);
    if let Some(note) = &meter.note {
        summary["server_cpus_note"] = json!(note);
    }
}

/// Percentiles of a latency set in µs, as JSON.
fn percentiles(l: &mut Latencies) -> serde_json::Value {
    let mut pct = |p| l.percentile(p).unwrap_or(0);
    json!({ "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "p99_9": pct(99.9), "max": pct(100.0) })
}

/// The generator's own CPU use over a phase, as a share of what its threads could use.
struct OwnCpu {
    cpu0: u64,
    t0: Instant,
    /// Cores the generator's threads could keep busy.
    capacity: f64,
}

impl OwnCpu {
    fn start(cpu_micros: u64, threads: usize) -> OwnCpu {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        OwnCpu {
            cpu0: cpu_micros,
            t0: Instant::now(),
            capacity: threads.clamp(1, cores) as f64,
        }
    }

    fn share(&self, cpu_micros: u64) -> f64 {
        let wall = self.t0.elapsed().as_micros().max(1) as f64;
        cpu_micros.saturating_sub(self.cpu0) as f64 / wall / self.capacity
    }
}

/// Below this share of `--rate` the publisher did not keep its schedule: fanout says so.
pub const MIN_ACHIEVED_RATE_SHARE: f64 = 0.95;

/// Above this share of its CPU the generator may be what limits a run: it says so.
pub const GENERATOR_SATURATED_SHARE: f64 = 0.85;

fn warn_if_saturated(share: f64) {
    if share > GENERATOR_SATURATED_SHARE {
        eprintln!(
            "pushcore bench: warning: the generator used {:.0}% of its CPU: it may have been the bottleneck; add --threads or --procs",
            share * 100.0
        );
    }
}

fn say(lines: &mut Vec<String>, line: String) {
    println!("{line}");
    lines.push(line);
}

fn idle(c: &Common) -> Result<Outcome, String> {
    let url = sub_urls(c)?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let meter = Meter::new(c.quiet);
    let server = server_meter(c)?;
    let before = server.sample();
    let kernel_before = KernelMemory::sample();
    let progress = Arc::new(Progress::default());
    let t0 = Instant::now();
    let t0_micros = now_micros();
    let subscribers = start_subscribers(c, url, None, &progress)?;
    let own = OwnCpu::start(subscribers.cpu_micros(), c.threads * c.procs);
    let total = c.conns as u64;
    meter.phase("connecting", total);
    wait_until(deadline, || {
        let (o, r) = (
            progress.get(&progress.opened),
            progress.get(&progress.refused),
        );
        meter.show(o + r, || format!("open, {r} failed"));
        o + r >= total
    });
    let connect_secs = t0.elapsed().as_secs_f64();
    let opened = progress.get(&progress.opened);
    std::thread::sleep(Duration::from_millis(500));
    let after = server.sample();
    let kernel_after = KernelMemory::sample();
    let hold_until = (Instant::now() + Duration::from_secs(c.hold_secs)).min(deadline);
    let held_from = Instant::now();
    meter.phase("holding", c.hold_secs * 10);
    wait_until(hold_until, || {
        let open = progress.get(&progress.opened).saturating_sub(
            progress
                .get(&progress.failed)
                .saturating_sub(progress.get(&progress.refused)),
        );
        meter.show(held_from.elapsed().as_millis() as u64 / 100, || {
            format!("(0.1 s), {open} open")
        });
        false
    });
    let share = own.share(subscribers.cpu_micros());
    let received = subscribers.stop(&progress);
    meter.clear();
    let failed = progress.get(&progress.failed);
    let rate = opened as f64 / connect_secs.max(1e-9);
    let mut lines = Vec::new();
    say(
        &mut lines,
        format!(
            "idle: {opened}/{} open in {connect_secs:.2}s ({rate:.0}/s), {failed} failed",
            c.conns
        ),
    );
    let mut summary = json!({
        "conns": c.conns, "opened": opened, "failed": failed, "procs": c.procs,
        "connect_secs": connect_secs, "connects_per_sec": rate,
        "generator_cpu_share": share, "errors": received.errors,
    });
    if let (Some(b), Some(a)) = (before.process, after.process) {
        let per_conn = a.rss_bytes.saturating_sub(b.rss_bytes) as f64 / opened.max(1) as f64;
        say(
            &mut lines,
            format!(
                "server: RSS {} → {} bytes: {per_conn:.0} bytes per connection",
                b.rss_bytes, a.rss_bytes
            ),
        );
        summary["server_rss_before"] = json!(b.rss_bytes);
        summary["server_rss_after"] = json!(a.rss_bytes);
        summary["server_bytes_per_conn"] = json!(per_conn);
    }
    let cost = before.cost_until(&after);
    if let Some(line) = cost.describe(opened, "connection", server.cpu_list().as_deref()) {
        say(&mut lines, line);
    }
    cost.add_to(&mut summary, "server_cpu_us_per_conn", opened);
    describe_meter(&server, &mut summary);
    if let (Some(b), Some(a)) = (kernel_before, kernel_after) {
        kernel_memory(&b, &a, opened, &mut lines, &mut summary);
    }
    summary["generator_saturated"] = json!(share > GENERATOR_SATURATED_SHARE);
    warn_if_saturated(share);
    let figure = Figure {
        lines,
        series: Some(Series {
            what: "opens".into(),
            counts: received.opens.since(t0_micros),
            reference: None,
            origin: "the start".into(),
        }),
        ..Figure::default()
    };
    Ok(Outcome {
        summary,
        passed: failed == 0 && opened == total,
        figure,
    })
}

/// Kernel slab memory per connection. Client and server sockets are both on this host, so the
/// growth covers both ends of every connection (and whatever else the host did meanwhile).
/// The server's share is estimated as half of the socket caches' growth (each connection has one
/// TCP socket, inode, file and dentry on each end) plus all of `eventpoll_epi` (only the server
/// watches its sockets with epoll; the generator reads through io_uring).
fn kernel_memory(
    b: &KernelMemory,
    a: &KernelMemory,
    opened: u64,
    lines: &mut Vec<String>,
    summary: &mut serde_json::Value,
) {
    let n = opened.max(1) as f64;
    let slab = (a.slab_bytes as f64 - b.slab_bytes as f64) / n;
    let unreclaim = (a.sunreclaim_bytes as f64 - b.sunreclaim_bytes as f64) / n;
    let growth = b.cache_growth(a);
    let epoll = growth.get("eventpoll_epi").copied().unwrap_or(0) as f64
        + growth.get("eventpoll_pwq").copied().unwrap_or(0) as f64;
    let sockets: f64 = growth.values().map(|&v| v as f64).sum::<f64>() - epoll;
    let server_share = (sockets / 2.0 + epoll) / n;
    say(
        lines,
        format!(
            "kernel: slab +{slab:.0} B per connection (both ends; unreclaimable +{unreclaim:.0} B); socket caches +{:.0} B, of which the server's estimated share is {server_share:.0} B (half the socket objects + its epoll entries)",
            (sockets + epoll) / n
        ),
    );
    summary["kernel_slab_bytes_per_conn_both_ends"] = json!(slab);
    summary["kernel_sunreclaim_bytes_per_conn_both_ends"] = json!(unreclaim);
    summary["kernel_socket_cache_bytes_per_conn_both_ends"] = json!((sockets + epoll) / n);
    summary["kernel_bytes_per_conn_server_estimate"] = json!(server_share);
    summary["kernel_cache_growth_bytes"] = json!(growth);
}

fn fanout(c: &Common) -> Result<Outcome, String> {
    let url = sub_urls(c)?;
    let publish_url = pub_url(c)?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let meter = Meter::new(c.quiet);
    let progress = Arc::new(Progress::default());
    let subscribers = start_subscribers(c, url, Some(c.events), &progress)?;
    let total = c.conns as u64;
    meter.phase("connecting", total);
    let all_open = wait_until(deadline, || {
        let (o, r) = (
            progress.get(&progress.opened),
            progress.get(&progress.refused),
        );
        meter.show(o + r, || format!("open, {r} failed"));
        o + r >= total
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut publisher = match Publisher::connect(&publish_url, &c.pub_content_type) {
        Ok(p) => p,
        Err(e) => {
            subscribers.stop(&progress);
            meter.clear();
            return Err(format!("publisher: {e}"));
        }
    };
    let server = match server_meter(c) {
        Ok(m) => m,
        Err(e) => {
            subscribers.stop(&progress);
            meter.clear();
            return Err(e);
        }
    };
    let own = OwnCpu::start(subscribers.cpu_micros(), c.threads * c.procs);
    let before = server.sample();
    let t0 = Instant::now();
    let t0_micros = now_micros();
    let mut published = Timeline::default();
    let expected = total * c.events;
    let interval = Duration::from_secs_f64(1.0 / c.rate.max(0.001));
    let mut publish_errors = 0u64;
    let mut first_error = None;
    // Publish round trips, and how late each publish left against its schedule.
    let mut round_trips = Latencies::default();
    let mut send_lag = Latencies::default();
    let mut last_sent = t0;
    let mut sent_count = 0u64;
    meter.phase("publishing", c.events);
    for seq in 0..c.events {
        if Instant::now() >= deadline {
            break;
        }
        let due = t0 + interval.mul_f64(seq as f64);
        while let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(100)));
            meter.show(seq, || {
                format!("published, {} delivered", progress.get(&progress.delivered))
            });
        }
        let sent = now_micros();
        let due_micros = t0_micros + (interval.as_micros() as u64).saturating_mul(seq);
        let body = fill(
            &fill(&c.pub_body, "channel", &c.channel),
            "payload",
            &payload(seq, sent, due_micros, c.payload_bytes),
        );
        published.record(sent);
        send_lag.push(sent.saturating_sub(due_micros));
        last_sent = Instant::now();
        sent_count += 1;
        let posted = publisher.post(&body);
        round_trips.push(last_sent.elapsed().as_micros() as u64);
        match posted {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, text)) => {
                publish_errors += 1;
                first_error.get_or_insert(format!("publish {seq}: {status} {text}"));
            }
            Err(e) => {
                publish_errors += 1;
                first_error.get_or_insert(format!("publish {seq}: {e}"));
                match Publisher::connect(&publish_url, &c.pub_content_type) {
                    Ok(p) => publisher = p,
                    Err(_) => break,
                }
            }
        }
        meter.show(seq + 1, || {
            format!("published, {} delivered", progress.get(&progress.delivered))
        });
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    // Events n-1 apart left over this span: on schedule, (n-1)/span is exactly --rate.
    let send_span = last_sent.duration_since(t0).as_secs_f64();
    let achieved_rate = if sent_count > 1 && send_span > 0.0 {
        (sent_count - 1) as f64 / send_span
    } else {
        0.0
    };
    let settle = (Instant::now() + Duration::from_secs(10)).min(deadline);
    meter.phase("delivering", expected);
    wait_until(settle, || {
        meter.show(progress.get(&progress.delivered), || "delivered".into());
        progress.get(&progress.finished) >= total
    });
    let after = server.sample();
    let elapsed = t0.elapsed().as_secs_f64();
    let share = own.share(subscribers.cpu_micros());
    let mut received = subscribers.stop(&progress);
    meter.clear();
    if !all_open {
        eprintln!("pushcore bench: not every subscriber opened before the timeout");
    }
    let (opened, failed) = (
        progress.get(&progress.opened),
        progress.get(&progress.failed),
    );
    let t = received.totals;
    let from_send = percentiles(&mut received.latencies);
    let from_schedule = percentiles(&mut received.scheduled);
    let round_trip = percentiles(&mut round_trips);
    let lag = percentiles(&mut send_lag);
    let ms = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0) as f64 / 1000.0;
    let mut lines = Vec::new();
    say(&mut lines, format!(
        "fanout: {} subscribers × {} events in {publish_secs:.1}s: delivered {}/{}, lost {}, duplicated {}, out of order {}, publish errors {publish_errors}",
        c.conns, c.events, t.delivered, t.expected, t.lost, t.duplicates, t.out_of_order
    ));
    for (what, l) in [("from schedule", &from_schedule), ("from send", &from_send)] {
        say(
            &mut lines,
            format!(
                "latency {what} ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                ms(l, "p50"),
                ms(l, "p90"),
                ms(l, "p99"),
                ms(l, "p99_9"),
                ms(l, "max")
            ),
        );
    }
    say(
        &mut lines,
        format!(
            "publish: {achieved_rate:.1}/s achieved of {}/s; round trip ms p50 {:.2} p99 {:.2}; sent late by ms p99 {:.2} max {:.2}",
            c.rate,
            ms(&round_trip, "p50"),
            ms(&round_trip, "p99"),
            ms(&lag, "p99"),
            ms(&lag, "max")
        ),
    );
    let mut summary = json!({
        "conns": c.conns, "events": c.events, "rate": c.rate, "payload_bytes": c.payload_bytes,
        "procs": c.procs, "opened": opened, "failed": failed,
        "expected": t.expected, "delivered": t.delivered, "lost": t.lost, "duplicates": t.duplicates,
        "out_of_order": t.out_of_order, "unexpected": t.unexpected, "publish_errors": publish_errors,
        "heartbeats": received.heartbeats,
        "deliveries_per_sec": t.delivered as f64 / elapsed.max(1e-9),
        "latency_us": from_send, "latency_from_schedule_us": from_schedule,
        "publish_round_trip_us": round_trip, "publish_late_us": lag,
        "achieved_rate": achieved_rate,
        "generator_cpu_share": share, "generator_saturated": share > GENERATOR_SATURATED_SHARE, "errors": received.errors, "first_publish_error": first_error,
    });
    let cost = before.cost_until(&after);
    if let Some(line) = cost.describe(t.delivered, "delivery", server.cpu_list().as_deref()) {
        say(&mut lines, line);
    }
    cost.add_to(&mut summary, "server_cpu_us_per_delivery", t.delivered);
    if let Some(rss) = cost.rss_bytes {
        summary["server_rss"] = json!(rss);
    }
    describe_meter(&server, &mut summary);
    warn_if_saturated(share);
    if sent_count > 1 && achieved_rate < c.rate * MIN_ACHIEVED_RATE_SHARE {
        eprintln!(
            "pushcore bench: warning: the publisher achieved {achieved_rate:.1}/s of {}/s: the server answered slowly or the generator's core is saturated (latency from schedule includes that delay)",
            c.rate
        );
    }
    let passed = t.lost == 0
        && t.duplicates == 0
        && t.out_of_order == 0
        && t.unexpected == 0
        && publish_errors == 0
        && t.expected > 0;
    let figure = Figure {
        lines,
        series: Some(Series {
            what: "deliveries".into(),
            counts: received.deliveries.since(t0_micros),
            reference: Some((
                "published × subscribers open".into(),
                published
                    .since(t0_micros)
                    .into_iter()
                    .map(|n| n * opened)
                    .collect(),
            )),
            origin: "the first publish".into(),
        }),
        latencies: Some(received.latencies),
        ..Figure::default()
    };
    Ok(Outcome {
        summary,
        passed,
        figure,
    })
}

/// Read events from a blocking stream until `want` bench events arrived; returns the events
/// read and, if it stopped short, why (closed, refused, timed out at `deadline`).
fn read_blocking(
    stream: &mut std::net::TcpStream,
    want: u64,
    deadline: Instant,
) -> (Vec<sse::SseEvent>, Result<(), String>) {
    use std::io::Read;
    let mut body = client::ResponseBody::default();
    let mut reader = sse::SseReader::new();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut bytes = Vec::new();
    let bench_events = |events: &[sse::SseEvent]| {
        events
            .iter()
            .filter(|e| json_u64(&e.data, "seq").is_some())
            .count() as u64
    };
    while bench_events(&events) < want {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (events, Err("timed out".into()));
        };
        if let Err(e) = stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))) {
            return (events, Err(e.to_string()));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return (events, Err("stream closed".into())),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (events, Err("timed out".into()))
            }
            Err(e) => return (events, Err(format!("read: {e}"))),
        };
        bytes.clear();
        if let Err(e) = body.feed(buf.get(..n).unwrap_or_default(), &mut bytes) {
            return (events, Err(e));
        }
        reader.feed(&bytes, &mut events);
    }
    // What was waited for: later events in the same read would depend on timing.
    let mut seen = 0;
    events.retain(|e| {
        let keep = seen < want;
        seen += u64::from(json_u64(&e.data, "seq").is_some());
        keep
    });
    (events, Ok(()))
}

/// Open an event stream on a blocking socket (the request is sent; the response is read by
/// [`read_blocking`]).
fn subscribe_blocking(
    url: &HttpUrl,
    request_url: &HttpUrl,
    last_event_id: Option<&str>,
) -> Result<std::net::TcpStream, String> {
    use std::io::Write;
    let mut s =
        connect(url.addr, None, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.write_all(&subscribe_request(request_url, last_event_id))
        .map_err(|e| format!("write: {e}"))?;
    Ok(s)
}

fn replay(c: &Common) -> Result<Outcome, String> {
    let urls = sub_urls(c)?;
    let url = sub_url(c)?;
    // With several --sub-url, the resume goes to the second (another instance of a cluster).
    let again = urls.get(1).cloned().unwrap_or_else(|| url.clone());
    let publish_url = pub_url(c)?;
    let param = match c.resume_with.as_str() {
        "header" => None,
        p @ ("lastEventId" | "last_event_id" | "lastEventID") => Some(p),
        other => {
            return Err(format!(
                "--resume-with {other}: expected header, lastEventId, last_event_id or lastEventID"
            ))
        }
    };
    let server = server_meter(c)?;
    let before = server.sample();
    let own = OwnCpu::start(crate::sys::process_cpu_micros(), 1);
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let mut publisher = Publisher::connect(&publish_url, &c.pub_content_type)
        .map_err(|e| format!("publisher: {e}"))?;
    let mut publish = |seqs: std::ops::Range<u64>| -> Result<(), String> {
        for seq in seqs {
            let body = fill(
                &fill(&c.pub_body, "channel", &c.channel),
                "payload",
                &payload(seq, now_micros(), now_micros(), c.payload_bytes),
            );
            match publisher.post(&body) {
                Ok((s, _)) if (200..300).contains(&s) => {}
                Ok((s, t)) => return Err(format!("publish {seq}: {s} {t}")),
                Err(e) => return Err(format!("publish {seq}: {e}")),
            }
        }
        Ok(())
    };
    let (k, j) = (c.before, c.events);
    // 1. Subscribe and receive K events; 2. disconnect and miss J; 3. resume.
    let mut last_id = None;
    let steps = (|| -> Result<(Vec<sse::SseEvent>, Result<(), String>), String> {
        let mut first = subscribe_blocking(&url, &url, None)?;
        std::thread::sleep(Duration::from_millis(200));
        publish(0..k)?;
        let (got, end) = read_blocking(&mut first, k, deadline);
        end.map_err(|e| format!("before disconnecting: {e}"))?;
        let id = got
            .iter()
            .rev()
            .find(|e| json_u64(&e.data, "seq").is_some())
            .map(|e| e.id.clone())
            .ok_or("no event id received")?;
        last_id = Some(id.clone());
        drop(first);
        publish(k..k + j)?;
        let resume_url = match param {
            None => again.clone(),
            Some(p) => {
                let sep = if again.path.contains('?') { '&' } else { '?' };
                HttpUrl {
                    path: format!("{}{sep}{p}={id}", again.path),
                    ..again.clone()
                }
            }
        };
        let header = param.is_none().then_some(id.as_str());
        let mut second = subscribe_blocking(&again, &resume_url, header)?;
        Ok(read_blocking(&mut second, j, deadline))
    })();
    let (events, error) = match steps {
        Ok((events, end)) => (events, end.err()),
        Err(e) => (Vec::new(), Some(e)),
    };
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| json_u64(&e.data, "seq"))
        .collect();
    let expected: Vec<u64> = (k..k + j).collect();
    let reset = events.iter().any(|e| e.event == "reset");
    let passed = seqs == expected && !reset && error.is_none();
    let share = own.share(crate::sys::process_cpu_micros());
    let cost = before.cost_until(&server.sample());
    let mut lines = Vec::new();
    say(
        &mut lines,
        format!(
            "replay: received {k} before disconnecting from {}, resumed on {} from {} via {}: got {seqs:?} of {expected:?}{}{} → {}",
            url.host,
            again.host,
            last_id.as_deref().unwrap_or("(none)"),
            c.resume_with,
            if reset { " after a reset event" } else { "" },
            error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
            if passed { "PASS" } else { "FAIL" }
        ),
    );
    if let Some(line) = cost.describe(
        1,
        "run (both subscriptions, K + J publishes)",
        server.cpu_list().as_deref(),
    ) {
        say(&mut lines, line);
    }
    let mut summary = json!({
        "before": k, "missed": j, "resume_with": c.resume_with, "resumed_from": last_id,
        "received": &seqs, "reset": reset, "error": error, "generator_cpu_share": share,
    });
    cost.add_to(&mut summary, "server_cpu_us_per_run", 1);
    describe_meter(&server, &mut summary);
    Ok(Outcome {
        summary,
        passed,
        figure: Figure {
            lines,
            resume: Some(report::Resume {
                expected,
                received: seqs,
                reset,
            }),
            ..Figure::default()
        },
    })
}

fn churn(c: &Common) -> Result<Outcome, String> {
    let url = sub_url(c)?;
    let run_for = Duration::from_secs(c.duration_secs.min(c.timeout_secs));
    let meter = Meter::new(c.quiet);
    let server = server_meter(c)?;
    let before = server.sample();
    let opens = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let threads = c.threads.max(1);
    let own = OwnCpu::start(crate::sys::process_cpu_micros(), threads);
    let t0 = Instant::now();
    let t0_micros = now_micros();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, opens, errors) = (url.clone(), Arc::clone(&opens), Arc::clone(&errors));
            let per_thread = c.concurrency.div_ceil(threads);
            let cpu = c.cpu.map(|cpu| cpu + t);
            let spread = c.source_addrs;
            std::thread::spawn(move || {
                churn_thread(
                    t,
                    per_thread,
                    cpu,
                    spread,
                    url,
                    t0 + run_for,
                    &opens,
                    &errors,
                )
            })
        })
        .collect();
    meter.phase("churning", run_for.as_secs() * 10);
    wait_until(t0 + run_for, || {
        meter.show(t0.elapsed().as_millis() as u64 / 100, || {
            format!(
                "(0.1 s), {} opens, {} errors",
                opens.load(Ordering::Relaxed),
                errors.load(Ordering::Relaxed)
            )
        });
        false
    });
    let mut timeline = Timeline::default();
    for h in handles {
        if let Ok(t) = h.join() {
            timeline.merge(&t);
        }
    }
    meter.clear();
    let secs = t0.elapsed().as_secs_f64();
    let share = own.share(crate::sys::process_cpu_micros());
    let after = server.sample();
    let (opens, errors) = (
        opens.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    let mut lines = Vec::new();
    say(
        &mut lines,
        format!(
            "churn: {opens} opens in {secs:.1}s ({:.0}/s), {errors} errors",
            opens as f64 / secs.max(1e-9)
        ),
    );
    let mut summary = json!({
        "opens": opens, "errors": errors, "secs": secs, "opens_per_sec": opens as f64 / secs.max(1e-9),
        "concurrency": c.concurrency, "generator_cpu_share": share,
        "generator_saturated": share > GENERATOR_SATURATED_SHARE,
    });
    let cost = before.cost_until(&after);
    if let Some(line) = cost.describe(
        opens,
        "open (connect to close)",
        server.cpu_list().as_deref(),
    ) {
        say(&mut lines, line);
    }
    cost.add_to(&mut summary, "server_cpu_us_per_open", opens);
    describe_meter(&server, &mut summary);
    warn_if_saturated(share);
    Ok(Outcome {
        summary,
        passed: errors == 0 && opens > 0,
        figure: Figure {
            lines,
            series: Some(Series {
                what: "opens".into(),
                counts: timeline.since(t0_micros),
                reference: None,
                origin: "the start".into(),
            }),
            ..Figure::default()
        },
    })
}

/// One churn thread: `loops` tasks, each opening a stream and closing it again until `end`.
/// Returns the opens per 100 ms.
#[allow(clippy::too_many_arguments)]
fn churn_thread(
    t: usize,
    loops: usize,
    cpu: Option<usize>,
    spread: usize,
    url: HttpUrl,
    end: Instant,
    opens: &Arc<AtomicU64>,
    errors: &Arc<AtomicU64>,
) -> Timeline {
    if let Some(cpu) = cpu {
        let _ = crate::sys::pin_to_cpu(cpu);
    }
    let timeline = Rc::new(RefCell::new(Timeline::default()));
    let Ok(mut rt) = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
    else {
        errors.fetch_add(1, Ordering::Relaxed);
        return Timeline::default();
    };
    rt.block_on(async {
        let live = Rc::new(std::cell::Cell::new(loops));
        for k in 0..loops {
            let (url, opens, errors, live) = (
                url.clone(),
                Arc::clone(opens),
                Arc::clone(errors),
                Rc::clone(&live),
            );
            let timeline = Rc::clone(&timeline);
            monoio::spawn(async move {
                let mut i = k * 7919 + t;
                while Instant::now() < end {
                    i += loops;
                    let source = source_addr(i, spread, &url.addr);
                    let socket = connect(url.addr, source, Duration::from_secs(5))
                        .and_then(|s| {
                            s.set_nonblocking(true)?;
                            Ok(s)
                        })
                        .and_then(monoio::net::TcpStream::from_std);
                    let Ok(mut stream) = socket else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let attempt = open_stream(&mut stream, subscribe_request(&url, None));
                    match monoio::time::timeout(Duration::from_secs(5), attempt).await {
                        Ok(Ok(())) => {
                            opens.fetch_add(1, Ordering::Relaxed);
                            timeline.borrow_mut().record(now_micros());
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                live.set(live.get() - 1);
            });
        }
        while live.get() > 0 {
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    drop(rt);
    Rc::try_unwrap(timeline)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}
