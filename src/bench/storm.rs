//! `pushcore bench storm`: the deploy scenario. N subscribers receive K events; all disconnect
//! at once; J events are published while they are away; all reconnect at once (or spread over
//! `--spread-ms`, like clients honouring a jittered `retry:`) with `Last-Event-ID`, and must
//! receive exactly the J missed events, in order, with no `reset`.
//!
//! Reported: time from the reconnect signal until every subscriber has all J events, the time
//! from each subscriber's own reconnect to its first replayed event (p50/p99), and the server's
//! CPU per resumed stream over the reconnect window (process and whole-core).
//!
//! One process (`--threads` generator threads): up to ~19,900 subscribers fit in its open-file
//! limit of 20,000.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::{connect, read_events, source_addr, subscribe_request, Publisher};
use super::meter::Meter;
use super::report::Figure;
use super::stats::{json_u64, Latencies, Tally, Totals};
use super::target::{fill, now_micros, payload, HttpUrl};
use super::{
    describe_meter, percentiles, pub_url, say, server_meter, sub_url, wait_until,
    warn_if_saturated, Common, Outcome, OwnCpu, GENERATOR_SATURATED_SHARE,
};

/// Most error messages kept.
const MAX_ERRORS: usize = 20;

/// Phases the coordinator announces to the generator threads.
const CONNECT: u8 = 0;
const DISCONNECT: u8 = 1;
const RECONNECT: u8 = 2;
const STOP: u8 = 3;

/// Counters shared between the coordinator and the generator threads.
#[derive(Debug, Default)]
struct Shared {
    phase: AtomicU8,
    /// Streams whose response head arrived (first connection).
    opened: AtomicU64,
    /// Subscribers that have their K events and an id to resume from.
    ready: AtomicU64,
    /// Subscribers that failed before or during the first connection.
    failed_first: AtomicU64,
    /// Streams closed at the disconnect signal.
    closed: AtomicU64,
    /// Subscribers that received all J missed events after reconnecting.
    resumed: AtomicU64,
    /// Subscribers whose reconnection ended without all J events.
    failed_resume: AtomicU64,
    /// When the reconnect signal was given (Unix epoch µs).
    reconnect_at: AtomicU64,
}

impl Shared {
    fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one generator thread saw.
#[derive(Debug, Default)]
struct ThreadResult {
    /// Tallies of the J missed events, one per subscriber that reconnected.
    totals: Totals,
    /// From each subscriber's reconnect (after its spread delay) to its first replayed event.
    first_event: Latencies,
    /// From the reconnect signal to each subscriber's last missed event.
    complete: Latencies,
    resets: u64,
    errors: Vec<String>,
}

impl ThreadResult {
    fn error(&mut self, e: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        }
    }
}

#[derive(Clone, Debug)]
struct Plan {
    url: HttpUrl,
    before: u64,
    missed: u64,
    spread_ms: u64,
    spread_addrs: usize,
    window: usize,
    cpu: Option<usize>,
}

