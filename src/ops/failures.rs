//! Connection-level failures, aggregated: never one log line per refused client.
//!
//! Workers already count every refusal and drop in their single-writer [`WorkerMetrics`]
//! blocks (no lock, no shared cache line). A reporter thread reads those counters every
//! interval and, when any moved, writes one warning such as
//! `connections refused or dropped in the last 10 s: 1200 at capacity (503; raise
//! --max-connections), 34 over the per-address limit (429; --max-connections-per-ip)`.
//! The cause of the latest accept error (EMFILE, ENFILE, …) is kept in one atomic
//! ([`note_accept_error`]) so the summary can name it and its fix.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::WorkerMetrics;

/// The log target of the summaries.
pub const TARGET: &str = "pushcore::conn";

/// How often the reporter looks, by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

static LAST_ACCEPT_ERRNO: AtomicI32 = AtomicI32::new(0);

/// Remember the cause of an accept failure for the next summary (one relaxed store).
pub fn note_accept_error(e: &io::Error) {
    if let Some(code) = e.raw_os_error() {
        LAST_ACCEPT_ERRNO.store(code, Ordering::Relaxed);
    }
}

/// Running totals of each kind of failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureCounts {
    pub at_capacity: u64,
    pub per_address: u64,
    pub accept_errors: u64,
    pub handshake_timeouts: u64,
    pub bad_requests: u64,
    pub auth_refusals: u64,
    pub write_timeouts: u64,
    pub slow_consumers: u64,
}

impl FailureCounts {
    /// The totals over every worker's counters.
    pub fn from_metrics(all: &[Arc<WorkerMetrics>]) -> FailureCounts {
        let sum = |f: fn(&WorkerMetrics) -> u64| -> u64 { all.iter().map(|m| f(m)).sum() };
        FailureCounts {
            at_capacity: sum(|m| m.connections_rejected_total.get()),
            per_address: sum(|m| m.connections_rejected_per_ip_total.get()),
            accept_errors: sum(|m| m.accept_errors_total.get()),
            handshake_timeouts: sum(|m| m.handshake_timeouts_total.get()),
            bad_requests: sum(|m| m.parse_errors_total.get()),
            auth_refusals: sum(|m| m.auth_refusals_total.get()),
            write_timeouts: sum(|m| m.write_timeouts_total.get()),
            slow_consumers: sum(|m| m.slow_consumer_disconnects_total.get()),
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &FailureCounts) -> FailureCounts {
        FailureCounts {
            at_capacity: self.at_capacity.saturating_sub(earlier.at_capacity),
            per_address: self.per_address.saturating_sub(earlier.per_address),
            accept_errors: self.accept_errors.saturating_sub(earlier.accept_errors),
            handshake_timeouts: self
                .handshake_timeouts
                .saturating_sub(earlier.handshake_timeouts),
            bad_requests: self.bad_requests.saturating_sub(earlier.bad_requests),
            auth_refusals: self.auth_refusals.saturating_sub(earlier.auth_refusals),
            write_timeouts: self.write_timeouts.saturating_sub(earlier.write_timeouts),
            slow_consumers: self.slow_consumers.saturating_sub(earlier.slow_consumers),
        }
    }

    pub fn total(&self) -> u64 {
        self.at_capacity
            + self.per_address
            + self.accept_errors
            + self.handshake_timeouts
            + self.bad_requests
            + self.auth_refusals
            + self.write_timeouts
            + self.slow_consumers
    }

    /// One line for a window of `window_secs` in which these failures happened; `None` if none.
    /// `last_accept_errno` names the cause of accept errors.
    pub fn summary(&self, window_secs: u64, last_accept_errno: i32) -> Option<String> {
        if self.total() == 0 {
            return None;
        }
        let accept_cause = if last_accept_errno == 0 {
            String::new()
        } else {
            let err = io::Error::from_raw_os_error(last_accept_errno);
            let fix = match last_accept_errno {
                libc::EMFILE => {
                    "; raise the open-file limit: ulimit -n, or LimitNOFILE= in systemd"
                }
                libc::ENFILE => "; the system file table is full: raise fs.file-max",
                libc::ENOBUFS | libc::ENOMEM => "; the kernel is out of socket memory",
                _ => "",
            };
            format!(", last: {err}{fix}")
        };
        let parts = [
            (
                self.at_capacity,
                "at capacity (503; raise --max-connections)".to_owned(),
            ),
            (
                self.per_address,
                "over the per-address limit (429; --max-connections-per-ip)".to_owned(),
            ),
            (self.accept_errors, format!("accept errors{accept_cause}")),
            (
                self.handshake_timeouts,
                "handshake timeouts (408; --handshake-timeout)".to_owned(),
            ),
            (self.bad_requests, "malformed requests (4xx)".to_owned()),
            (
                self.auth_refusals,
                "refused by authorization (401/403)".to_owned(),
            ),
            (
                self.write_timeouts,
                "stalled writes (--write-timeout)".to_owned(),
            ),
            (self.slow_consumers, "slow consumers (--max-lag)".to_owned()),
        ];
        let listed: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        Some(format!(
            "{} connections refused or dropped in the last {window_secs} s: {}",
            self.total(),
            listed.join(", ")
        ))
    }
}

/// The reporter thread; stops (after one last summary) when dropped or [`stop`](Self::stop)ped.
#[derive(Debug)]
pub struct FailureReporter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl FailureReporter {
    /// Every `interval`, read the totals with `read` and log a summary of what changed.
    pub fn spawn<F>(interval: Duration, read: F) -> io::Result<FailureReporter>
    where
        F: Fn() -> FailureCounts + Send + 'static,
    {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pushcore-failures".into())
            .spawn(move || {
                let window_secs = interval.as_secs().max(1);
                let mut last = read();
                loop {
                    let stopping = {
                        let (lock, cvar) = &*flag;
                        let Ok(guard) = lock.lock() else { return };
                        match cvar.wait_timeout_while(guard, interval, |stopped| !*stopped) {
                            Ok((guard, _)) => *guard,
                            Err(_) => return,
                        }
                    };
                    let now = read();
                    let delta = now.since(&last);
                    last = now;
                    let errno = LAST_ACCEPT_ERRNO.load(Ordering::Relaxed);
                    if let Some(line) = delta.summary(window_secs, errno) {
                        tracing::warn!(
                            target: TARGET,
                            window_secs,
                            total = delta.total(),
                            at_capacity = delta.at_capacity,
                            per_address = delta.per_address,
                            accept_errors = delta.accept_errors,
                            handshake_timeouts = delta.handshake_timeouts,
                            bad_requests = delta.bad_requests,
                            auth_refusals = delta.auth_refusals,
                            write_timeouts = delta.write_timeouts,
                            slow_consumers = delta.slow_consumers,
                            "{line}"
                        );
                    }
                    if stopping {
                        return;
                    }
                }
            })?;
        Ok(FailureReporter {
            stop,
            thread: Some(thread),
        })
    }

