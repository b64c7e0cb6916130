//! The cross-core bus: publish requests travel from the worker that read them to the
//! sequencer, which gives each event its id, formats its frame once and hands the same frame to
//! every worker. Everything travels over single-producer single-consumer rings (rtrb), with a
//! doorbell per worker; a full ring is back-pressure (the publisher gets 503), never a drop.
//!
//! The bus is a **star**, not an N×N mesh: only worker → sequencer requests and sequencer →
//! worker frames and replies exist.
//!
//! ```text
//!  worker k ──Request (Ask)──▶ sequencer ──Delivery (Arc<Sequenced>)──▶ every worker
//!           ◀──Reply (Answer | Busy)──
//! ```
//!
//! Where the sequencer lives is the bus's [`Topology`]:
//! - [`Topology::Embedded`]: worker 0 hosts it ([`Sequencer`], in-process ids). Worker 0's own
//!   publishes are sequenced in place; the other workers reach it over their [`link`].
//! - [`Topology::External`]: a thread outside the workers (the Redis Streams bridge in cluster
//!   mode) holds the [`Hub`] — the far ends of every worker's rings — and every worker, worker 0
//!   included, reaches it over its link. Workers cannot tell the difference.
//!
//! A worker sees only its [`Endpoint`]: [`Endpoint::submit`] hands events to the sequencer and
//! returns a [`Ticket`] that resolves to their ids, [`Endpoint::drain`] takes whatever arrived
//! (sequencing peers' requests first on worker 0) and hands each sequenced event to the worker.

pub mod doorbell;
pub mod framer;
pub mod hub;
pub mod link;
pub mod sequencer;
pub mod ticket;

use std::sync::Arc;

use bytes::Bytes;

pub use doorbell::{Doorbell, DoorbellRx};
pub use framer::Framer;
pub use hub::{Fanout, Hub, Intake};
pub use sequencer::Sequencer;
pub use ticket::Ticket;

use crate::sse::id::EventId;
use link::Link;
use ticket::Tickets;

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

/// An event with its id and its frame, shared by every worker.
#[derive(Debug)]
pub struct Sequenced {
    pub id: EventId,
    pub channels: Box<[String]>,
    pub frame: Bytes,
    /// The frame as an independent gzip segment (`--gzip`), for subscribers that accept gzip.
    pub gzip: Option<Bytes>,
    /// Unix milliseconds at which it was sequenced (history age limits count from here).
    pub at_ms: u64,
}

/// The sequencer cannot take the events now (a ring is full, or the log is unreachable):
/// nothing of the batch was sequenced; the publisher should try again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// What a worker asks of the sequencer.
#[derive(Debug)]
pub enum Ask {
    /// Give these events ids and deliver them everywhere (a publish: one event or a batch,
    /// all or nothing).
    Sequence(Vec<NewEvent>),
    /// The events of `channels` with ids in `(after, until]`, read back from the log (cluster
    /// mode: a resume older than this worker's history).
    Replay {
        channels: Vec<String>,
        after: EventId,
        until: EventId,
    },
}

/// One request on its way to the sequencer.
#[derive(Debug)]
pub struct Request {
    /// Chosen by the sending worker; comes back in the [`Reply`].
    pub token: u64,
    pub ask: Ask,
}

/// The sequencer's answer to an [`Ask`].
#[derive(Debug)]
pub enum Answer {
    /// The ids of a [`Ask::Sequence`], in order.
    Ids(Vec<EventId>),
    /// A [`Ask::Replay`] served exactly: every event of the asked channels in the range, in id
    /// order (the frames are the same bytes every instance formats).
    Replayed(Vec<Arc<Sequenced>>),
    /// A [`Ask::Replay`] that cannot be served exactly (the log was trimmed past `after`, or
    /// there is no log).
    NotRetained,
}

/// The sequencer's answer to one [`Request`].
#[derive(Debug)]
pub struct Reply {
    pub token: u64,
    pub outcome: Result<Answer, Busy>,
}