pub(super) fn storm(c: &Common) -> Result<Outcome, String> {
    let url = sub_url(c)?;
    let publish_url = pub_url(c)?;
    if c.before == 0 || c.events == 0 {
        return Err(
            "--before and --events must be at least 1 (an id to resume from, events to miss)"
                .into(),
        );
    }
    let server = server_meter(c)?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let meter = Meter::new(c.quiet);
    let shared = Arc::new(Shared::default());
    let threads = c.threads.max(1);
    let plan = Plan {
        url,
        before: c.before,
        missed: c.events,
        spread_ms: c.spread_ms,
        spread_addrs: c.source_addrs,
        window: c.window,
        cpu: c.cpu,
    };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mine: Vec<usize> = (t..c.conns).step_by(threads).collect();
            let (plan, shared) = (plan.clone(), Arc::clone(&shared));
            std::thread::spawn(move || storm_thread(t, mine, plan, shared))
        })
        .collect();
    let n = c.conns as u64;
    let mut publisher = None;
    let mut publish_error = None;
    let mut publish = |range: std::ops::Range<u64>, paced: bool| {
        let p = match &mut publisher {
            Some(p) => p,
            None => match Publisher::connect(&publish_url, &c.pub_content_type) {
                Ok(p) => publisher.insert(p),
                Err(e) => {
                    publish_error.get_or_insert(format!("publisher: {e}"));
                    return;
                }
            },
        };
        let interval = Duration::from_secs_f64(1.0 / c.rate.max(0.001));
        let t0 = Instant::now();
        for (i, seq) in range.enumerate() {
            if paced {
                if let Some(wait) =
                    (t0 + interval.mul_f64(i as f64)).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(wait);
                }
            }
            let now = now_micros();
            let body = fill(
                &fill(&c.pub_body, "channel", &c.channel),
                "payload",
                &payload(seq, now, now, c.payload_bytes),
            );
            match p.post(&body) {
                Ok((s, _)) if (200..300).contains(&s) => {}
                Ok((s, t)) => {
                    publish_error.get_or_insert(format!("publish {seq}: {s} {t}"));
                }
                Err(e) => {
                    publish_error.get_or_insert(format!("publish {seq}: {e}"));
                }
            }
        }
    };

    // 1. Connect everyone, then publish K events and wait until everyone has them.
    meter.phase("connecting", n);
    wait_until(deadline, || {
        let (o, f) = (shared.get(&shared.opened), shared.get(&shared.failed_first));
        meter.show(o + f, || format!("open, {f} failed"));
        o + f >= n
    });
    std::thread::sleep(Duration::from_millis(300));
    publish(0..c.before, true);
    meter.phase("receiving", n);
    wait_until(deadline, || {
        let (r, f) = (shared.get(&shared.ready), shared.get(&shared.failed_first));
        meter.show(r + f, || "have their first events".into());
        r + f >= n
    });
    let ready = shared.get(&shared.ready);
    // 2. Everyone disconnects; J events are published while they are away.
    shared.phase.store(DISCONNECT, Ordering::Relaxed);
    wait_until(deadline, || shared.get(&shared.closed) >= ready);
    std::thread::sleep(Duration::from_millis(300));
    publish(c.before..c.before + c.events, false);
    std::thread::sleep(Duration::from_millis(300));
    // 3. The storm: everyone reconnects with Last-Event-ID.
    let before = server.sample();
    // The generator's share over the storm alone: it connects and reads for everyone.
    let own = OwnCpu::start(crate::sys::process_cpu_micros(), threads);
    let storm_start = Instant::now();
    shared.reconnect_at.store(now_micros(), Ordering::Relaxed);
    shared.phase.store(RECONNECT, Ordering::Relaxed);
    meter.phase("resuming", ready);
    let all = wait_until(deadline, || {
        let (r, f) = (
            shared.get(&shared.resumed),
            shared.get(&shared.failed_resume),
        );
        meter.show(r + f, || format!("resumed, {f} failed"));
        r + f >= ready
    });
    let storm_secs = storm_start.elapsed().as_secs_f64();
    let after = server.sample();
    let share = own.share(crate::sys::process_cpu_micros());
    shared.phase.store(STOP, Ordering::Relaxed);
    let mut result = ThreadResult::default();
    for h in handles {
        match h.join() {
            Ok(r) => {
                result.totals.merge(&r.totals);
                result.first_event.extend(&r.first_event);
                result.complete.extend(&r.complete);
                result.resets += r.resets;
                let room = MAX_ERRORS.saturating_sub(result.errors.len());
                result.errors.extend(r.errors.into_iter().take(room));
            }
            Err(_) => result.error("a generator thread panicked".into()),
        }
    }
    meter.clear();
    let resumed = shared.get(&shared.resumed);
    let failed_first = shared.get(&shared.failed_first);
    // Subscribers that never got to resume count all J events as lost.
    let unresumed = n.saturating_sub(result.totals.expected / c.events.max(1));
    let mut t = result.totals;
    t.expected += unresumed * c.events;
    t.lost += unresumed * c.events;
    let first = percentiles(&mut result.first_event);
    let complete = percentiles(&mut result.complete);
    let ms = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0) as f64 / 1000.0;
    let mut lines = Vec::new();
    say(
        &mut lines,
        format!(
            "storm: {resumed}/{n} resumed after missing {} events{} in {:.3}s (last one complete at {:.1} ms); delivered {}/{}, lost {}, duplicated {}, out of order {}, resets {}, failed before the storm {failed_first}",
            c.events,
            if c.spread_ms > 0 { format!(" (reconnects spread over {} ms)", c.spread_ms) } else { " (all at once)".into() },
            storm_secs,
            ms(&complete, "max"),
            t.delivered, t.expected, t.lost, t.duplicates, t.out_of_order, result.resets
        ),
    );
    say(
        &mut lines,
        format!(
            "time to first replayed event ms: p50 {:.2}  p99 {:.2}  max {:.2}",
            ms(&first, "p50"),
            ms(&first, "p99"),
            ms(&first, "max")
        ),
    );
    let mut summary = json!({
        "conns": c.conns, "before": c.before, "missed": c.events, "spread_ms": c.spread_ms,
        "resumed": resumed, "failed_before_storm": failed_first,
        "storm_secs": storm_secs, "all_resumed": all && resumed == n,
        "time_to_first_replayed_us": first, "time_to_complete_us": complete,
        "expected": t.expected, "delivered": t.delivered, "lost": t.lost,
        "duplicates": t.duplicates, "out_of_order": t.out_of_order, "unexpected": t.unexpected,
        "resets": result.resets, "publish_error": publish_error, "errors": result.errors,
        "generator_cpu_share": share, "generator_saturated": share > GENERATOR_SATURATED_SHARE,
    });
    let cost = before.cost_until(&after);
    if let Some(line) = cost.describe(resumed, "resumed stream", server.cpu_list().as_deref()) {
        say(&mut lines, line);
    }
    cost.add_to(&mut summary, "server_cpu_us_per_resume", resumed);
    describe_meter(&server, &mut summary);
    warn_if_saturated(share);
    let passed = resumed == n
        && t.lost == 0
        && t.duplicates == 0
        && t.out_of_order == 0
        && t.unexpected == 0
        && result.resets == 0
        && publish_error.is_none();
    Ok(Outcome {
        summary,
        passed,
        figure: Figure {
            lines,
            latencies: Some(result.first_event),
            ..Figure::default()
        },
    })
}

