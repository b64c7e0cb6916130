//! Counters: each worker owns one block and is its only writer (a relaxed load + store, no
//! locked instruction); `/metrics` sums the blocks of every worker and renders Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

macro_rules! counters {
    ($( $field:ident : $kind:literal, $help:literal; )*) => {
        /// One worker's counters. Written only by that worker.
        #[derive(Debug, Default)]
        pub struct WorkerMetrics {
            $( pub $field: Counter, )*
            /// From a publish request's events submitted to the sequencer to their ids known.
            pub publish_sequenced: Histogram,
            /// From a resuming stream's request read to its first bytes (handshake, reset and
            /// any events read back from the log) written.
            pub replay_first_byte: Histogram,
        }

        impl WorkerMetrics {
            /// Prometheus text for every worker's block.
            pub fn render(all: &[Arc<WorkerMetrics>]) -> String {
                let mut out = String::with_capacity(8192);
                let _ = writeln!(out, "# HELP pushcore_build_info The running version.");
                let _ = writeln!(out, "# TYPE pushcore_build_info gauge");
                let _ = writeln!(out, "pushcore_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
                let _ = writeln!(out, "# HELP pushcore_uptime_seconds Seconds since the server started.");
                let _ = writeln!(out, "# TYPE pushcore_uptime_seconds gauge");
                let _ = writeln!(out, "pushcore_uptime_seconds {}", uptime_secs());
                Histogram::render(
                    &mut out,
                    "pushcore_publish_sequenced_seconds",
                    "Time from a publish's events submitted to the sequencer to their ids (in cluster mode: Redis acknowledged).",
                    all.iter().map(|m| &m.publish_sequenced),
                );
                Histogram::render(
                    &mut out,
                    "pushcore_replay_first_byte_seconds",
                    "Time from a resuming stream's request to its first bytes written (includes waits for the log).",
                    all.iter().map(|m| &m.replay_first_byte),
                );
                $(
                    let name = concat!("pushcore_", stringify!($field));
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} {}", $kind);
                    if $kind == "gauge" {
                        for (worker, m) in all.iter().enumerate() {
                            let _ = writeln!(out, "{name}{{worker=\"{worker}\"}} {}", m.$field.get());
                        }
                    } else {
                        let total: u64 = all.iter().map(|m| m.$field.get()).sum();
                        let _ = writeln!(out, "{name} {total}");
                    }
                )*
                out
            }
        }
    };
}

counters! {
    connections: "gauge", "Open connections (subscribers and publishers) per worker.";
    subscribers: "gauge", "Open event streams per worker.";
    channels: "gauge", "Channels known per worker (with history or subscribers).";
    connections_accepted_total: "counter", "Connections accepted.";
    connections_rejected_total: "counter", "Connections refused with 503 because the server was at capacity.";
    connections_rejected_per_ip_total: "counter", "Connections refused with 429 because their address had --max-connections-per-ip open.";
    accept_errors_total: "counter", "accept() failures, such as EMFILE, each followed by a back-off.";
    events_published_total: "counter", "Events sequenced (given an id).";
    publish_requests_total: "counter", "Publish requests answered with 200.";
    publish_rejected_total: "counter", "Publish requests refused with 503 because a ring was full.";
    deliveries_total: "counter", "Event frames written to subscribers.";
    bytes_written_total: "counter", "Bytes written to subscribers.";
    writes_total: "counter", "writev calls to subscribers.";
    heartbeats_total: "counter", "Heartbeat comments written.";
    replays_total: "counter", "Subscriptions that resumed from a Last-Event-ID.";
    gzip_streams_total: "counter", "Event streams opened gzip-encoded (--gzip and Accept-Encoding: gzip).";
    log_replays_total: "counter", "Resumes older than local history served from the cluster's log.";
    resets_total: "counter", "Reset events sent because a Last-Event-ID could not be served exactly.";
    slow_consumer_disconnects_total: "counter", "Subscribers disconnected for falling behind.";
    write_timeouts_total: "counter", "Connections dropped because a write made no progress.";
    handshake_timeouts_total: "counter", "Connections answered 408 for not finishing a request head.";
    parse_errors_total: "counter", "Requests refused with a 4xx/5xx for malformed input.";
    auth_refusals_total: "counter", "Requests refused with 401 or 403 by authorization.";
    token_expiries_total: "counter", "Streams closed because their token expired.";
    stream_rotations_total: "counter", "Streams ended by --max-stream-lifetime (with event: shutdown).";
    hangups_total: "counter", "Idle subscribers noticed gone (FIN/RST).";
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Note the server's start (for `pushcore_uptime_seconds`); the first call wins.
pub fn mark_start() {
    let _ = STARTED.get_or_init(std::time::Instant::now);
}

fn uptime_secs() -> u64 {
    STARTED.get().map_or(0, |t| t.elapsed().as_secs())
}

/// Upper bounds of the latency buckets, in microseconds (`+Inf` follows).
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// A latency histogram, single-writer like [`Counter`]: fixed buckets, a sum and a count.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [Counter; LATENCY_BUCKETS_US.len() + 1],
    sum_us: Counter,
}

