//! The sequencer's side of the rings: requests in and replies out ([`Intake`]), frames out to
//! every worker ([`Fanout`]). The in-process [`super::Sequencer`] owns a whole [`Hub`]; an
//! external sequencer may split it and drive the two halves from two threads (the Redis
//! bridge answers publishers from one thread and fans the log out from another).

use std::sync::Arc;

use super::{Busy, Delivery, Doorbell, Reply, Request, Sequenced};
use crate::sse::id::EventId;

/// Both halves, and the doorbell the workers ring when they send a request.
#[derive(Debug)]
pub struct Hub {
    pub intake: Intake,
    pub fanout: Fanout,
    /// Rung (when armed) by a worker that queued a request; an external sequencer also rings
    /// it to wake its intake thread.
    pub bell: Arc<Doorbell>,
}

/// Publish requests from the workers, and the replies back to them.
#[derive(Debug)]
pub struct Intake {
    ports: Vec<IntakePort>,
    doorbells: Arc<[Doorbell]>,
}

#[derive(Debug)]
struct IntakePort {
    worker: usize,
    requests: rtrb::Consumer<Request>,
    replies: rtrb::Producer<Reply>,
}

/// Sequenced events out to every linked worker.
#[derive(Debug)]
pub struct Fanout {
    ports: Vec<FanoutPort>,
    doorbells: Arc<[Doorbell]>,
}

#[derive(Debug)]
struct FanoutPort {
    worker: usize,
    frames: rtrb::Producer<Delivery>,
}

/// Which port a taken request came from (to answer it there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortId(usize);

impl Hub {
    pub(super) fn new(doorbells: Arc<[Doorbell]>, bell: Arc<Doorbell>) -> Hub {
        Hub {
            bell,
            intake: Intake {
                ports: Vec::new(),
                doorbells: Arc::clone(&doorbells),
            },
            fanout: Fanout {
                ports: Vec::new(),
                doorbells,
            },
        }
    }

    pub(super) fn connect(
        &mut self,
        worker: usize,
        requests: rtrb::Consumer<Request>,
        replies: rtrb::Producer<Reply>,
        frames: rtrb::Producer<Delivery>,
    ) {
        self.intake.ports.push(IntakePort {
            worker,
            requests,
            replies,
        });
        self.fanout.ports.push(FanoutPort { worker, frames });
    }
}

impl Intake {
    pub fn has_requests(&self) -> bool {
        self.ports.iter().any(|p| !p.requests.is_empty())
    }

    /// Take up to `max` waiting requests, oldest first per worker. A request is taken only while
    /// its worker's reply ring has room for its answer, so [`Intake::answer`] never fails.
    pub fn take(&mut self, max: usize, out: &mut Vec<(PortId, Request)>) {
        for (i, port) in self.ports.iter_mut().enumerate() {
            let mut taken = 0;
            while out.len() < max && port.replies.slots() > taken {
                let Ok(request) = port.requests.pop() else {
                    break;
                };
                out.push((PortId(i), request));
                taken += 1;
            }
        }
    }

    /// Send the answer to a request taken from `port` and wake its worker.
    pub fn answer(&mut self, port: PortId, reply: Reply) {
        if let Some(p) = self.ports.get_mut(port.0) {
            // Room was reserved when the request was taken.
            let _ = p.replies.push(reply);
            if let Some(bell) = self.doorbells.get(p.worker) {
                bell.ring();
            }
        }
    }
}

impl Fanout {
    /// Frames every linked worker can still take (the smallest free space of their rings).
    pub fn room(&self) -> usize {
        self.ports
            .iter()
            .map(|p| p.frames.slots())
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Queue `seq` for every linked worker; [`Busy`] (and nothing queued) if a ring is full.
    /// Workers are not woken: call [`Fanout::wake_all`] after a batch.
    pub fn broadcast(&mut self, seq: &Arc<Sequenced>) -> Result<(), Busy> {
        if self.room() == 0 {
            return Err(Busy);
        }
        for port in &mut self.ports {
            // Room was checked above and only this thread pushes.
            let _ = port.frames.push(Delivery::Event(Arc::clone(seq)));
        }
        Ok(())
    }

    /// Tell every linked worker that the log was lost ([`Delivery::LogLost`]); [`Busy`] (and
    /// nobody told) if a ring is full.
    pub fn announce_log_lost(&mut self, floor: EventId) -> Result<(), Busy> {
        if self.room() == 0 {
            return Err(Busy);
        }
        for port in &mut self.ports {
            let _ = port.frames.push(Delivery::LogLost { floor });
        }
        Ok(())
    }

    /// Ring the doorbell of every linked worker (only sleeping ones are actually woken).
    pub fn wake_all(&self) {
        for port in &self.ports {
            if let Some(bell) = self.doorbells.get(port.worker) {
                bell.ring();
            }
        }
    }
}
