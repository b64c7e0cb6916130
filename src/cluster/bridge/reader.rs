//! The reader thread: range reads for resumes older than an instance's own history.

#[allow(unused_imports)]
use super::*;
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
use crate::bus::NewEvent;
#[allow(unused_imports)]
use crate::cluster::config::ClusterSettings;
#[allow(unused_imports)]
use crate::cluster::decode::{DecodeError, Decoded, EntryKind, LogEntry, LogState};
#[allow(unused_imports)]
use crate::cluster::exact::{check_continuity, must_still_exist, resume_from, Loss, Resume, Seen};
#[allow(unused_imports)]
use crate::cluster::log::{Appended, LogError, RedisLog};
#[allow(unused_imports)]
use crate::sse::id::EventId;

/// A resume served from the log (for an id older than local history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Whether the log can serve `(after, …]` exactly; `events` is empty unless `Exact`.
    pub resume: Resume,
    /// The events in `(after, until]`, in order, at most the number asked for.
    pub events: Vec<LogEvent>,
    /// True when `events` reaches `until` (or the log's end); false when cut at the maximum.
    pub complete: bool,
}

/// The answer to a read.
pub type ReadResult = Result<Replay, AppendError>;

struct ReadJob {
    after: EventId,
    until: EventId,
    max_events: usize,
    deadline: Instant,
    reply: Box<dyn FnOnce(ReadResult) + Send>,
}

/// Range reads for resumes older than local history, on a thread of their own.
#[derive(Clone)]
pub struct ReaderHandle {
    tx: Sender<ReadJob>,
    timeout: Duration,
}

impl fmt::Debug for ReaderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderHandle")
            .field("queued", &self.tx.len())
            .finish()
    }
}

/// Reads that may wait for the reader thread; beyond it `submit` refuses.
pub const READ_QUEUE: usize = 1024;

impl ReaderHandle {
    /// Queues a read of `(after, until]`, at most `max_events` events; `reply` is called on the
    /// reader thread within twice the operation timeout. Refuses at once when the queue is full.
    pub fn submit(
        &self,
        after: EventId,
        until: EventId,
        max_events: usize,
        reply: impl FnOnce(ReadResult) + Send + 'static,
    ) -> Result<(), AppendError> {
        let job = ReadJob {
            after,
            until,
            max_events,
            deadline: Instant::now() + self.timeout,
            reply: Box::new(reply),
        };
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => AppendError::Busy,
            TrySendError::Disconnected(_) => AppendError::Closed,
        })
    }

    /// Reads and waits for the answer (tests and tools).
    pub fn read(&self, after: EventId, until: EventId, max_events: usize) -> ReadResult {
        let (tx, rx) = channel::bounded(1);
        self.submit(after, until, max_events, move |r| {
            let _ = tx.send(r);
        })?;
        match rx.recv_timeout(self.timeout * 2 + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(AppendError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(AppendError::Closed),
        }
    }
}

/// Starts the reader thread. It stops when every [`ReaderHandle`] is dropped.
pub fn spawn_reader(settings: &ClusterSettings) -> Result<ReaderHandle, LogError> {
    let mut log = RedisLog::new(settings)?;
    let (tx, rx) = channel::bounded::<ReadJob>(READ_QUEUE);
    std::thread::Builder::new()
        .name("pushcore-log-reader".into())
        .spawn(move || {
            let mut down_since: Option<(Instant, String)> = None;
            while let Ok(job) = rx.recv() {
                if job.deadline <= Instant::now() {
                    (job.reply)(Err(AppendError::Timeout));
                    continue;
                }
                if !log.is_connected() {
                    if let Some((at, why)) = &down_since {
                        if at.elapsed() < RECONNECT_PAUSE {
                            (job.reply)(Err(AppendError::Down(why.clone())));
                            continue;
                        }
                    }
                    let left = job.deadline.saturating_duration_since(Instant::now());
                    if let Err(e) = log.connect(left) {
                        let why = e.to_string();
                        down_since = Some((Instant::now(), why.clone()));
                        (job.reply)(Err(AppendError::Down(why)));
                        continue;
                    }
                    down_since = None;
                }
                let answer = read_range(&mut log, job.after, job.until, job.max_events);
                (job.reply)(answer.map_err(map_log_error));
            }
        })
        .map_err(|e| LogError::Connect(format!("cannot start the reader thread: {e}")))?;
    Ok(ReaderHandle {
        tx,
        timeout: settings.timeout,
    })
}

/// Reads `(after, until]` if the log serves it exactly, checking again after the read that
/// nothing in it was trimmed meanwhile.
pub fn read_range(
    log: &mut RedisLog,
    after: EventId,
    until: EventId,
    max_events: usize,
) -> Result<Replay, LogError> {
    let inexact = |resume| Replay {
        resume,
        events: Vec::new(),
        complete: false,
    };
    let resume = resume_from(log.state()?.as_ref(), after);
    if resume != Resume::Exact {
        return Ok(inexact(resume));
    }
    let mut events = Vec::new();
    let mut cursor = after;
    let mut complete = false;
    while events.len() < max_events {
        let want = (max_events - events.len()).min(READ_COUNT);
        let page = log.range(cursor, until, want)?;
        if page.is_empty() {
            complete = true;
            break;
        }
        for entry in page {
            cursor = entry.id();
            if let Decoded::Entry(LogEntry {
                id,
                kind: EntryKind::Event(event),
            }) = entry
            {
                events.push(LogEvent { id, event });
            }
        }
        if cursor >= until {
            complete = true;
            break;
        }
    }
    // A trim that raced the read would have removed entries right after `after`.
    let resume = resume_from(log.state()?.as_ref(), after);
    if resume == Resume::Inexact {
        return Ok(inexact(resume));
    }
    Ok(Replay {
        resume: Resume::Exact,
        events,
        complete,
    })
}
