//! `pushcore bench`: a load generator for SSE servers (pushcore, nchan, Mercure, …).
//!
//! Thread-per-core on monoio like the server; client sockets spread over source addresses
//! 127.0.0.2… so ephemeral ports do not run out; streams parsed per the WHATWG rules
//! ([`sse`]); verdicts (lost, duplicated, out of order) from per-subscriber tallies
//! ([`stats`]). With `--pid`, the target's CPU time and memory are read from /proc.

pub mod client;
pub mod sse;
pub mod stats;
pub mod target;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;

use client::{connect, open_stream, read_events, source_addr, subscribe_request, Publisher};
use stats::{json_u64, sample_process, Latencies, ProcSample, Tally, Totals};
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
}

/// Flags shared by every scenario.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Subscribers (idle, fanout).
    #[arg(long, default_value_t = 100)]
    pub conns: usize,
    /// Events to publish (fanout; replay: J, the events missed while away).
    #[arg(long, default_value_t = 100)]
    pub events: u64,
    /// Publish rate, events per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Size of each event's JSON payload in bytes.
    #[arg(long = "payload-bytes", default_value_t = 64)]
    pub payload_bytes: usize,
    /// PID of the server, to report its CPU time and memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Hard limit on the whole run, in seconds: a run always ends.
    #[arg(long = "timeout", default_value_t = 120)]
    pub timeout_secs: u64,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Subscribe URL; `{channel}` is replaced.
    #[arg(
        long = "sub-url",
        default_value = "http://127.0.0.1:8080/events/stream?channels={channel}"
    )]
    pub sub_url: String,
    /// Publish URL; `{channel}` is replaced.
    #[arg(
        long = "pub-url",
        default_value = "http://127.0.0.1:8080/events/publish"
    )]
    pub pub_url: String,
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
    /// Generator threads (one monoio runtime each).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
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
    /// Replay: K, the events received before disconnecting.
    #[arg(long = "before", default_value_t = 5)]
    pub before: u64,
    /// Replay: how the resume id is sent: header, lastEventId, last_event_id or lastEventID.
    #[arg(long = "resume-with", default_value = "header")]
    pub resume_with: String,
    /// Churn: connections open at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Churn: seconds to run.
    #[arg(long = "duration", default_value_t = 5)]
    pub duration_secs: u64,
}

