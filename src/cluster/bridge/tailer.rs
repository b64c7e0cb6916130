//! The tailer thread: backfill from the log, then follow it from the last id read, handing
//! ordered events (and the log's ups, downs and losses) to a sink.

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

/// An event read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub id: EventId,
    pub event: NewEvent,
}

/// What the tailer tells its sink, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailEvent {
    /// Events in id order, each after the previous one handed over (markers are skipped).
    Events(Vec<LogEvent>),
    /// An entry that is not a pushcore event was stepped over (counted, not delivered).
    Skipped { id: EventId, error: DecodeError },
    /// The backfill reached the log's end as of start-up: replays may be answered now.
    Ready { last_id: EventId },
    /// Redis went away (the tailer keeps reconnecting; publishes fail meanwhile).
    Down { error: String },
    /// Redis is back with the log intact: tailing goes on after `last_id`, no gap.
    Up { last_id: EventId },
    /// The log was lost (see [`Loss`]). The log now hands out ids above `floor` only;
    /// everything up to `floor` can no longer be served exactly: send `reset` to every
    /// subscriber (their next events may be missing), and treat resumes at or below `floor`
    /// as inexact. Tailing goes on after `last_id`.
    Lost {
        loss: Loss,
        floor: EventId,
        last_id: EventId,
    },
}

/// The sink the tailer hands everything to, on its own thread. It may block (back-pressure
/// onto the tailer); the tailer does not read ahead meanwhile.
pub type Sink = Box<dyn FnMut(TailEvent) + Send>;

/// Controls the tailer thread.
#[derive(Debug)]
pub struct TailerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TailerHandle {
    /// Stops the tailer (within about [`TAIL_BLOCK`] plus the operation timeout) and waits.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TailerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts the tailer thread: backfill after `after` (`0-0`: the whole log), then follow.
pub fn spawn_tailer(
    settings: &ClusterSettings,
    after: EventId,
    floor: Arc<Floor>,
    sink: Sink,
) -> Result<TailerHandle, LogError> {
    let log = RedisLog::new(settings)?;
    let stop = Arc::new(AtomicBool::new(false));
    let tailer = Tailer {
        log,
        sink,
        floor,
        stop: Arc::clone(&stop),
        seen: Seen {
            last_id: after,
            entries_added: 0,
            existed: false,
        },
        check_every: settings.timeout.max(TAIL_BLOCK),
        live: false,
        covered_until: EventId::ZERO,
    };
    let thread = std::thread::Builder::new()
        .name("pushcore-tailer".into())
        .spawn(move || tailer.run())
        .map_err(|e| LogError::Connect(format!("cannot start the tailer thread: {e}")))?;
    Ok(TailerHandle {
        stop,
        thread: Some(thread),
    })
}

struct Tailer {
    log: RedisLog,
    sink: Sink,
    floor: Arc<Floor>,
    stop: Arc<AtomicBool>,
    seen: Seen,
    check_every: Duration,
    /// Past the backfill: a marker read now means the log was re-created under us.
    live: bool,
    /// Markers up to this id were in the log when a loss was last reported: not a new loss.
    covered_until: EventId,
}

impl Tailer {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(mut self) {
        // Backfill, until it succeeds once.
        loop {
            if self.stopped() {
                return;
            }
            match self.backfill() {
                Ok(()) => break,
                Err(e) => {
                    (self.sink)(TailEvent::Down {
                        error: e.to_string(),
                    });
                    if !self.reconnect() {
                        return;
                    }
                }
            }
        }
        self.live = true;
        (self.sink)(TailEvent::Ready {
            last_id: self.seen.last_id,
        });
        let mut last_check = Instant::now();
        while !self.stopped() {
            match self
                .log
                .read_after(self.seen.last_id, READ_COUNT, TAIL_BLOCK)
            {
                Ok(entries) => {
                    if !entries.is_empty() {
                        self.deliver(entries);
                    }
                }
                Err(e) => {
                    if !self.outage(e) {
                        return;
                    }
                    last_check = Instant::now();
                    continue;
                }
            }
            if last_check.elapsed() >= self.check_every {
                last_check = Instant::now();
                if let Err(e) = self.verify() {
                    if !self.outage(e) {
                        return;
                    }
                }
            }
        }
    }

