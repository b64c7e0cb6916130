//! The in-process sequencer: one place that gives every event its id (one total order for the
//! server), formats its frame once and pushes it to every other worker's ring. It lives on
//! worker 0 ([`super::Topology::Embedded`]).

use std::sync::Arc;

use super::hub::{Hub, PortId};
use super::{Answer, Ask, Busy, Framer, NewEvent, Reply, Request, Sequenced};
use crate::sse::id::{EventId, IdGenerator};

/// Issues ids in-process; owns the [`Hub`] of the other workers' rings.
#[derive(Debug)]
pub struct Sequencer {
    ids: IdGenerator,
    framer: Framer,
    hub: Hub,
    taken: Vec<(PortId, Request)>,
}

impl Sequencer {
    pub(super) fn new(floor: EventId, gzip: bool, hub: Hub) -> Sequencer {
        Sequencer {
            ids: IdGenerator::new(floor),
            framer: Framer::new(gzip),
            hub,
            taken: Vec::new(),
        }
    }

    /// The newest id issued so far.
    pub fn last_id(&self) -> EventId {
        self.ids.last()
    }

    pub fn has_requests(&self) -> bool {
        self.hub.intake.has_requests()
    }

    /// Sequence a batch: all of it, or — if some worker's ring lacks room for all of it —
    /// none of it ([`Busy`]). On success every other worker's ring holds the frames (and its
    /// doorbell was rung); the returned events are for the hosting worker to apply.
    pub fn sequence(
        &mut self,
        events: Vec<NewEvent>,
        now_ms: u64,
    ) -> Result<Vec<Arc<Sequenced>>, Busy> {
        if self.hub.fanout.room() < events.len() {
            return Err(Busy);
        }
        let mut out = Vec::with_capacity(events.len());
        for ev in events {
            let id = self.ids.next(now_ms);
            // Event types are validated when the request is read; a frame that still fails to
            // encode is skipped rather than taking the worker down.
            let Some(seq) = self
                .framer
                .frame(id, ev.channels, &ev.event_type, &ev.data, now_ms)
            else {
                continue;
            };
            // Room for the whole batch was checked above.
            let _ = self.hub.fanout.broadcast(&seq);
            out.push(seq);
        }
        if !out.is_empty() {
            self.hub.fanout.wake_all();
        }
        Ok(out)
    }

    /// Answer one ask: a batch is sequenced (its events appended to `local` for the hosting
    /// worker); a replay is never needed in-process (every worker holds the history that
    /// exists), so it is answered [`Answer::NotRetained`].
    pub fn answer(
        &mut self,
        ask: Ask,
        now_ms: u64,
        local: &mut Vec<Arc<Sequenced>>,
    ) -> Result<Answer, Busy> {
        match ask {
            Ask::Sequence(events) => self.sequence(events, now_ms).map(|done| {
                let ids = done.iter().map(|s| s.id).collect();
                local.extend(done);
                Answer::Ids(ids)
            }),
            Ask::Replay { .. } => Ok(Answer::NotRetained),
        }
    }

    /// Sequence every request the other workers sent and answer each. The events are appended
    /// to `local` for the hosting worker; returns how many were sequenced.
    pub fn serve_peers(&mut self, now_ms: u64, local: &mut Vec<Arc<Sequenced>>) -> usize {
        let mut taken = std::mem::take(&mut self.taken);
        self.hub.intake.take(usize::MAX, &mut taken);
        let before = local.len();
        for (port, request) in taken.drain(..) {
            let outcome = self.answer(request.ask, now_ms, local);
            self.hub.intake.answer(
                port,
                Reply {
                    token: request.token,
                    outcome,
                },
            );
        }
        self.taken = taken;
        local.len() - before
    }
}
