//! The two bridge threads between the log and the server: the **appender** turns publish
//! batches into pipelined `XADD`s and answers each with its ids or an error in bounded time;
//! the **tailer** backfills from the log, then follows it with `XREAD BLOCK` from its last id
//! and hands ordered events to a sink. Both are plain OS threads doing blocking I/O, never on
//! an io_uring worker; they meet the rest only through a bounded channel (appender) and a
//! callback (tailer), which the server adapts to its rings and doorbells.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

use super::config::ClusterSettings;
use super::decode::{DecodeError, Decoded, EntryKind, LogEntry, LogState};
use super::exact::{check_continuity, must_still_exist, resume_from, Loss, Resume, Seen};
use super::log::{Appended, LogError, RedisLog};
use crate::bus::NewEvent;
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

/// The answer to one batch: its ids, in order, or why not.
pub type AppendResult = Result<Vec<EventId>, AppendError>;

/// Called once per batch, on the appender thread, with the batch's answer.
pub type Reply = Box<dyn FnOnce(AppendResult) + Send>;

/// Called on the appender thread with `(token, answer)` for every batch queued with
/// [`AppenderHandle::submit_token`]. It lives on that thread, so it can own one SPSC reply
/// producer per worker (the token says which) and ring doorbells: no lock, no allocation.
pub type Replier = Box<dyn FnMut(u64, AppendResult) + Send>;

enum Answer {
    Token(u64),
    Callback(Reply),
}

struct Job {
    events: Vec<NewEvent>,
    deadline: Instant,
    answer: Answer,
}

impl Job {
    fn answer(self, replier: &mut Option<Replier>, result: AppendResult) {
        match self.answer {
            Answer::Callback(reply) => reply(result),
            Answer::Token(token) => {
                if let Some(replier) = replier.as_mut() {
                    replier(token, result);
                }
            }
        }
    }
}

/// The publishing side: cheap to clone, `submit` never blocks.
#[derive(Clone)]
pub struct AppenderHandle {
    tx: Sender<Job>,
    timeout: Duration,
    floor: Arc<Floor>,
}

impl fmt::Debug for AppenderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppenderHandle")
            .field("queued", &self.tx.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AppenderHandle {
    /// Queues a batch; `reply` is called on the appender thread with the ids (after Redis
    /// acknowledged them) or an error, within twice the operation timeout. Refuses at once
    /// ([`AppendError::Busy`], [`AppendError::Closed`]) without calling `reply`.
    pub fn submit(
        &self,
        events: Vec<NewEvent>,
        reply: impl FnOnce(AppendResult) + Send + 'static,
    ) -> Result<(), AppendError> {
        self.queue(events, Answer::Callback(Box::new(reply)))
    }

    /// Queues a batch answered through the [`Replier`] given at start, with `token`.
    pub fn submit_token(&self, token: u64, events: Vec<NewEvent>) -> Result<(), AppendError> {
        self.queue(events, Answer::Token(token))
    }

    fn queue(&self, events: Vec<NewEvent>, answer: Answer) -> Result<(), AppendError> {
        let job = Job {
            events,
            deadline: Instant::now() + self.timeout,
            answer,
        };
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => AppendError::Busy,
            TrySendError::Disconnected(_) => AppendError::Closed,
        })
    }

    /// Appends and waits for the answer (for tests, tools and start-up; not for a worker).
    pub fn append(&self, events: Vec<NewEvent>) -> AppendResult {
        let (tx, rx) = channel::bounded(1);
        self.submit(events, move |r| {
            let _ = tx.send(r);
        })?;
        match rx.recv_timeout(self.timeout * 2 + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(AppendError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(AppendError::Closed),
        }
    }

    /// The highest id known handed out here (see [`Floor`]).
    pub fn floor(&self) -> EventId {
        self.floor.get()
    }
}

/// Starts the appender thread. It stops when every [`AppenderHandle`] is dropped.
pub fn spawn_appender(
    settings: &ClusterSettings,
    floor: Arc<Floor>,
    replier: Option<Replier>,
) -> Result<(AppenderHandle, JoinHandle<()>), LogError> {
    let log = RedisLog::new(settings)?;
    let (tx, rx) = channel::bounded(APPEND_QUEUE);
    let timeout = settings.timeout;
    let thread_floor = Arc::clone(&floor);
    let thread = std::thread::Builder::new()
        .name("pushcore-appender".into())
        .spawn(move || Appender::new(log, thread_floor, replier).run(&rx))
        .map_err(|e| LogError::Connect(format!("cannot start the appender thread: {e}")))?;
    Ok((AppenderHandle { tx, timeout, floor }, thread))
}

