//! The dashboard's feed: one JSON snapshot of the server a second, published as
//! `event: stats` on [`super::DASHBOARD_CHANNEL`] through the ordinary publish path, so every
//! worker delivers it to its dashboard viewers and a viewer that reconnects resumes exactly.
//!
//! Counters come from [`WorkerMetrics`] (read-only); what only a worker's own core knows (its
//! channels' subscribers and history bytes) each worker posts once a second on a [`Board`].
//! Rates (events/s, bytes/s) are left to the page: it divides counter deltas by the time
//! between two snapshots, so a snapshot is a pure function of its inputs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::metrics::WorkerMetrics;

/// Channels listed per worker on the board, and in a snapshot.
pub const TOP_CHANNELS: usize = 10;

/// What one worker knows about itself that the counters do not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerBoard {
    /// Encoded bytes held in this worker's history rings (frames are shared between workers,
    /// so the process holds about one worker's worth, not the sum).
    pub history_bytes: u64,
    /// This worker's busiest public channels: (name, local subscribers), busiest first.
    pub channels: Vec<(Box<str>, u64)>,
    /// Local subscribers of internal channels (dashboard viewers).
    pub viewers: u64,
}

/// One slot per worker, written by that worker's sweep and read by the stats publisher, both
/// once a second and both with `try_lock`: neither ever waits, and nothing on an event's or a
/// request's path touches it. A slot that is busy at that instant is skipped for one second.
#[derive(Debug, Default)]
pub struct Board {
    slots: Vec<Mutex<WorkerBoard>>,
}

impl Board {
    pub fn new(workers: usize) -> Board {
        Board {
            slots: (0..workers).map(|_| Mutex::default()).collect(),
        }
    }

    /// Worker `index` replaces its report.
    pub fn post(&self, index: usize, report: WorkerBoard) {
        if let Some(Ok(mut slot)) = self.slots.get(index).map(Mutex::try_lock) {
            *slot = report;
        }
    }

    /// Every worker's latest report (a busy slot reads as empty).
    pub fn read(&self) -> Vec<WorkerBoard> {
        self.slots
            .iter()
            .map(|s| s.try_lock().map(|g| g.clone()).unwrap_or_default())
            .collect()
    }
}

/// A worker's board from its channels: `(name, local subscribers, history bytes)` each.
pub fn worker_board<'a>(channels: impl Iterator<Item = (&'a str, usize, usize)>) -> WorkerBoard {
    let mut board = WorkerBoard::default();
    let mut busiest: Vec<(Box<str>, u64)> = Vec::new();
    for (name, subscribers, history_bytes) in channels {
        board.history_bytes += history_bytes as u64;
        if name.starts_with('$') {
            board.viewers += subscribers as u64;
        } else if subscribers > 0 {
            busiest.push((name.into(), subscribers as u64));
        }
    }
    board.channels = busiest_first(busiest);
    board
}

fn busiest_first(mut channels: Vec<(Box<str>, u64)>) -> Vec<(Box<str>, u64)> {
    channels.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    channels.truncate(TOP_CHANNELS);
    channels
}

/// Inputs of a snapshot other than the counters.
#[derive(Debug)]
pub struct Extra<'a> {
    pub boards: Vec<WorkerBoard>,
    pub rss_bytes: Option<u64>,
    pub uptime_secs: u64,
    pub version: &'a str,
    /// Wall clock of the snapshot, Unix milliseconds.
    pub now_ms: u64,
}

/// The snapshot as one line of JSON.
pub fn snapshot(metrics: &[Arc<WorkerMetrics>], extra: &Extra<'_>) -> String {
    let sum = |f: fn(&WorkerMetrics) -> u64| -> u64 { metrics.iter().map(|m| f(m.as_ref())).sum() };
    let workers: Vec<Value> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let board = extra.boards.get(i);
            json!({
                "connections": m.connections.get(),
                "subscribers": m.subscribers.get(),
                "channels": m.channels.get(),
                "historyBytes": board.map_or(0, |b| b.history_bytes),
            })
        })
        .collect();
    let mut merged: HashMap<&str, u64> = HashMap::new();
    for board in &extra.boards {
        for (name, n) in &board.channels {
            *merged.entry(name).or_default() += n;
        }
    }
    let channels = busiest_first(merged.into_iter().map(|(k, v)| (k.into(), v)).collect());
    let channels: Vec<Value> = channels
        .iter()
        .map(|(name, n)| json!({ "name": name, "subscribers": n }))
        .collect();
    json!({
        "t": extra.now_ms,
        "version": extra.version,
        "uptimeSecs": extra.uptime_secs,
        "rssBytes": extra.rss_bytes,
        "historyBytes": extra.boards.iter().map(|b| b.history_bytes).max().unwrap_or(0),
        "viewers": extra.boards.iter().map(|b| b.viewers).sum::<u64>(),
        "workers": workers,
        "totals": {
            "connections": sum(|m| m.connections.get()),
            "subscribers": sum(|m| m.subscribers.get()),
            "eventsPublished": sum(|m| m.events_published_total.get()),
            "publishRequests": sum(|m| m.publish_requests_total.get()),
            "deliveries": sum(|m| m.deliveries_total.get()),
            "bytesWritten": sum(|m| m.bytes_written_total.get()),
            "replays": sum(|m| m.replays_total.get()),
            "resets": sum(|m| m.resets_total.get()),
            "slowConsumerDisconnects": sum(|m| m.slow_consumer_disconnects_total.get()),
            "rejectedConnections": sum(|m| m.connections_rejected_total.get()),
            "rejectedPerIp": sum(|m| m.connections_rejected_per_ip_total.get()),
            "publishRejected": sum(|m| m.publish_rejected_total.get()),
            "authRefusals": sum(|m| m.auth_refusals_total.get()),
        },
        "channels": channels,
    })
    .to_string()
}

