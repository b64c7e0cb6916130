//! The appender thread: publish batches coalesced into one pipeline, each answered with its
//! ids (after Redis acknowledged them) or an error, within a bounded time.

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
                .all(|e| crate::cluster::log::join_channels(&e.channels).is_ok())
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
