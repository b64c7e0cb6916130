//! Timers without a timer per connection: one sweep per worker every [`SWEEP_INTERVAL`] sends
//! heartbeats to quiet streams, ends streams whose token expired (`event: token-expired`, sent
//! by their writer), drops writers that stall or fall behind `--max-lag`, times out handshakes
//! and idle keep-alive publishers, and expires history. Hang-ups of idle subscribers are
//! noticed by one poll on the worker's epoll set ([`Worker::hangup_loop`]).

use std::rc::Rc;
use std::time::Duration;

use super::slots::{Control, Subscriber};
use super::{yield_now, State, Worker};
use crate::channel::Channels;
use crate::sse::id::unix_ms_now;
use crate::sys;

/// How often the sweep runs: the resolution of heartbeats and timeouts.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// The sweep's view of a subscriber with a write in flight.
enum Lag {
    Fine,
    /// Over `--max-lag` for the first time: a burst, or the start of a stall.
    Warn,
    /// Missed evicted events, or over `--max-lag` at two sweeps in a row: disconnect (it
    /// resumes with Last-Event-ID). A reader that keeps up drains a burst between two sweeps.
    Drop,
}

fn lag_verdict(channels: &Channels, sub: &Subscriber, max_lag: usize) -> Lag {
    if channels.missed(&sub.channels, sub.cursor, sub.acknowledged_floor) {
        return Lag::Drop;
    }
    if channels.lag(&sub.channels, sub.cursor.max(sub.joined)) <= max_lag {
        Lag::Fine
    } else if sub.lagging {
        Lag::Drop
    } else {
        Lag::Warn
    }
}

impl Worker {
    pub(super) async fn sweep_loop(self: Rc<Self>) {
        let mut ticks = monoio::time::interval(SWEEP_INTERVAL);
        loop {
            monoio::select! {
                _ = ticks.tick() => {},
                _ = self.drain_signal.wait() => return,
            }
            self.sweep();
        }
    }

    fn sweep(self: &Rc<Self>) {
        let now = self.now_secs();
        let now_ms = self.now_ms();
        let limits = *self.limits();
        let now_unix = u32::try_from(crate::auth::now_unix()).unwrap_or(u32::MAX);
        let mut due = Vec::new();
        let mut stalled = Vec::new();
        let mut lagging = Vec::new();
        let mut expired = 0u64;
        let mut rotated = 0u64;
        {
            let mut st = self.state.borrow_mut();
            let State {
                subscribers,
                channels,
                handshakes,
                ..
            } = &mut *st;
            subscribers.for_each_mut(|key, sub| {
                let closing = sub.pending.has(Control::Close);
                if sub.ends_at != 0 && now_unix >= sub.ends_at && !closing {
                    // Once: the stream ends with the event its writer sends next.
                    sub.ends_at = 0;
                    if sub.ends_with_token {
                        sub.pending.set(Control::TokenExpired);
                        expired += 1;
                    } else {
                        sub.pending.set(Control::Shutdown);
                        rotated += 1;
                    }
                    due.push(key);
                    return;
                }
                let quiet = now.saturating_sub(sub.last_write_secs);
                if matches!(sub.writer, super::slots::Writer::Busy) {
                    if closing {
                        return;
                    }
                    match lag_verdict(channels, sub, limits.max_lag_events) {
                        Lag::Drop => lagging.push(key),
                        Lag::Warn => sub.lagging = true,
                        Lag::Fine => {
                            sub.lagging = false;
                            if quiet >= limits.write_timeout_secs {
                                stalled.push(key);
                            }
                        }
                    }
                } else if limits.heartbeat_secs > 0 && quiet >= limits.heartbeat_secs {
                    sub.pending.set(Control::Heartbeat);
                    due.push(key);
                }
            });
            for e in handshakes.iter() {
                let limit = if e.idle_keepalive {
                    limits.keepalive_timeout_ms
                } else {
                    limits.handshake_timeout_ms
                };
                if !e.timed_out.get() && now_ms.saturating_sub(e.since_ms) >= limit {
                    e.timed_out.set(true);
                    // The pending read then ends (EOF) and the connection task answers 408.
                    sys::shutdown(e.fd, true, false);
                }
            }
            channels.sweep(unix_ms_now());
            self.metrics.channels.set(channels.len() as u64);
        }
        for key in stalled {
            self.metrics.write_timeouts_total.inc();
            self.close_subscriber(key);
        }
        self.metrics.token_expiries_total.add(expired);
        self.metrics.stream_rotations_total.add(rotated);
        for key in lagging {
            self.metrics.slow_consumer_disconnects_total.inc();
            self.close_subscriber(key);
        }
        self.start_writers(due);
    }

    /// Watch idle subscribers for FIN/RST: one poll on the worker's epoll set; when it fires,
    /// take the ready sockets without blocking and close the ones that are gone.
    pub(super) async fn hangup_loop(self: Rc<Self>) {
        let Ok(handle) = self.epoll.watch_handle() else {
            return;
        };
        let mut ready = Vec::new();
        loop {
            let woke = monoio::select! {
                r = handle.readable(false) => r.is_ok(),
                _ = self.drain_signal.wait() => false,
            };
            if !woke {
                return;
            }
            ready.clear();
            if self.epoll.poll_now(&mut ready).is_err() {
                continue;
            }
            for r in &ready {
                let key = super::slots::SlotKey::from_token(r.token);
                let fd = match self.state.borrow().subscribers.get(key) {
                    Some(sub) => sub.fd,
                    None => continue,
                };
                let gone = r.hung_up || (r.readable && !sys::drain_input(fd));
                if gone {
                    self.metrics.hangups_total.inc();
                    // The client closed: end with a reset, not a FIN it will never read.
                    sys::abort_on_close(fd);
                    self.close_subscriber(key);
                }
            }
            // On the epoll driver a ready poll completes without yielding: let the writers that
            // were just told to close (and everything else) run before looking again.
            yield_now().await;
        }
    }
}