/// Resident set size of this process from `/proc/self/statm` (pages × page size).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm_rss(&statm, crate::sys::page_size_bytes())
}

/// The second field of `/proc/PID/statm` (resident pages), in bytes.
pub fn parse_statm_rss(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(n: usize) -> Vec<Arc<WorkerMetrics>> {
        (0..n).map(|_| Arc::new(WorkerMetrics::default())).collect()
    }

    #[test]
    fn snapshot_sums_counters_lists_workers_and_merges_channels() {
        let m = metrics(2);
        m[0].subscribers.set(30);
        m[1].subscribers.set(21);
        m[0].connections.set(31);
        m[1].connections.set(22);
        m[0].deliveries_total.add(5);
        m[1].deliveries_total.add(7);
        m[1].connections_rejected_total.add(2);
        m[0].slow_consumer_disconnects_total.add(1);
        let boards = vec![
            worker_board([("load", 30, 100), ("b", 2, 50), ("$dashboard", 1, 900)].into_iter()),
            worker_board([("load", 20, 100), ("c", 3, 0), ("empty", 0, 7)].into_iter()),
        ];
        let extra = Extra {
            boards,
            rss_bytes: Some(4096),
            uptime_secs: 12,
            version: "9.9.9",
            now_ms: 1_700_000_000_000,
        };
        let v: Value = serde_json::from_str(&snapshot(&m, &extra)).unwrap_or_default();
        assert_eq!(v["version"], "9.9.9");
        assert_eq!(v["uptimeSecs"], 12);
        assert_eq!(v["rssBytes"], 4096);
        assert_eq!(v["t"], 1_700_000_000_000u64);
        assert_eq!(v["totals"]["subscribers"], 51);
        assert_eq!(v["totals"]["connections"], 53);
        assert_eq!(v["totals"]["deliveries"], 12);
        assert_eq!(v["totals"]["rejectedConnections"], 2);
        assert_eq!(v["totals"]["slowConsumerDisconnects"], 1);
        assert_eq!(v["workers"][0]["subscribers"], 30);
        assert_eq!(v["workers"][1]["subscribers"], 21);
        assert_eq!(v["workers"][0]["historyBytes"], 1050);
        assert_eq!(v["historyBytes"], 1050);
        assert_eq!(v["viewers"], 1);
        let expected = json!([
            {"name": "load", "subscribers": 50},
            {"name": "c", "subscribers": 3},
            {"name": "b", "subscribers": 2},
        ]);
        assert_eq!(v["channels"], expected);
    }

    #[test]
    fn a_worker_lists_its_busiest_public_channels_only() {
        let many: Vec<(String, usize)> = (0..15).map(|i| (format!("ch{i:02}"), i)).collect();
        let board = worker_board(many.iter().map(|(n, s)| (n.as_str(), *s, 1)));
        assert_eq!(board.channels.len(), TOP_CHANNELS);
        assert_eq!(board.channels[0], ("ch14".into(), 14));
        assert_eq!(board.history_bytes, 15);
        assert_eq!(board.viewers, 0);
    }

    #[test]
    fn board_slots_round_trip_and_unknown_workers_are_ignored() {
        let board = Board::new(2);
        let report = worker_board([("a", 1, 2)].into_iter());
        board.post(1, report.clone());
        board.post(7, report.clone());
        assert_eq!(board.read(), vec![WorkerBoard::default(), report]);
    }

    #[test]
    fn statm_rows() {
        let rows: &[(&str, Option<u64>)] = &[
            ("1000 250 100 10 0 300 0\n", Some(250 * 4096)),
            ("1 0 0 0 0 0 0", Some(0)),
            ("1000", None),
            ("", None),
            ("1000 x 1", None),
            ("1000 -5 1", None),
        ];
        for (text, want) in rows {
            assert_eq!(parse_statm_rss(text, 4096), *want, "{text:?}");
        }
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