struct Appender {
    log: RedisLog,
    floor: Arc<Floor>,
    /// When the last connection attempt failed, and why: until [`RECONNECT_PAUSE`] has passed,
    /// batches fail at once instead of each waiting for a connect timeout.
    down: Option<(Instant, String)>,
    replier: Option<Replier>,
}

impl Appender {
    fn new(log: RedisLog, floor: Arc<Floor>, replier: Option<Replier>) -> Self {
        Appender {
            log,
            floor,
            down: None,
            replier,
        }
    }

    fn run(mut self, rx: &Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            let mut events = jobs.iter().map(|j| j.events.len()).sum::<usize>();
            while events < MAX_PIPELINE_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        events += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.serve(jobs);
        }
    }

    /// Appends every waiting batch in one pipeline and answers each.
    fn serve(&mut self, jobs: Vec<Job>) {
        let now = Instant::now();
        let (live, expired): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.deadline > now);
        for job in expired {
            job.answer(&mut self.replier, Err(AppendError::Timeout));
        }
        // A batch that cannot be written as entries fails alone, not with its neighbours.
        let (live, invalid): (Vec<Job>, Vec<Job>) = live.into_iter().partition(|j| {
            j.events
                .iter()
                .all(|e| super::log::join_channels(&e.channels).is_ok())
        });
        for job in invalid {
            let why = "an event has no channel or a bad channel name";
            job.answer(&mut self.replier, Err(AppendError::Failed(why.into())));
        }
        // The I/O may take until the newest batch's deadline: every batch is answered within
        // twice the operation timeout of its submission (queueing, then one round trip).
        let Some(deadline) = live.iter().map(|j| j.deadline).max() else {
            return;
        };
        if let Err(e) = self.ensure_connected(deadline) {
            for job in live {
                job.answer(&mut self.replier, Err(e.clone()));
            }
            return;
        }
        let outcome = self.append_all(&live, deadline);
        match outcome {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                for job in live {
                    let mine: Vec<EventId> = ids.by_ref().take(job.events.len()).collect();
                    job.answer(&mut self.replier, Ok(mine));
                }
            }
            Err(e) => {
                for job in live {
                    job.answer(&mut self.replier, Err(e.clone()));
                }
            }
        }
    }

    fn ensure_connected(&mut self, deadline: Instant) -> Result<(), AppendError> {
        if self.log.is_connected() {
            return Ok(());
        }
        if let Some((at, why)) = &self.down {
            if at.elapsed() < RECONNECT_PAUSE {
                return Err(AppendError::Down(why.clone()));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.log.connect(left) {
            Ok(()) => {
                self.down = None;
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                self.down = Some((Instant::now(), why.clone()));
                Err(AppendError::Down(why))
            }
        }
    }

    /// One pipeline for all events; re-creates a lost log (above the floor) and retries once;
    /// takes back and refuses entries that landed at or below the floor.
    fn append_all(&mut self, jobs: &[Job], deadline: Instant) -> Result<Vec<EventId>, AppendError> {
        for _attempt in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AppendError::Timeout);
            }
            let events = jobs.iter().flat_map(|j| j.events.iter());
            // The floor before the append: the tailer may raise it to our own ids meanwhile.
            let floor = self.floor.get();
            match self.log.append(events, left) {
                Ok(Appended::Stored(ids)) => {
                    if ids.iter().all(|&id| id > floor) {
                        if let Some(&last) = ids.last() {
                            self.floor.raise(last);
                        }
                        return Ok(ids);
                    }
                    // The log hands out ids clients may already hold (a failover lost writes):
                    // take the whole batch back, raise the log above the floor, retry.
                    self.log.delete(&ids).map_err(map_log_error)?;
                    self.log
                        .recreate_above(floor, "log went back")
                        .map_err(map_log_error)?;
                }
                Ok(Appended::NoStream) => {
                    self.log
                        .recreate_above(floor, "log lost")
                        .map_err(map_log_error)?;
                }
                Err(e) => return Err(map_log_error(e)),
            }
        }
        Err(AppendError::Failed(
            "the log kept handing out ids at or below ones already delivered".into(),
        ))
    }
}

fn map_log_error(e: LogError) -> AppendError {
    match e {
        LogError::Connect(_) => AppendError::Down(e.to_string()),
        LogError::Timeout(_) => AppendError::Timeout,
        LogError::Io(_) => AppendError::Down(e.to_string()),
        _ => AppendError::Failed(e.to_string()),
    }
}

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
