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
        }

        impl WorkerMetrics {
            /// Prometheus text for every worker's block.
            pub fn render(all: &[Arc<WorkerMetrics>]) -> String {
                let mut out = String::with_capacity(4096);
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
}