/// What the sequencer hands every worker, in order.
#[derive(Debug)]
pub enum Delivery {
    /// A sequenced event.
    Event(Arc<Sequenced>),
    /// The log was lost (Redis came back without its data): ids at or below `floor` can no
    /// longer be replayed exactly; every stream is told with `event: reset`.
    LogLost { floor: EventId },
}

/// Where the sequencer lives.
#[derive(Debug)]
pub enum Topology {
    /// Worker 0 issues ids in-process, starting above `floor` (the boot id); `gzip`: also
    /// compress each frame once.
    Embedded { floor: EventId, gzip: bool },
    /// A thread outside the workers holds the [`Hub`] (cluster mode).
    External,
}

/// What a worker holds of the bus.
#[derive(Debug)]
enum Role {
    /// This worker hosts the in-process sequencer.
    Sequencer(Sequencer),
    /// The sequencer is elsewhere: another worker, or an external thread.
    Link(Link),
}

/// One worker's rings and doorbells as built, on their way to the worker's thread (where
/// [`Endpoint::new`] makes them its endpoint).
#[derive(Debug)]
pub struct Wiring {
    index: usize,
    doorbells: Arc<[Doorbell]>,
    role: Role,
}

/// One worker's end of the bus. Lives on the worker's thread (`!Send`: its tickets are
/// core-local).
#[derive(Debug)]
pub struct Endpoint {
    index: usize,
    /// Every worker's doorbell, indexed by worker.
    doorbells: Arc<[Doorbell]>,
    role: Role,
    tickets: Tickets,
    /// Events this worker sequenced itself, waiting for the next [`Endpoint::drain`].
    sequenced_here: Vec<Arc<Sequenced>>,
}

/// What one [`Endpoint::drain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events applied to this worker.
    pub applied: usize,
    /// Events this worker sequenced for other workers' publishers.
    pub sequenced_for_peers: usize,
}

impl Endpoint {
    pub fn new(wiring: Wiring) -> Endpoint {
        Endpoint {
            index: wiring.index,
            doorbells: wiring.doorbells,
            role: wiring.role,
            tickets: Tickets::default(),
            sequenced_here: Vec::new(),
        }
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// This worker's own doorbell (armed before it sleeps on it).
    pub fn doorbell(&self) -> Option<&Doorbell> {
        self.doorbells.get(self.index)
    }

    /// Hand `events` to the sequencer. The ticket resolves to their ids, or to [`Busy`] if
    /// none of them could be sequenced. Events sequenced in place reach this worker at the
    /// next [`Endpoint::drain`], which the caller should run before awaiting the ticket.
    pub fn submit(&mut self, events: Vec<NewEvent>, now_ms: u64) -> Ticket {
        self.ask(Ask::Sequence(events), now_ms)
    }

    /// Ask the sequencer for the events of `channels` in `(after, until]` from the log. The
    /// ticket resolves to [`Answer::Replayed`] or [`Answer::NotRetained`], or [`Busy`] when the
    /// log cannot be read now.
    pub fn replay(
        &mut self,
        channels: Vec<String>,
        after: EventId,
        until: EventId,
        now_ms: u64,
    ) -> Ticket {
        self.ask(
            Ask::Replay {
                channels,
                after,
                until,
            },
            now_ms,
        )
    }

    fn ask(&mut self, ask: Ask, now_ms: u64) -> Ticket {
        match &mut self.role {
            Role::Sequencer(seq) => {
                Ticket::ready(seq.answer(ask, now_ms, &mut self.sequenced_here))
            }
            Role::Link(link) => {
                let (token, ticket) = self.tickets.issue();
                if link.send(Request { token, ask }).is_err() {
                    self.tickets.complete(token, Err(Busy));
                }
                ticket
            }
        }
    }

    /// Take everything waiting: on the hosting worker, sequence the peers' requests first;
    /// then answer this worker's publishers and pass every delivery, in order, to `apply`.
    pub fn drain(&mut self, now_ms: u64, mut apply: impl FnMut(Delivery)) -> Drained {
        let mut drained = Drained::default();
        if let Role::Sequencer(seq) = &mut self.role {
            drained.sequenced_for_peers = seq.serve_peers(now_ms, &mut self.sequenced_here);
        }
        for seq in self.sequenced_here.drain(..) {
            apply(Delivery::Event(seq));
            drained.applied += 1;
        }
        if let Role::Link(link) = &mut self.role {
            // Replies before frames: a reply's frames were pushed before it, so once the reply
            // is taken its frames are in the ring too and are applied in this same drain.
            while let Some(reply) = link.next_reply() {
                self.tickets.complete(reply.token, reply.outcome);
            }
            while let Some(delivery) = link.next_delivery() {
                apply(delivery);
                drained.applied += 1;
            }
        }
        drained
    }

    /// True if anything is waiting in this worker's incoming rings.
    pub fn has_input(&self) -> bool {
        !self.sequenced_here.is_empty()
            || match &self.role {
                Role::Sequencer(seq) => seq.has_requests(),
                Role::Link(link) => link.has_input(),
            }
    }
}

/// The bus for `workers` workers: one endpoint per worker (index = worker) with the waiting
/// half of its doorbell, and, for [`Topology::External`], the [`Hub`] for the external
/// sequencer with the waiting half of the doorbell its workers ring.
pub struct Built {
    pub endpoints: Vec<(Wiring, DoorbellRx)>,
    /// Every worker's doorbell (the server rings them to start a drain).
    pub doorbells: Arc<[Doorbell]>,
    pub hub: Option<(Hub, DoorbellRx)>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("workers", &self.endpoints.len())
            .finish_non_exhaustive()
    }
}

