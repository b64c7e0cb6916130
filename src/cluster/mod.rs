//! Cluster mode: many instances share one event log, a Redis stream (`--redis-url`).
//!
//! A publish on any instance is appended to the log (one entry per event, all its channels in
//! it; entry id = event id, `<ms>-<seq>` from Redis) and acknowledged only after Redis
//! acknowledged it. Every instance tails the log from the last id it read and fans out
//! locally, so the same event has the same id and bytes everywhere, and a client resumes with
//! one `Last-Event-ID` on any instance.
//!
//! - [`config`]: the `--redis-*` options and their validation.
//! - [`decode`]: Redis replies → entries and stream state (pure, table-tested).
//! - [`exact`]: when the log can serve a resume exactly, and when it was lost (pure).
//! - [`log`]: the blocking client (one connection, timeouts, the commands the log needs).
//! - [`bridge`]: the appender, tailer and reader threads, and their hand-offs.
//! - [`sequencer`]: the bus's hub driven by those threads: the Redis implementation of the
//!   sequencer seam, which the workers cannot tell from the in-process one.
//!
//! Blocking Redis I/O runs only on the bridge threads and at start-up, never on an io_uring
//! worker. How the server plugs them in:
//! - **publish**: a worker (or the sequencer seam) calls [`AppenderHandle::submit_token`]
//!   (never blocks; `Busy` → 503 at once); the appender thread answers through the
//!   [`Replier`] given to [`Cluster::start`], which owns one reply ring per worker (the token
//!   says which) and rings its doorbell. An error → 503 + `Retry-After`.
//! - **fan-out**: the tailer thread calls the [`Sink`] with [`TailEvent`]s in id order; on
//!   `Events` it formats each frame once and pushes it to every worker's frame ring (the
//!   sequencer's job in single-node mode); `Ready` → `/healthz` ready; `Lost` → `reset` to
//!   every subscriber and no exact resume at or below its floor.
//! - **old resumes**: [`ReaderHandle::submit`] reads `(after, until]` from the log with the
//!   exactness verdict ([`Resume`]): `Exact` → serve, `Ahead` → hold and retry, `Inexact` →
//!   `reset` first.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod bridge;
pub mod config;
pub mod decode;
pub mod exact;
pub mod log;
pub mod sequencer;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod reply_rows;
#[cfg(test)]
mod state_tests;

use std::fmt;
use std::sync::Arc;

pub use bridge::{
    AppendError, AppendResult, AppenderHandle, Floor, LogEvent, ReadResult, ReaderHandle, Replay,
    Replier, Sink, TailEvent, TailerHandle,
};
pub use config::{ClusterConfig, ClusterSettings};
pub use decode::{LogEntry, LogState};
pub use exact::{resume_from, Loss, Resume};
pub use log::{LogError, RedisLog};

use crate::sse::id::EventId;

/// Why cluster mode could not start; one line, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Starting cluster mode.
#[derive(Debug)]
pub struct Cluster;

/// The three bridge threads' handles, as [`Cluster::start`] returns them.
#[derive(Debug)]
pub struct Bridges {
    /// Publishes: `submit(events, reply)`, never blocks.
    pub appender: AppenderHandle,
    /// The tailer feeding the sink; `stop()` on shutdown.
    pub tailer: TailerHandle,
    /// Range reads for resumes older than local history: `submit(after, until, max, reply)`.
    pub reader: ReaderHandle,
}

impl Cluster {
    /// Waits up to `--redis-startup-wait` for Redis, makes sure the log key is a stream (or
    /// creates it with a marker above `floor`, the highest id this instance may have handed
    /// out before), then starts the appender and the tailer. The tailer backfills every entry
    /// after `backfill_after` (`0-0`: the whole log) into `sink`, reports
    /// [`TailEvent::Ready`], then follows the log. `replier` answers batches queued with
    /// [`AppenderHandle::submit_token`] (batches queued with `submit` carry their own reply).
    pub fn start(
        settings: &ClusterSettings,
        floor: EventId,
        backfill_after: EventId,
        sink: Sink,
        replier: Option<Replier>,
    ) -> Result<Bridges, StartError> {
        let mut log = RedisLog::new(settings).map_err(|e| {
            StartError(format!(
                "--redis-url {}: {e}",
                config::redact(&settings.url)
            ))
        })?;
        let unreachable = |e: &LogError| {
            StartError(format!(
                "--redis-url {}: Redis did not answer within {:?}: {e}",
                log_url(settings),
                settings.startup_wait
            ))
        };
        let deadline = std::time::Instant::now() + settings.startup_wait;
        log.connect_within(settings.startup_wait)
            .map_err(|e| unreachable(&e))?;
        let key_error =
            |e: LogError| StartError(format!("--redis-stream {:?}: {e}", settings.stream));
        // A connection that fails while the log is being prepared (dropped, timed out, a read
        // interrupted by a signal) is retried until the startup wait is over; what Redis
        // answers (a wrong type, an error) is final.
        loop {
            match prepare_log(&mut log, floor) {
                Ok(()) => break,
                Err(LogError::Connect(_) | LogError::Io(_) | LogError::Timeout(_))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(key_error(e)),
            }
        }
        let shared = Arc::new(Floor::new(floor));
        drop(log);
        let (appender, _thread) =
            bridge::spawn_appender(settings, Arc::clone(&shared), replier).map_err(key_error)?;
        let reader = bridge::spawn_reader(settings).map_err(key_error)?;
        let tailer =
            bridge::spawn_tailer(settings, backfill_after, shared, sink).map_err(key_error)?;
        Ok(Bridges {
            appender,
            tailer,
            reader,
        })
    }
}

fn log_url(settings: &ClusterSettings) -> String {
    config::redact(&settings.url)
}

/// Make sure the log exists as a stream whose ids are above `floor` (the newest id this
/// instance may have handed out before).
fn prepare_log(log: &mut RedisLog, floor: EventId) -> Result<(), LogError> {
    match log.key_type()?.as_str() {
        "none" => {
            log.recreate_above(floor, "log created")?;
        }
        "stream" => {}
        other => return Err(LogError::WrongType(other.to_owned())),
    }
    let state = log.state()?;
    if state.is_some_and(|s| s.last_generated < floor) {
        // The log is below ids this instance handed out before: raise it.
        log.recreate_above(floor, "log below floor")?;
    }
    Ok(())
}
