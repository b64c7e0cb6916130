//! `pushcore bench publish`: the publish ceiling. `--concurrency` keep-alive publishers
//! (spread round-robin over the `--pub-url`s) post batches of `--batch` events (a JSON array)
//! as fast as the server acknowledges them, for `--duration` seconds: a closed loop, so the
//! figure is what the server sustains, not an offered rate.
//!
//! Reported: events acknowledged per second, publish round trips (p50/p99), errors, and the
//! server's CPU per acknowledged event (every `--pid` process: in a cluster each instance and
//! Redis, each also reported alone, with its share of a core).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::Publisher;
use super::meter::Meter;
use super::report::{Figure, Series};
use super::stats::{Latencies, Timeline};
use super::target::{fill, now_micros, parse_url, payload, HttpUrl};
use super::{describe_meter, percentiles, say, server_meter, wait_until, Common, Outcome};

/// Most events in one batch (the server's limit).
const MAX_BATCH: usize = crate::api::publish::MAX_BATCH_EVENTS;

/// What one publisher thread did.
#[derive(Default)]
struct Tallies {
    round_trips: Latencies,
    acked: Timeline,
    errors: u64,
    first_error: Option<String>,
}

/// The body of one batch: `batch` bench events numbered from `first`, as a JSON array (one
/// bare object when `batch` is 1).
pub fn batch_body(c: &Common, first: u64, batch: usize) -> String {
    let one = |seq| {
        let now = now_micros();
        fill(
            &fill(&c.pub_body, "channel", &c.channel),
            "payload",
            &payload(seq, now, now, c.payload_bytes),
        )
    };
    if batch <= 1 {
        return one(first);
    }
    let items: Vec<String> = (0..batch as u64).map(|k| one(first + k)).collect();
    format!("[{}]", items.join(","))
}

fn pub_urls(c: &Common) -> Result<Vec<HttpUrl>, String> {
    let urls = c
        .pub_url
        .iter()
        .map(|u| parse_url(&fill(u, "channel", &c.channel)))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("--pub-url: expected at least one URL".into());
    }
    Ok(urls)
}