/// Build the rings and doorbells.
pub fn build(workers: usize, topology: Topology) -> std::io::Result<Built> {
    let workers = workers.max(1);
    let mut bells = Vec::with_capacity(workers);
    let mut rxs = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (bell, rx) = Doorbell::new()?;
        bells.push(bell);
        rxs.push(rx);
    }
    let doorbells: Arc<[Doorbell]> = bells.into();
    // Workers that reach the sequencer over a link: all but 0 when embedded, all when external.
    let linked_from = match topology {
        Topology::Embedded { .. } => 1,
        Topology::External => 0,
    };
    let (hub_bell, hub_rx) = Doorbell::new()?;
    let hub_bell = Arc::new(hub_bell);
    let mut hub = Hub::new(Arc::clone(&doorbells), Arc::clone(&hub_bell));
    let mut links = Vec::with_capacity(workers);
    for k in linked_from..workers {
        let (requests_tx, requests_rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        let (frames_tx, frames_rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        let (replies_tx, replies_rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        hub.connect(k, requests_rx, replies_tx, frames_tx);
        let sequencer_bell = match topology {
            Topology::Embedded { .. } => link::Wake::Worker(Arc::clone(&doorbells), 0),
            Topology::External => link::Wake::Bell(Arc::clone(&hub_bell)),
        };
        links.push(Link::new(
            requests_tx,
            replies_rx,
            frames_rx,
            sequencer_bell,
        ));
    }
    let (mut sequencer, hub) = match topology {
        Topology::Embedded { floor, gzip } => (Some(Sequencer::new(floor, gzip, hub)), None),
        Topology::External => (None, Some((hub, hub_rx))),
    };
    let mut links = links.into_iter();
    let mut endpoints = Vec::with_capacity(workers);
    for (index, rx) in rxs.into_iter().enumerate() {
        let role = match (index, sequencer.take()) {
            (0, Some(seq)) => Role::Sequencer(seq),
            (_, seq) => {
                sequencer = seq;
                match links.next() {
                    Some(link) => Role::Link(link),
                    None => return Err(std::io::Error::other("bus: a worker has no link")),
                }
            }
        };
        endpoints.push((
            Wiring {
                index,
                doorbells: Arc::clone(&doorbells),
                role,
            },
            rx,
        ));
    }
    Ok(Built {
        endpoints,
        doorbells,
        hub,
    })
}

#[cfg(test)]
mod tests;