impl Histogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        if let Some(b) = self.buckets.get(i) {
            b.inc();
        }
        self.sum_us.add(us);
    }

    /// Prometheus text of the histograms `all` summed.
    fn render<'a>(
        out: &mut String,
        name: &str,
        help: &str,
        all: impl Iterator<Item = &'a Histogram> + Clone,
    ) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, le) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += all
                .clone()
                .filter_map(|h| h.buckets.get(i))
                .map(Counter::get)
                .sum::<u64>();
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *le as f64 / 1e6
            );
        }
        cumulative += all
            .clone()
            .filter_map(|h| h.buckets.get(LATENCY_BUCKETS_US.len()))
            .map(Counter::get)
            .sum::<u64>();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum_us: u64 = all.map(|h| h.sum_us.get()).sum();
        let _ = writeln!(out, "{name}_sum {}", sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// A single-writer counter: only its worker changes it, anybody may read it.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: load + store is exact and avoids a locked read-modify-write.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    #[inline]
    pub fn dec(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_sums_counters_and_lists_gauges_per_worker() {
        let a = Arc::new(WorkerMetrics::default());
        let b = Arc::new(WorkerMetrics::default());
        a.deliveries_total.add(3);
        b.deliveries_total.add(4);
        a.connections.set(2);
        b.connections.set(5);
        let text = WorkerMetrics::render(&[a, b]);
        assert!(text.contains("pushcore_deliveries_total 7\n"), "{text}");
        assert!(
            text.contains("pushcore_connections{worker=\"0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("pushcore_connections{worker=\"1\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE pushcore_resets_total counter\n"),
            "{text}"
        );
    }

    #[test]
    fn histograms_are_cumulative_and_summed_over_workers() {
        let a = Arc::new(WorkerMetrics::default());
        let b = Arc::new(WorkerMetrics::default());
        a.publish_sequenced
            .observe(std::time::Duration::from_micros(80));
        b.publish_sequenced
            .observe(std::time::Duration::from_micros(300));
        b.publish_sequenced
            .observe(std::time::Duration::from_secs(5));
        let text = WorkerMetrics::render(&[a, b]);
        for line in [
            "pushcore_publish_sequenced_seconds_bucket{le=\"0.0001\"} 1\n",
            "pushcore_publish_sequenced_seconds_bucket{le=\"0.00025\"} 1\n",
            "pushcore_publish_sequenced_seconds_bucket{le=\"0.0005\"} 2\n",
            "pushcore_publish_sequenced_seconds_bucket{le=\"1\"} 2\n",
            "pushcore_publish_sequenced_seconds_bucket{le=\"+Inf\"} 3\n",
            "pushcore_publish_sequenced_seconds_count 3\n",
            "pushcore_publish_sequenced_seconds_sum 5.00038\n",
            "# TYPE pushcore_replay_first_byte_seconds histogram\n",
            "pushcore_build_info{version=",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