    /// Reports `Down`, waits for Redis and a good look at the log, reports `Up`. `false` when
    /// stopped meanwhile.
    fn outage(&mut self, error: LogError) -> bool {
        (self.sink)(TailEvent::Down {
            error: error.to_string(),
        });
        loop {
            if !self.reconnect() {
                return false;
            }
            if self.verify().is_ok() {
                break;
            }
        }
        (self.sink)(TailEvent::Up {
            last_id: self.seen.last_id,
        });
        true
    }

    /// Reads every entry after the last id up to the end of the log, page by page.
    fn backfill(&mut self) -> Result<(), LogError> {
        self.log.connect(Duration::from_secs(1))?;
        self.verify()?;
        loop {
            let page = self
                .log
                .range(self.seen.last_id, EventId::MAX, READ_COUNT)?;
            if page.is_empty() {
                return Ok(());
            }
            self.deliver(page);
        }
    }

    /// Waits until Redis answers again (or the tailer is stopped: `false`).
    fn reconnect(&mut self) -> bool {
        self.log.disconnect();
        while !self.stopped() {
            std::thread::sleep(RECONNECT_PAUSE);
            if self.log.connect(TAIL_BLOCK).is_ok() {
                return true;
            }
        }
        false
    }

    /// Compares the log with what was seen; on a loss, raises the log above the floor and
    /// reports it. Errors are connection errors (the caller reports `Down`).
    fn verify(&mut self) -> Result<(), LogError> {
        let state = self.log.state()?;
        let exists = match &state {
            Some(st) if self.seen.existed && must_still_exist(st, self.seen.last_id) => {
                self.log.entry_exists(self.seen.last_id)?
            }
            _ => true,
        };
        match check_continuity(&self.seen, state.as_ref(), exists) {
            Ok(()) => {
                self.remember(state.as_ref());
                Ok(())
            }
            Err(loss) => self.lost(loss),
        }
    }

    fn lost(&mut self, loss: Loss) -> Result<(), LogError> {
        self.floor.raise(self.seen.last_id);
        let floor = self.floor.get();
        let raised = self.log.recreate_above(floor, "log lost")?;
        let state = self.log.state()?;
        // Our own marker, or one another instance wrote for the same loss: reported now.
        self.covered_until = state.map_or(raised.id(), |s| s.last_generated.max(raised.id()));
        self.seen.entries_added = 0;
        self.remember(state.as_ref());
        (self.sink)(TailEvent::Lost {
            loss,
            floor,
            last_id: self.seen.last_id,
        });
        Ok(())
    }

    fn remember(&mut self, state: Option<&LogState>) {
        if let Some(st) = state {
            self.seen.existed = true;
            self.seen.entries_added = self.seen.entries_added.max(st.entries_added);
        }
    }

    fn deliver(&mut self, entries: Vec<Decoded>) {
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = entry.id();
            if id <= self.seen.last_id {
                continue;
            }
            self.seen.last_id = id;
            match entry {
                Decoded::Entry(e) => match e.kind {
                    EntryKind::Event(event) => events.push(LogEvent { id, event }),
                    EntryKind::Marker(_) if self.live && id > self.covered_until => {
                        // Someone re-created the log above a floor: what was acknowledged
                        // after our last event and before the loss is gone.
                        if !events.is_empty() {
                            (self.sink)(TailEvent::Events(std::mem::take(&mut events)));
                        }
                        self.floor.raise(id);
                        self.covered_until = id;
                        (self.sink)(TailEvent::Lost {
                            loss: Loss::Recreated(id),
                            floor: id,
                            last_id: id,
                        });
                    }
                    EntryKind::Marker(_) => {}
                },
                Decoded::Bad { id, error } => {
                    if !events.is_empty() {
                        (self.sink)(TailEvent::Events(std::mem::take(&mut events)));
                    }
                    (self.sink)(TailEvent::Skipped { id, error });
                }
            }
        }
        self.floor.raise(self.seen.last_id);
        if !events.is_empty() {
            (self.sink)(TailEvent::Events(events));
        }
    }
}
