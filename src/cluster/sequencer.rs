//! The Redis Streams sequencer: the bus's [`Hub`] (every worker's rings) driven by the bridge
//! threads, so that workers publish and receive exactly as with the in-process sequencer.
//!
//! ```text
//!  workers ──Request──▶ intake thread ──submit──▶ appender ──XADD…──▶ Redis
//!          ◀──Reply────               ◀─(ids)───
//!  workers ◀──Delivery── tailer (sink: frame once, push one Arc per worker) ◀──XREAD── Redis
//! ```
//! The intake thread owns the request and reply rings ([`Intake`]); the appender and the reader
//! answer it through a channel and its doorbell. The tailer thread owns the frame rings
//! ([`Fanout`]): every instance formats the same entry into the same bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel;

use super::bridge::{LogEvent, TailEvent};
use super::exact::Resume;
use super::{AppenderHandle, Cluster, ClusterSettings, LogState, ReaderHandle, StartError};
use crate::bus::hub::PortId;
use crate::bus::{
    Answer, Ask, Busy, DoorbellRx, Fanout, Framer, Hub, Intake, Reply, Request, Sequenced,
};
use crate::sse::id::EventId;

/// Most events one resume may read back from the log.
pub const MAX_REPLAY_EVENTS: usize = 200_000;
/// Requests the intake thread takes per round.
const TAKE_PER_ROUND: usize = 4096;
/// How long the intake thread sleeps without a ring (it also wakes to notice a stop).
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Cluster mode, running: the intake thread and the bridges.
#[derive(Debug)]
pub struct RedisSequencer {
    stop: Arc<AtomicBool>,
    intake: Option<JoinHandle<()>>,
    tailer: Option<super::TailerHandle>,
}

/// What the server learns from the log before its workers start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStart {
    /// Resumes from below this id cannot be served exactly from the log as it is now (something
    /// before its first entry was trimmed): it is every channel's starting history floor.
    pub history_floor: EventId,
}

/// The history floor for a log in `state`: the first entry's id once anything was trimmed or
/// deleted, else nothing is missing.
pub fn history_floor(state: Option<&LogState>) -> EventId {
    match state {
        Some(s) if s.entries_added > s.length || s.max_deleted > EventId::ZERO => {
            s.first_entry.unwrap_or(s.last_generated)
        }
        _ => EventId::ZERO,
    }
}

impl RedisSequencer {
    /// Read the log's state, start the bridges (the tailer backfills the whole log into the
    /// workers' rings, then sets `ready`) and the intake thread.
    pub fn start(
        settings: &ClusterSettings,
        hub: Hub,
        hub_rx: DoorbellRx,
        ready: Arc<AtomicBool>,
        gzip: bool,
    ) -> Result<(RedisSequencer, LogStart), StartError> {
        let Hub {
            intake,
            fanout,
            bell,
        } = hub;
        let sink = tail_sink(fanout, ready, Framer::new(gzip));
        let bridges = Cluster::start(settings, EventId::ZERO, EventId::ZERO, sink, None)?;
        let state = {
            let mut log = super::RedisLog::new(settings).map_err(|e| StartError(e.to_string()))?;
            log.connect_within(settings.startup_wait)
                .map_err(|e| StartError(format!("--redis-url: {e}")))?;
            log.state()
                .map_err(|e| StartError(format!("--redis-stream: {e}")))?
        };
        let start = LogStart {
            history_floor: history_floor(state.as_ref()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let appender = bridges.appender.clone();
            let reader = bridges.reader.clone();
            std::thread::Builder::new()
                .name("pushcore-intake".into())
                .spawn(move || run_intake(intake, hub_rx, bell, appender, reader, stop, gzip))
                .map_err(|e| StartError(format!("cannot start the intake thread: {e}")))?
        };
        Ok((
            RedisSequencer {
                stop,
                intake: Some(thread),
                tailer: Some(bridges.tailer),
            },
            start,
        ))
    }

    /// Stop the intake thread and the tailer (at shutdown).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.tailer.take() {
            t.stop();
        }
        if let Some(t) = self.intake.take() {
            let _ = t.join();
        }
    }
}

