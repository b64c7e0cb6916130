//! The cross-core bus: publish requests travel from the worker that read them to the sequencer
//! (worker 0), which gives each event its id, formats its frame once and hands the same frame to
//! every worker, all over single-producer single-consumer rings (rtrb) with a doorbell per worker.
//! A full ring is back-pressure (the publisher gets 503), never a silent drop.
//!
//! ```text
//!  worker k ──PublishRequest──▶ worker 0 (sequencer) ──Arc<Sequenced>──▶ every worker
//!           ◀──────────────── Reply (ids or Busy) ─────
//! ```
//! In cluster mode the sequencer role moves to Redis Streams; [`Sequencer`] is that seam.

pub mod doorbell;
pub mod sequencer;

use std::sync::Arc;

use bytes::Bytes;

pub use doorbell::{Doorbell, DoorbellRx};
pub use sequencer::Sequencer;

use crate::sse::id::EventId;

/// Events one ring can hold before publishers are told to back off.
pub const RING_CAPACITY: usize = 16 * 1024;

/// An event as a publisher sent it, validated but not yet sequenced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub channels: Vec<String>,
    pub event_type: String,
    /// The publisher's JSON value, serialized on one line.
    pub data: String,
}

/// One publish request (a single event or a batch) on its way to the sequencer.
#[derive(Debug)]
pub struct PublishRequest {
    pub token: u64,
    pub events: Vec<NewEvent>,
}

/// An event with its id and its frame, shared by every worker.
#[derive(Debug)]
pub struct Sequenced {
    pub id: EventId,
    pub channels: Box<[String]>,
    pub frame: Bytes,
    pub at_ms: u64,
}

/// What the sequencer answers to a publish request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Sequenced(Vec<EventId>),
    /// A ring to some worker is full: try again later.
    Busy,
}

#[derive(Debug)]
pub struct Reply {
    pub token: u64,
    pub outcome: Outcome,
}

/// One worker's ends of the bus.
#[derive(Debug)]
pub struct Endpoint {
    pub index: usize,
    /// Every worker's doorbell, indexed by worker.
    pub doorbells: Arc<[Doorbell]>,
    /// Present on workers other than 0.
    pub link: Option<Link>,
    /// Present on worker 0.
    pub sequencer: Option<Sequencer>,
}

/// A non-sequencing worker's rings to and from the sequencer.
#[derive(Debug)]
pub struct Link {
    pub requests: rtrb::Producer<PublishRequest>,
    pub frames: rtrb::Consumer<Arc<Sequenced>>,
    pub replies: rtrb::Consumer<Reply>,
}

impl Endpoint {
    pub fn doorbell(&self) -> Option<&Doorbell> {
        self.doorbells.get(self.index)
    }

    /// True if anything is waiting in this worker's incoming rings.
    pub fn has_input(&self) -> bool {
        let link = self
            .link
            .as_ref()
            .is_some_and(|l| !l.frames.is_empty() || !l.replies.is_empty());
        let seq = self.sequencer.as_ref().is_some_and(Sequencer::has_requests);
        link || seq
    }
}

/// Build the rings and doorbells for `workers` workers: endpoints (index = worker) and the
/// waiting halves of their doorbells.
pub fn build(
    workers: usize,
    first_id_floor: EventId,
) -> std::io::Result<Vec<(Endpoint, DoorbellRx)>> {
    let workers = workers.max(1);
    let mut bells = Vec::with_capacity(workers);
    let mut rxs = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (bell, rx) = Doorbell::new()?;
        bells.push(bell);
        rxs.push(rx);
    }
    let doorbells: Arc<[Doorbell]> = bells.into();
    let mut sequencer = Sequencer::new(first_id_floor);
    let mut links = Vec::with_capacity(workers);
    for k in 1..workers {
        let (req_tx, req_rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        let (frame_tx, frame_rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        let (reply_tx, reply_rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        sequencer.connect(k, req_rx, frame_tx, reply_tx);
        links.push(Link {
            requests: req_tx,
            frames: frame_rx,
            replies: reply_rx,
        });
    }
    let mut out = Vec::with_capacity(workers);
    let mut sequencer = Some(sequencer);
    let mut links = links.into_iter();
    for (index, rx) in rxs.into_iter().enumerate() {
        let (link, sequencer) = if index == 0 {
            (None, sequencer.take())
        } else {
            (links.next(), None)
        };
        out.push((
            Endpoint {
                index,
                doorbells: Arc::clone(&doorbells),
                link,
                sequencer,
            },
            rx,
        ));
    }
    Ok(out)
}
