//! The bridge threads between the log and the server: the **appender** turns publish
//! batches into pipelined `XADD`s and answers each with its ids or an error in bounded time;
//! the **tailer** backfills from the log, then follows it with `XREAD BLOCK` from its last id
//! and hands ordered events to a sink. Both are plain OS threads doing blocking I/O, never on
//! an io_uring worker; they meet the rest only through a bounded channel (appender) and a
//! callback (tailer), which the server adapts to its rings and doorbells.

//!
//! - `appender.rs`: publish batches → pipelined `XADD`s, answered in bounded time;
//! - `tailer.rs`: backfill, then `XREAD BLOCK` from the last id, into a sink;
//! - `reader.rs`: range reads for resumes older than an instance's history.

mod appender;
mod reader;
mod tailer;

pub use appender::*;
pub use reader::*;
pub use tailer::*;

#[allow(unused_imports)]
use std::fmt;
#[allow(unused_imports)]
use std::sync::atomic::{AtomicBool, Ordering};
#[allow(unused_imports)]
use std::sync::{Arc, Mutex};
#[allow(unused_imports)]
use std::thread::JoinHandle;
#[allow(unused_imports)]
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

#[allow(unused_imports)]
use super::config::ClusterSettings;
#[allow(unused_imports)]
use super::decode::{DecodeError, Decoded, EntryKind, LogEntry, LogState};
#[allow(unused_imports)]
use super::exact::{check_continuity, must_still_exist, resume_from, Loss, Resume, Seen};
#[allow(unused_imports)]
use super::log::{Appended, LogError, RedisLog};
#[allow(unused_imports)]
use crate::bus::NewEvent;
#[allow(unused_imports)]
use crate::sse::id::EventId;

/// Publish batches that may wait for the appender; beyond it `submit` refuses (503).
pub const APPEND_QUEUE: usize = 4096;
/// Most events coalesced into one pipeline.
pub const MAX_PIPELINE_EVENTS: usize = 1024;
/// Entries per backfill page and per `XREAD`.
pub const READ_COUNT: usize = 1024;
/// How long one `XREAD BLOCK` waits; the tailer checks the log's continuity and its stop flag
/// at least this often while the log is quiet.
pub const TAIL_BLOCK: Duration = Duration::from_millis(500);
/// Pause between reconnection attempts.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// The highest id this instance knows was handed out (delivered by its tailer or acknowledged
/// to its publishers). A re-created log starts above it. Shared by the two bridge threads only.
#[derive(Debug, Default)]
pub struct Floor(Mutex<EventId>);

impl Floor {
    pub fn new(id: EventId) -> Self {
        Floor(Mutex::new(id))
    }
    pub fn get(&self) -> EventId {
        match self.0.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
    /// Raises the floor to `id` if it is higher.
    pub fn raise(&self, id: EventId) {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = (*g).max(id);
    }
}

/// Why a publish batch was not appended. Every variant means "not acknowledged": the server
/// answers 503 + Retry-After (the events may still have been stored when Redis timed out
/// after receiving them; a retry can then store them twice, never zero times silently).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The appender's queue is full.
    Busy,
    /// Redis is unreachable (the appender keeps trying to reconnect).
    Down(String),
    /// No answer within the operation timeout.
    Timeout,
    /// Redis refused or the log could not be made safe to append to.
    Failed(String),
    /// The appender has stopped.
    Closed,
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Busy => f.write_str("the event log's queue is full"),
            AppendError::Down(e) => write!(f, "the event log is unreachable: {e}"),
            AppendError::Timeout => f.write_str("the event log did not answer in time"),
            AppendError::Failed(e) => write!(f, "the event log refused the events: {e}"),
            AppendError::Closed => f.write_str("the event log appender has stopped"),
        }
    }
}

impl std::error::Error for AppendError {}

fn map_log_error(e: LogError) -> AppendError {
    match e {
        LogError::Connect(_) => AppendError::Down(e.to_string()),
        LogError::Timeout(_) => AppendError::Timeout,
        LogError::Io(_) => AppendError::Down(e.to_string()),
        _ => AppendError::Failed(e.to_string()),
    }
}
