//! A worker's rings to a sequencer that lives elsewhere: requests out, replies and sequenced
//! frames in, and the doorbell that wakes the sequencer.

use std::sync::Arc;

use super::{Delivery, Doorbell, Reply, Request};

/// How a linked worker wakes its sequencer.
#[derive(Debug)]
pub(super) enum Wake {
    /// The sequencer is hosted by this worker (index into the doorbells).
    Worker(Arc<[Doorbell]>, usize),
    /// The sequencer is an external thread with a doorbell of its own.
    Bell(Arc<Doorbell>),
}

#[derive(Debug)]
pub(super) struct Link {
    requests: rtrb::Producer<Request>,
    replies: rtrb::Consumer<Reply>,
    frames: rtrb::Consumer<Delivery>,
    wake: Wake,
}

impl Link {
    pub(super) fn new(
        requests: rtrb::Producer<Request>,
        replies: rtrb::Consumer<Reply>,
        frames: rtrb::Consumer<Delivery>,
        wake: Wake,
    ) -> Link {
        Link {
            requests,
            replies,
            frames,
            wake,
        }
    }

    /// Queue a request and wake the sequencer; gives the request back if the ring is full.
    pub(super) fn send(&mut self, request: Request) -> Result<(), Request> {
        self.requests
            .push(request)
            .map_err(|rtrb::PushError::Full(r)| r)?;
        match &self.wake {
            Wake::Worker(bells, i) => {
                if let Some(bell) = bells.get(*i) {
                    bell.ring();
                }
            }
            Wake::Bell(bell) => bell.ring(),
        }
        Ok(())
    }

    pub(super) fn next_reply(&mut self) -> Option<Reply> {
        self.replies.pop().ok()
    }

    pub(super) fn next_delivery(&mut self) -> Option<Delivery> {
        self.frames.pop().ok()
    }

    pub(super) fn has_input(&self) -> bool {
        !self.frames.is_empty() || !self.replies.is_empty()
    }
}