/// Run a scenario; the exit code is 0 when it passed (no loss, no error).
pub fn run(args: BenchArgs) -> i32 {
    let result = match &args.scenario {
        Scenario::Idle(c) => idle(c),
        Scenario::Fanout(c) => fanout(c),
        Scenario::Replay(c) => replay(c),
        Scenario::Churn(c) => churn(c),
    };
    let (common, name) = match &args.scenario {
        Scenario::Idle(c) => (c, "idle"),
        Scenario::Fanout(c) => (c, "fanout"),
        Scenario::Replay(c) => (c, "replay"),
        Scenario::Churn(c) => (c, "churn"),
    };
    match result {
        Ok((mut summary, passed)) => {
            summary["scenario"] = json!(name);
            summary["passed"] = json!(passed);
            let line = summary.to_string();
            println!("{line}");
            if let Some(path) = &common.report {
                if let Err(e) = std::fs::write(path, format!("{line}\n")) {
                    eprintln!("pushcore bench: cannot write {}: {e}", path.display());
                }
            }
            if passed {
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

type Summary = (serde_json::Value, bool);

/// What a generator thread reports.
#[derive(Debug, Default)]
struct ThreadReport {
    totals: Totals,
    latencies: Latencies,
    errors: Vec<String>,
    opened: u64,
    heartbeats: u64,
}

/// Counters the threads share with the coordinator.
#[derive(Debug, Default)]
struct Progress {
    opened: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

fn sub_url(c: &Common) -> Result<HttpUrl, String> {
    parse_url(&fill(&c.sub_url, "channel", &c.channel))
}

fn pub_url(c: &Common) -> Result<HttpUrl, String> {
    parse_url(&fill(&c.pub_url, "channel", &c.channel))
}

/// Start `threads` generator threads, each holding its share of `conns` streams; every stream
/// is tallied against `events` numbered events. Returns the join handles.
fn spawn_readers(
    c: &Common,
    url: &HttpUrl,
    events: Option<u64>,
    progress: &Arc<Progress>,
) -> Vec<std::thread::JoinHandle<ThreadReport>> {
    let threads = c.threads.max(1);
    (0..threads)
        .map(|t| {
            let mine: Vec<usize> = (0..c.conns).filter(|i| i % threads == t).collect();
            let url = url.clone();
            let progress = Arc::clone(progress);
            let cpu = c.cpu.map(|cpu| cpu + t);
            let (spread, window) = (c.source_addrs, c.window.max(1) as u64);
            std::thread::spawn(move || {
                reader_thread(mine, url, events, progress, cpu, spread, window)
            })
        })
        .collect()
}

fn reader_thread(
    conns: Vec<usize>,
    url: HttpUrl,
    events: Option<u64>,
    progress: Arc<Progress>,
    cpu: Option<usize>,
    spread: usize,
    window: u64,
) -> ThreadReport {
    if let Some(cpu) = cpu {
        let _ = crate::sys::pin_to_cpu(cpu);
    }
    let report = Rc::new(RefCell::new(ThreadReport::default()));
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(32768)
        .build();
    let mut runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            report.borrow_mut().errors.push(format!("runtime: {e}"));
            return Rc::try_unwrap(report)
                .map(RefCell::into_inner)
                .unwrap_or_default();
        }
    };
    let n = conns.len() as u64;
    let r2 = Rc::clone(&report);
    runtime.block_on(async move {
        let report = r2;
        let local_done = Rc::new(std::cell::Cell::new(0u64));
        // Connections that opened or failed: the rest are handshakes in flight.
        let local_open = Rc::new(std::cell::Cell::new(0u64));
        for (started, i) in conns.into_iter().enumerate() {
            if progress.stop.load(Ordering::Relaxed) {
                break;
            }
            // Keep at most `window` handshakes in flight: clients arrive, they do not all
            // connect in the same instant.
            while started as u64 >= local_open.get() + window {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            let source = source_addr(i, spread, &url.addr);
            let std_stream = match connect(url.addr, source, Duration::from_secs(5)).and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            }) {
                Ok(s) => s,
                Err(e) => {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    local_done.set(local_done.get() + 1);
                    local_open.set(local_open.get() + 1);
                    let mut r = report.borrow_mut();
                    if r.errors.len() < 20 {
                        r.errors.push(format!("connect: {e}"));
                    }
                    continue;
                }
            };
            let Ok(mut stream) = monoio::net::TcpStream::from_std(std_stream) else {
                local_done.set(local_done.get() + 1);
                local_open.set(local_open.get() + 1);
                continue;
            };
            let request = subscribe_request(&url, None);
            let (report, progress, local_done) = (
                Rc::clone(&report),
                Arc::clone(&progress),
                Rc::clone(&local_done),
            );
            let local_open = Rc::clone(&local_open);
            monoio::spawn(async move {
                let mut tally = events.map(Tally::new);
                let mut latencies = Latencies::default();
                let did_open = std::cell::Cell::new(false);
                let opened = || {
                    progress.opened.fetch_add(1, Ordering::Relaxed);
                    local_open.set(local_open.get() + 1);
                    did_open.set(true);
                };
                let (reader, end) = read_events(&mut stream, request, opened, |ev| {
                    if progress.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    let Some(t) = tally.as_mut() else { return true };
                    if let Some(seq) = json_u64(&ev.data, "seq") {
                        t.record(seq);
                        if let Some(sent) = json_u64(&ev.data, "ts") {
                            latencies.push(now_micros().saturating_sub(sent));
                        }
                    }
                    t.unique < t.events()
                })
                .await;
                let mut r = report.borrow_mut();
                if let Some(t) = &tally {
                    r.totals.add(t);
                }
                r.latencies.extend(&latencies);
                r.heartbeats += reader.comments;
                if let Err(e) = end {
                    let complete = tally.as_ref().is_some_and(|t| t.unique == t.events());
                    if !complete && !progress.stop.load(Ordering::Relaxed) {
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                        if r.errors.len() < 20 {
                            r.errors.push(e);
                        }
                    }
                }
                progress.finished.fetch_add(1, Ordering::Relaxed);
                local_done.set(local_done.get() + 1);
                if !did_open.get() {
                    local_open.set(local_open.get() + 1);
                }
            });
        }
        while local_done.get() < n && !progress.stop.load(Ordering::Relaxed) {
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    drop(runtime);
    let mut out = Rc::try_unwrap(report)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    out.opened = n;
    out
}

fn join_reports(handles: Vec<std::thread::JoinHandle<ThreadReport>>) -> ThreadReport {
    let mut all = ThreadReport::default();
    for h in handles {
        match h.join() {
            Ok(r) => {
                all.totals.expected += r.totals.expected;
                all.totals.delivered += r.totals.delivered;
                all.totals.lost += r.totals.lost;
                all.totals.duplicates += r.totals.duplicates;
                all.totals.out_of_order += r.totals.out_of_order;
                all.totals.unexpected += r.totals.unexpected;
                all.latencies.extend(&r.latencies);
                all.heartbeats += r.heartbeats;
                all.errors.extend(r.errors);
            }
            Err(_) => all.errors.push("a generator thread panicked".into()),
        }
    }
    all
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

fn sample(pid: Option<u32>) -> Option<ProcSample> {
    pid.and_then(sample_process)
}

/// The generator's own CPU use over a phase, as a share of its threads' capacity.
struct OwnCpu {
    cpu0: u64,
    t0: Instant,
}

impl OwnCpu {
    fn start() -> OwnCpu {
        OwnCpu {
            cpu0: crate::sys::process_cpu_micros(),
            t0: Instant::now(),
        }
    }
    fn share(&self, threads: usize) -> f64 {
        let wall = self.t0.elapsed().as_micros().max(1) as f64;
        (crate::sys::process_cpu_micros().saturating_sub(self.cpu0)) as f64
            / wall
            / threads.max(1) as f64
    }
}

fn warn_if_saturated(share: f64) {
    if share > 0.9 {
        eprintln!("pushcore bench: warning: the generator used {:.0}% of its CPU: it may have been the bottleneck; add --threads", share * 100.0);
    }
}

fn idle(c: &Common) -> Result<Summary, String> {
    let url = sub_url(c)?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let before = sample(c.pid);
    let progress = Arc::new(Progress::default());
    let own = OwnCpu::start();
    let t0 = Instant::now();
    let handles = spawn_readers(c, &url, None, &progress);
    let total = c.conns as u64;
    wait_until(deadline, || {
        progress.opened.load(Ordering::Relaxed) + progress.failed.load(Ordering::Relaxed) >= total
    });
    let connect_secs = t0.elapsed().as_secs_f64();
    let opened = progress.opened.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    let after = sample(c.pid);
    let hold_until = (Instant::now() + Duration::from_secs(c.hold_secs)).min(deadline);
    wait_until(hold_until, || false);
    let share = own.share(c.threads);
    progress.stop.store(true, Ordering::Relaxed);
    // Readers notice `stop` at their next event or heartbeat; closing the sockets is the
    // runtime drop at the end of each thread.
    let report = join_reports(handles);
    let failed = progress.failed.load(Ordering::Relaxed);
    let mut summary = json!({
        "conns": c.conns, "opened": opened, "failed": failed,
        "connect_secs": connect_secs, "connects_per_sec": opened as f64 / connect_secs.max(1e-9),
        "generator_cpu_share": share, "errors": report.errors,
    });
    println!(
        "idle: {opened}/{} open in {connect_secs:.2}s ({:.0}/s), {failed} failed",
        c.conns,
        opened as f64 / connect_secs.max(1e-9)
    );
    if let (Some(b), Some(a)) = (before, after) {
        let per_conn = a.rss_bytes.saturating_sub(b.rss_bytes) as f64 / opened.max(1) as f64;
        let cpu_per_conn = a.cpu_micros.saturating_sub(b.cpu_micros) as f64 / opened.max(1) as f64;
        println!("server: RSS {} → {} bytes: {per_conn:.0} bytes per connection; {cpu_per_conn:.1} µs CPU per connection", b.rss_bytes, a.rss_bytes);
        summary["server_rss_before"] = json!(b.rss_bytes);
        summary["server_rss_after"] = json!(a.rss_bytes);
        summary["server_bytes_per_conn"] = json!(per_conn);
        summary["server_cpu_us_per_conn"] = json!(cpu_per_conn);
    }
    warn_if_saturated(share);
    Ok((summary, failed == 0 && opened == total))
}

fn fanout(c: &Common) -> Result<Summary, String> {
    let url = sub_url(c)?;
    let publish_url = pub_url(c)?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let progress = Arc::new(Progress::default());
    let handles = spawn_readers(c, &url, Some(c.events), &progress);
    let total = c.conns as u64;
    let all_open = wait_until(deadline, || {
        progress.opened.load(Ordering::Relaxed) + progress.failed.load(Ordering::Relaxed) >= total
    });
    if !all_open {
        eprintln!("pushcore bench: not every subscriber opened before the timeout");
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut publisher = Publisher::connect(&publish_url, &c.pub_content_type)
        .map_err(|e| format!("publisher: {e}"))?;
    let own = OwnCpu::start();
    let before = sample(c.pid);
    let t0 = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / c.rate.max(0.001));
    let mut publish_errors = 0u64;
    let mut first_error = None;
    for seq in 0..c.events {
        if Instant::now() >= deadline {
            break;
        }
        let due = t0 + interval.mul_f64(seq as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = fill(
            &fill(&c.pub_body, "channel", &c.channel),
            "payload",
            &payload(seq, now_micros(), c.payload_bytes),
        );
        match publisher.post(&body) {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, text)) => {
                publish_errors += 1;
                first_error.get_or_insert(format!("publish {seq}: {status} {text}"));
            }
            Err(e) => {
                publish_errors += 1;
                first_error.get_or_insert(format!("publish {seq}: {e}"));
                publisher = Publisher::connect(&publish_url, &c.pub_content_type)
                    .map_err(|e| format!("publisher: {e}"))?;
            }
        }
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    let settle = (Instant::now() + Duration::from_secs(10)).min(deadline);
    wait_until(settle, || {
        progress.finished.load(Ordering::Relaxed) + progress.failed.load(Ordering::Relaxed) >= total
    });
    let after = sample(c.pid);
    let elapsed = t0.elapsed().as_secs_f64();
    let share = own.share(c.threads);
    progress.stop.store(true, Ordering::Relaxed);
    let mut report = join_reports(handles);
    let t = report.totals;
    let mut pct = |p| report.latencies.percentile(p).unwrap_or(0);
    let (p50, p90, p99, p999, max) = (pct(50.0), pct(90.0), pct(99.0), pct(99.9), pct(100.0));
    println!(
        "fanout: {} subscribers × {} events in {publish_secs:.1}s: delivered {}/{}, lost {}, duplicated {}, out of order {}, publish errors {publish_errors}",
        c.conns, c.events, t.delivered, t.expected, t.lost, t.duplicates, t.out_of_order
    );
    println!("latency µs: p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}");
    let mut summary = json!({
        "conns": c.conns, "events": c.events, "rate": c.rate, "payload_bytes": c.payload_bytes,
        "expected": t.expected, "delivered": t.delivered, "lost": t.lost, "duplicates": t.duplicates,
        "out_of_order": t.out_of_order, "unexpected": t.unexpected, "publish_errors": publish_errors,
        "deliveries_per_sec": t.delivered as f64 / elapsed.max(1e-9),
        "latency_us": { "p50": p50, "p90": p90, "p99": p99, "p99_9": p999, "max": max },
        "generator_cpu_share": share, "errors": report.errors, "first_publish_error": first_error,
    });
    if let (Some(b), Some(a)) = (before, after) {
        let per = a.cpu_micros.saturating_sub(b.cpu_micros) as f64 / t.delivered.max(1) as f64;
        println!(
            "server: {per:.2} µs CPU per delivery; RSS {} bytes",
            a.rss_bytes
        );
        summary["server_cpu_us_per_delivery"] = json!(per);
        summary["server_rss"] = json!(a.rss_bytes);
    }
    warn_if_saturated(share);
    let passed = t.lost == 0
        && t.duplicates == 0
        && t.out_of_order == 0
        && t.unexpected == 0
        && publish_errors == 0
        && t.expected > 0;
    Ok((summary, passed))
}

/// Read events from a blocking stream until `want` bench events arrived (or the deadline).
fn read_blocking(
    stream: &mut std::net::TcpStream,
    want: u64,
    deadline: Instant,
) -> Result<Vec<sse::SseEvent>, String> {
    use std::io::Read;
    let mut body = client::ResponseBody::default();
    let mut reader = sse::SseReader::new();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut bytes = Vec::new();
    while (events
        .iter()
        .filter(|e: &&sse::SseEvent| json_u64(&e.data, "seq").is_some())
        .count() as u64)
        < want
    {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or("timed out")?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("stream closed".into());
        }
        bytes.clear();
        body.feed(buf.get(..n).unwrap_or_default(), &mut bytes)?;
        reader.feed(&bytes, &mut events);
    }
    Ok(events)
}

fn replay(c: &Common) -> Result<Summary, String> {
    let url = sub_url(c)?;
    let publish_url = pub_url(c)?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let mut publisher = Publisher::connect(&publish_url, &c.pub_content_type)
        .map_err(|e| format!("publisher: {e}"))?;
    let mut publish = |seq: u64| -> Result<(), String> {
        let body = fill(
            &fill(&c.pub_body, "channel", &c.channel),
            "payload",
            &payload(seq, now_micros(), c.payload_bytes),
        );
        match publisher.post(&body) {
            Ok((s, _)) if (200..300).contains(&s) => Ok(()),
            Ok((s, t)) => Err(format!("publish {seq}: {s} {t}")),
            Err(e) => Err(format!("publish {seq}: {e}")),
        }
    };
    use std::io::Write;
    // 1. Subscribe and receive K events.
    let mut first =
        connect(url.addr, None, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    first
        .write_all(&subscribe_request(&url, None))
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));
    for seq in 0..c.before {
        publish(seq)?;
    }
    let got = read_blocking(&mut first, c.before, deadline)?;
    let last_id = got
        .iter()
        .rev()
        .find(|e| json_u64(&e.data, "seq").is_some())
        .map(|e| e.id.clone())
        .ok_or("no event id received")?;
    drop(first);
    // 2. Miss J events.
    for seq in c.before..c.before + c.events {
        publish(seq)?;
    }
    // 3. Resume.
    let resume_url = match c.resume_with.as_str() {
        "header" => url.clone(),
        param @ ("lastEventId" | "last_event_id" | "lastEventID") => {
            let sep = if url.path.contains('?') { '&' } else { '?' };
            HttpUrl {
                path: format!("{}{sep}{param}={last_id}", url.path),
                ..url.clone()
            }
        }
        other => {
            return Err(format!(
                "--resume-with {other}: expected header, lastEventId, last_event_id or lastEventID"
            ))
        }
    };
    let header_id = (c.resume_with == "header").then_some(last_id.as_str());
    let mut second =
        connect(url.addr, None, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    second
        .write_all(&subscribe_request(&resume_url, header_id))
        .map_err(|e| e.to_string())?;
    let events = read_blocking(&mut second, c.events, deadline)?;
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| json_u64(&e.data, "seq"))
        .collect();
    let expected: Vec<u64> = (c.before..c.before + c.events).collect();
    let reset = events.iter().any(|e| e.event == "reset");
    let passed = seqs == expected && !reset;
    println!(
        "replay: received {} before disconnecting, resumed from {last_id} via {}: got {:?}{} → {}",
        c.before,
        c.resume_with,
        seqs,
        if reset { " after a reset event" } else { "" },
        if passed { "PASS" } else { "FAIL" }
    );
    Ok((
        json!({ "before": c.before, "missed": c.events, "resume_with": c.resume_with, "received": seqs, "reset": reset }),
        passed,
    ))
}

fn churn(c: &Common) -> Result<Summary, String> {
    let url = sub_url(c)?;
    let run_for = Duration::from_secs(c.duration_secs.min(c.timeout_secs));
    let before = sample(c.pid);
    let opens = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let threads = c.threads.max(1);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, opens, errors) = (url.clone(), Arc::clone(&opens), Arc::clone(&errors));
            let per_thread = c.concurrency.div_ceil(threads);
            let cpu = c.cpu.map(|cpu| cpu + t);
            let spread = c.source_addrs;
            std::thread::spawn(move || {
                if let Some(cpu) = cpu {
                    let _ = crate::sys::pin_to_cpu(cpu);
                }
                let Ok(mut rt) = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let end = t0 + run_for;
                    let live = Rc::new(std::cell::Cell::new(per_thread));
                    for k in 0..per_thread {
                        let (url, opens, errors, live) = (
                            url.clone(),
                            Arc::clone(&opens),
                            Arc::clone(&errors),
                            Rc::clone(&live),
                        );
                        monoio::spawn(async move {
                            let mut i = k * 7919 + t;
                            while Instant::now() < end {
                                i += per_thread;
                                let source = source_addr(i, spread, &url.addr);
                                let Ok(s) = connect(url.addr, source, Duration::from_secs(5))
                                    .and_then(|s| {
                                        s.set_nonblocking(true)?;
                                        Ok(s)
                                    })
                                else {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                };
                                let Ok(mut stream) = monoio::net::TcpStream::from_std(s) else {
                                    continue;
                                };
                                let attempt =
                                    open_stream(&mut stream, subscribe_request(&url, None));
                                match monoio::time::timeout(Duration::from_secs(5), attempt).await {
                                    Ok(Ok(())) => opens.fetch_add(1, Ordering::Relaxed),
                                    _ => errors.fetch_add(1, Ordering::Relaxed),
                                };
                            }
                            live.set(live.get() - 1);
                        });
                    }
                    while live.get() > 0 {
                        monoio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = sample(c.pid);
    let (opens, errors) = (
        opens.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    println!(
        "churn: {opens} opens in {secs:.1}s ({:.0}/s), {errors} errors",
        opens as f64 / secs.max(1e-9)
    );
    let mut summary = json!({ "opens": opens, "errors": errors, "secs": secs, "opens_per_sec": opens as f64 / secs.max(1e-9), "concurrency": c.concurrency });
    if let (Some(b), Some(a)) = (before, after) {
        let per = a.cpu_micros.saturating_sub(b.cpu_micros) as f64 / opens.max(1) as f64;
        println!("server: {per:.1} µs CPU per subscribe handshake (connect to close)");
        summary["server_cpu_us_per_open"] = json!(per);
    }
    Ok((summary, errors == 0 && opens > 0))
}