/// The tailer's sink: each log entry becomes one frame, pushed to every worker in log order.
fn tail_sink(mut fanout: Fanout, ready: Arc<AtomicBool>, mut framer: Framer) -> super::Sink {
    Box::new(move |event: TailEvent| match event {
        TailEvent::Events(events) => {
            for LogEvent { id, event } in events {
                let Some(seq) =
                    framer.frame(id, event.channels, &event.event_type, &event.data, id.ms)
                else {
                    tracing::warn!(id = %id, "log entry {id} has an event type that cannot be framed; skipped");
                    continue;
                };
                // Back-pressure onto the tailer: it reads no further until every worker has room.
                while fanout.broadcast(&seq).is_err() {
                    fanout.wake_all();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            fanout.wake_all();
        }
        TailEvent::Ready { last_id } => {
            ready.store(true, Ordering::Release);
            tracing::info!(last_id = %last_id, "event log read up to {last_id}: ready");
        }
        TailEvent::Down { error } => {
            tracing::warn!("Redis unreachable ({error}): publishes get 503, streams stay open");
        }
        TailEvent::Up { last_id } => {
            tracing::info!(last_id = %last_id, "Redis is back: tailing after {last_id}");
        }
        TailEvent::Skipped { id, error } => {
            tracing::warn!(id = %id, "log entry {id} is not a pushcore event ({error}); skipped");
        }
        TailEvent::Lost {
            loss,
            floor,
            last_id,
        } => {
            tracing::error!(
                floor = %floor,
                "the event log was lost ({loss:?}); every stream gets a reset, ids continue above {floor} (after {last_id})"
            );
            while fanout.announce_log_lost(floor).is_err() {
                fanout.wake_all();
                std::thread::sleep(Duration::from_millis(1));
            }
            fanout.wake_all();
        }
    })
}

/// Take the workers' requests, hand them to the appender or the reader, and pass their answers
/// back, until `stop`.
fn run_intake(
    mut intake: Intake,
    mut hub_rx: DoorbellRx,
    bell: Arc<crate::bus::Doorbell>,
    appender: AppenderHandle,
    reader: ReaderHandle,
    stop: Arc<AtomicBool>,
    gzip: bool,
) {
    let (answers_tx, answers) = channel::unbounded::<(PortId, Reply)>();
    let mut taken: Vec<(PortId, Request)> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        while let Ok((port, reply)) = answers.try_recv() {
            intake.answer(port, reply);
        }
        intake.take(TAKE_PER_ROUND, &mut taken);
        for (port, Request { token, ask }) in taken.drain(..) {
            let tx = answers_tx.clone();
            let ring = Arc::clone(&bell);
            let send = move |outcome: Result<Answer, Busy>| {
                let _ = tx.send((port, Reply { token, outcome }));
                ring.ring();
            };
            let queued = match ask {
                Ask::Sequence(events) => {
                    appender.submit(events, move |r| send(r.map(Answer::Ids).map_err(|_| Busy)))
                }
                Ask::Replay {
                    channels,
                    after,
                    until,
                } => reader.submit(after, until, MAX_REPLAY_EVENTS, move |r| {
                    send(match r {
                        Ok(replay) if replay.resume == Resume::Exact && replay.complete => {
                            Ok(Answer::Replayed(replayed(replay.events, &channels, gzip)))
                        }
                        Ok(_) => Ok(Answer::NotRetained),
                        Err(_) => Err(Busy),
                    })
                }),
            };
            if queued.is_err() {
                intake.answer(
                    port,
                    Reply {
                        token,
                        outcome: Err(Busy),
                    },
                );
            }
        }
        // Arm, then look again: an answer or request that came before the arm is seen now, one
        // that comes after it rings.
        bell.arm();
        if intake.has_requests() || !answers.is_empty() {
            bell.disarm();
            continue;
        }
        let _ = hub_rx.wait_blocking(IDLE_WAIT);
        bell.disarm();
    }
}

/// The events of `channels` among `events`, framed as every instance frames them.
fn replayed(events: Vec<LogEvent>, channels: &[String], gzip: bool) -> Vec<Arc<Sequenced>> {
    let mut framer = Framer::new(gzip);
    events
        .into_iter()
        .filter(|e| e.event.channels.iter().any(|c| channels.contains(c)))
        .filter_map(|LogEvent { id, event }| {
            framer.frame(id, event.channels, &event.event_type, &event.data, id.ms)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(length: u64, added: u64, first: Option<EventId>, deleted: EventId) -> LogState {
        LogState {
            length,
            first_entry: first,
            last_generated: EventId::new(900, 0),
            max_deleted: deleted,
            entries_added: added,
        }
    }

    #[test]
    fn the_history_floor_is_the_first_entry_once_anything_was_removed() {
        let first = Some(EventId::new(500, 3));
        assert_eq!(history_floor(None), EventId::ZERO);
        assert_eq!(
            history_floor(Some(&state(10, 10, first, EventId::ZERO))),
            EventId::ZERO
        );
        assert_eq!(
            history_floor(Some(&state(4, 10, first, EventId::ZERO))),
            EventId::new(500, 3)
        );
        assert_eq!(
            history_floor(Some(&state(9, 10, first, EventId::new(400, 0)))),
            EventId::new(500, 3)
        );
        // Everything removed: nothing before the last id can be served.
        assert_eq!(
            history_floor(Some(&state(0, 10, None, EventId::ZERO))),
            EventId::new(900, 0)
        );
    }
}