    /// Log the last summary and end the thread.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let (lock, cvar) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FailureReporter {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_only_what_happened() {
        let quiet = FailureCounts::default();
        assert_eq!(quiet.summary(10, 0), None);
        let flood = FailureCounts {
            at_capacity: 1200,
            per_address: 34,
            ..FailureCounts::default()
        };
        assert_eq!(
            flood.summary(10, 0).as_deref(),
            Some(
                "1234 connections refused or dropped in the last 10 s: 1200 at capacity (503; \
                 raise --max-connections), 34 over the per-address limit (429; \
                 --max-connections-per-ip)"
            )
        );
        let emfile = FailureCounts {
            accept_errors: 7,
            ..FailureCounts::default()
        };
        let line = emfile.summary(10, libc::EMFILE).unwrap_or_default();
        assert!(line.contains("7 accept errors, last: "), "{line}");
        assert!(line.contains("LimitNOFILE="), "{line}");
    }

    #[test]
    fn deltas_come_from_the_workers_counters() {
        let a = Arc::new(WorkerMetrics::default());
        let b = Arc::new(WorkerMetrics::default());
        a.connections_rejected_total.add(5);
        b.connections_rejected_total.add(2);
        b.connections_rejected_per_ip_total.add(1);
        let all = [Arc::clone(&a), Arc::clone(&b)];
        let before = FailureCounts::from_metrics(&all);
        assert_eq!(before.at_capacity, 7);
        a.connections_rejected_total.add(3);
        b.slow_consumer_disconnects_total.add(4);
        let delta = FailureCounts::from_metrics(&all).since(&before);
        assert_eq!(
            delta,
            FailureCounts {
                at_capacity: 3,
                slow_consumers: 4,
                ..FailureCounts::default()
            }
        );
    }

    #[test]
    fn reporter_reads_and_stops() {
        let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&reads);
        let reporter = FailureReporter::spawn(Duration::from_secs(3600), move || {
            counter.fetch_add(1, Ordering::Relaxed);
            FailureCounts::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        reporter.stop();
        // Once at start, once for the last summary: stop does not wait for the interval.
        assert_eq!(reads.load(Ordering::Relaxed), 2);
    }
}