/// A uniformly spread delay in `0..spread_ms` for subscriber `i` (deterministic per run).
fn spread_delay(i: usize, spread_ms: u64) -> Duration {
    if spread_ms == 0 {
        return Duration::ZERO;
    }
    // SplitMix64 of the index: well spread, no RNG dependency.
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Duration::from_micros(z % (spread_ms * 1000))
}

fn storm_thread(t: usize, conns: Vec<usize>, plan: Plan, shared: Arc<Shared>) -> ThreadResult {
    if let Some(cpu) = plan.cpu {
        let _ = crate::sys::pin_to_cpu(cpu + t);
    }
    let result = Rc::new(RefCell::new(ThreadResult::default()));
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(32768)
        .build();
    match runtime {
        Ok(mut rt) => rt.block_on(run(conns, plan, Rc::clone(&result), shared)),
        Err(e) => result.borrow_mut().error(format!("runtime: {e}")),
    }
    let out = std::mem::take(&mut *result.borrow_mut());
    out
}

async fn wait_phase(shared: &Shared, phase: u8) -> bool {
    loop {
        let now = shared.phase.load(Ordering::Relaxed);
        if now >= phase {
            return now == phase;
        }
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn open(plan: &Plan, i: usize) -> Result<monoio::net::TcpStream, String> {
    let source = source_addr(i, plan.spread_addrs, &plan.url.addr);
    connect(plan.url.addr, source, Duration::from_secs(5))
        .and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .and_then(monoio::net::TcpStream::from_std)
        .map_err(|e| format!("connect: {e}"))
}

async fn run(
    conns: Vec<usize>,
    plan: Plan,
    result: Rc<RefCell<ThreadResult>>,
    shared: Arc<Shared>,
) {
    let n = conns.len();
    // Per subscriber: the open stream after K events, and the id to resume from.
    let streams: Rc<RefCell<Vec<Option<monoio::net::TcpStream>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let last_ids: Rc<RefCell<Vec<Option<String>>>> = Rc::new(RefCell::new(vec![None; n]));
    let settled = Rc::new(Cell::new(0usize));
    let window = plan.window.max(1);
    // Phase 1: connect (at most `window` handshakes in flight) and read K events.
    for (k, &i) in conns.iter().enumerate() {
        while k >= settled.get() + window && shared.phase.load(Ordering::Relaxed) == CONNECT {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut stream = match open(&plan, i) {
            Ok(s) => s,
            Err(e) => {
                Shared::bump(&shared.failed_first);
                settled.set(settled.get() + 1);
                result.borrow_mut().error(e);
                continue;
            }
        };
        let (plan, shared, result) = (plan.clone(), Arc::clone(&shared), Rc::clone(&result));
        let (streams, last_ids, settled) = (
            Rc::clone(&streams),
            Rc::clone(&last_ids),
            Rc::clone(&settled),
        );
        monoio::spawn(async move {
            let opened = Cell::new(false);
            let mut got = 0u64;
            let mut last = None;
            let (_, end) = read_events(
                &mut stream,
                subscribe_request(&plan.url, None),
                || {
                    Shared::bump(&shared.opened);
                    settled.set(settled.get() + 1);
                    opened.set(true);
                },
                |ev| {
                    if json_u64(&ev.data, "seq").is_some() {
                        got += 1;
                        last = Some(ev.id.clone());
                    }
                    got < plan.before
                },
                |_| {},
            )
            .await;
            if !opened.get() {
                settled.set(settled.get() + 1);
            }
            match (end, last) {
                (Ok(()), Some(id)) if !id.is_empty() => {
                    if let Some(slot) = last_ids.borrow_mut().get_mut(k) {
                        *slot = Some(id);
                    }
                    if let Some(slot) = streams.borrow_mut().get_mut(k) {
                        *slot = Some(stream);
                    }
                    Shared::bump(&shared.ready);
                }
                (Ok(()), _) => {
                    Shared::bump(&shared.failed_first);
                    result
                        .borrow_mut()
                        .error("events without an id: nothing to resume from".into());
                }
                (Err(e), _) => {
                    Shared::bump(&shared.failed_first);
                    result.borrow_mut().error(format!("before the storm: {e}"));
                }
            }
        });
    }
    // Phase 2: everyone disconnects at once.
    if !wait_phase(&shared, DISCONNECT).await {
        return;
    }
    let closed = streams.borrow_mut().drain(..).flatten().count();
    shared.closed.fetch_add(closed as u64, Ordering::Relaxed);
    // Phase 3: everyone reconnects with Last-Event-ID.
    if !wait_phase(&shared, RECONNECT).await {
        return;
    }
    let reconnect_at = shared.reconnect_at.load(Ordering::Relaxed);
    let ids = std::mem::take(&mut *last_ids.borrow_mut());
    let pending = Rc::new(Cell::new(0usize));
    // Tallies live outside the tasks: one still waiting at the end counts what it received.
    let mut tallies = Vec::new();
    for (k, id) in ids.into_iter().enumerate() {
        let Some(id) = id else { continue };
        let i = conns.get(k).copied().unwrap_or(k);
        pending.set(pending.get() + 1);
        let tally = Rc::new(RefCell::new(Tally::new(plan.missed)));
        tallies.push(Rc::clone(&tally));
        let (plan, shared, result, pending) = (
            plan.clone(),
            Arc::clone(&shared),
            Rc::clone(&result),
            Rc::clone(&pending),
        );
        monoio::spawn(async move {
            let delay = spread_delay(i, plan.spread_ms);
            if !delay.is_zero() {
                monoio::time::sleep(delay).await;
            }
            let start = now_micros();
            let mut first = None;
            let mut resets = 0;
            let end = match open(&plan, i) {
                Err(e) => Err(e),
                Ok(mut stream) => {
                    read_events(
                        &mut stream,
                        subscribe_request(&plan.url, Some(&id)),
                        || {},
                        |ev| {
                            if ev.event == "reset" {
                                resets += 1;
                            }
                            let Some(seq) = json_u64(&ev.data, "seq") else {
                                return true;
                            };
                            first.get_or_insert_with(now_micros);
                            // The missed events are K..K+J; anything else is unexpected.
                            let mut t = tally.borrow_mut();
                            t.record(seq.wrapping_sub(plan.before));
                            t.unique < t.events()
                        },
                        |_| {},
                    )
                    .await
                    .1
                }
            };
            let now = now_micros();
            let mut r = result.borrow_mut();
            r.resets += resets;
            if let Some(f) = first {
                r.first_event.push(f.saturating_sub(start));
            }
            let complete = {
                let t = tally.borrow();
                t.unique == t.events()
            };
            if complete {
                r.complete.push(now.saturating_sub(reconnect_at));
                Shared::bump(&shared.resumed);
            } else {
                Shared::bump(&shared.failed_resume);
                if let Err(e) = end {
                    r.error(format!("resuming: {e}"));
                }
            }
            pending.set(pending.get() - 1);
        });
    }
    while pending.get() > 0 && shared.phase.load(Ordering::Relaxed) == RECONNECT {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut r = result.borrow_mut();
    for t in &tallies {
        r.totals.add(&t.borrow());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_delays_stay_in_range_and_spread_out() {
        assert_eq!(spread_delay(5, 0), Duration::ZERO);
        let delays: Vec<Duration> = (0..1000).map(|i| spread_delay(i, 100)).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_millis(100)));
        let early = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(50))
            .count();
        assert!(
            (350..650).contains(&early),
            "{early} of 1000 in the first half"
        );
    }
}