pub(super) fn publish(c: &Common) -> Result<Outcome, String> {
    if c.batch == 0 || c.batch > MAX_BATCH {
        return Err(format!("--batch: expected 1 to {MAX_BATCH}"));
    }
    if c.concurrency == 0 {
        return Err("--concurrency: expected at least 1".into());
    }
    let urls = pub_urls(c)?;
    let run_for = Duration::from_secs(c.duration_secs.min(c.timeout_secs));
    let server = server_meter(c)?;
    let meter = Meter::new(c.quiet);
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let before = server.sample();
    let own0 = crate::sys::process_cpu_micros();
    let t0 = Instant::now();
    let t0_micros = now_micros();
    let handles: Vec<_> = (0..c.concurrency)
        .map(|k| {
            let url = urls.get(k % urls.len()).cloned();
            let (c, acked, stop) = (c.clone(), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut t = Tallies::default();
                let Some(url) = url else { return t };
                let mut publisher = match Publisher::connect(&url, &c.pub_content_type) {
                    Ok(p) => p,
                    Err(e) => {
                        t.errors += 1;
                        t.first_error = Some(format!("connect {}: {e}", url.host));
                        return t;
                    }
                };
                // Each publisher numbers its own events: seq = k, k + n, … (unique per run).
                let mut seq = k as u64 * 1_000_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let body = batch_body(&c, seq, c.batch);
                    seq += c.batch as u64;
                    let sent = Instant::now();
                    let posted = publisher.post(&body);
                    t.round_trips.push(sent.elapsed().as_micros() as u64);
                    match posted {
                        Ok((s, _)) if (200..300).contains(&s) => {
                            let now = now_micros();
                            for _ in 0..c.batch {
                                t.acked.record(now);
                            }
                            acked.fetch_add(c.batch as u64, Ordering::Relaxed);
                        }
                        Ok((s, text)) => {
                            t.errors += 1;
                            t.first_error.get_or_insert(format!("{s} {}", text.trim()));
                        }
                        Err(e) => {
                            t.errors += 1;
                            t.first_error.get_or_insert(e.to_string());
                            match Publisher::connect(&url, &c.pub_content_type) {
                                Ok(p) => publisher = p,
                                Err(_) => break,
                            }
                        }
                    }
                }
                t
            })
        })
        .collect();
    meter.phase("publishing", run_for.as_secs() * 10);
    wait_until(t0 + run_for, || {
        meter.show(t0.elapsed().as_millis() as u64 / 100, || {
            format!(
                "(0.1 s), {} events acknowledged",
                acked.load(Ordering::Relaxed)
            )
        });
        false
    });
    stop.store(true, Ordering::Relaxed);
    let mut all = Tallies::default();
    let first_error = Mutex::new(None::<String>);
    for h in handles {
        match h.join() {
            Ok(t) => {
                all.round_trips.extend(&t.round_trips);
                all.acked.merge(&t.acked);
                all.errors += t.errors;
                if let (Ok(mut f), Some(e)) = (first_error.lock(), t.first_error) {
                    f.get_or_insert(e);
                }
            }
            Err(_) => all.errors += 1,
        }
    }
    // The last round trips finished after `stop`: measure to now.
    let secs = t0.elapsed().as_secs_f64();
    let after = server.sample();
    meter.clear();
    let own = crate::sys::process_cpu_micros().saturating_sub(own0) as f64 / (secs * 1e6);
    let events = acked.load(Ordering::Relaxed);
    let rate = events as f64 / secs.max(1e-9);
    let rt = percentiles(&mut all.round_trips);
    let ms = |k: &str| rt[k].as_u64().unwrap_or(0) as f64 / 1000.0;
    let first_error = first_error.into_inner().ok().flatten();
    let mut lines = Vec::new();
    say(
        &mut lines,
        format!(
            "publish: {events} events acknowledged in {secs:.1}s: {rate:.0} events/s ({} publishers × batches of {} over {} URL(s)), {} errors{}",
            c.concurrency,
            c.batch,
            urls.len(),
            all.errors,
            first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        ),
    );
    say(
        &mut lines,
        format!(
            "round trip ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms("p50"),
            ms("p90"),
            ms("p99"),
            ms("max")
        ),
    );
    let cost = before.cost_until(&after);
    if let Some(line) = cost.describe(events, "event", server.cpu_list().as_deref()) {
        say(&mut lines, line);
    }
    let mut summary = json!({
        "events": events, "secs": secs, "events_per_sec": rate, "batch": c.batch,
        "publishers": c.concurrency, "pub_urls": urls.len(), "errors": all.errors,
        "first_error": first_error, "round_trip_us": rt, "generator_cpu_cores": own,
    });
    cost.add_to(&mut summary, "server_cpu_us_per_event", events);
    describe_meter(&server, &mut summary);
    Ok(Outcome {
        summary,
        passed: all.errors == 0 && events > 0,
        figure: Figure {
            lines,
            series: Some(Series {
                what: "events acknowledged".into(),
                counts: all.acked.since(t0_micros),
                reference: None,
                origin: "the start".into(),
            }),
            ..Figure::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        c: Common,
    }

    #[test]
    fn batches_are_json_arrays_of_numbered_events() {
        let Ok(cli) = Cli::try_parse_from(["x", "--payload-bytes", "80"]) else {
            panic!("flags")
        };
        let one: serde_json::Value =
            serde_json::from_str(&batch_body(&cli.c, 7, 1)).unwrap_or_default();
        assert_eq!(one["channel"], "bench");
        let many: serde_json::Value =
            serde_json::from_str(&batch_body(&cli.c, 10, 3)).unwrap_or_default();
        let seqs: Vec<_> = many
            .as_array()
            .map(|a| a.iter().map(|e| e["data"]["seq"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(seqs, [Some(10), Some(11), Some(12)]);
    }

    #[test]
    fn several_urls_are_repeatable_flags() {
        let Ok(cli) = Cli::try_parse_from([
            "x",
            "--sub-url",
            "http://127.0.0.1:1/a?c={channel}",
            "--sub-url",
            "http://127.0.0.1:2/a?c={channel}",
            "--pub-url",
            "http://127.0.0.1:3/p",
            "--pid",
            "1",
            "--pid",
            "2",
        ]) else {
            panic!("flags")
        };
        assert_eq!(cli.c.sub_url.len(), 2);
        assert_eq!(cli.c.pid, [1, 2]);
        let urls = pub_urls(&cli.c).unwrap_or_default();
        assert_eq!(urls.len(), 1);
        let Ok(default) = Cli::try_parse_from(["x"]) else {
            panic!("flags")
        };
        assert_eq!(default.c.sub_url.len(), 1);
        assert!(default.c.pid.is_empty());
    }
}
