//! The sequencer: one place that gives every event its id (one total order for the server),
//! formats its frame once and pushes it to every other worker's ring.

use std::sync::Arc;

use super::{NewEvent, Outcome, PublishRequest, Reply, Sequenced};
use crate::sse::encode::encode_published;
use crate::sse::id::{EventId, IdGenerator};

/// A worker's rings, as seen from the sequencer.
#[derive(Debug)]
struct Peer {
    worker: usize,
    requests: rtrb::Consumer<PublishRequest>,
    frames: rtrb::Producer<Arc<Sequenced>>,
    replies: rtrb::Producer<Reply>,
}

/// Lives on worker 0; the only issuer of event ids.
#[derive(Debug)]
pub struct Sequencer {
    ids: IdGenerator,
    peers: Vec<Peer>,
}

impl Sequencer {
    pub fn new(floor: EventId) -> Sequencer {
        Sequencer {
            ids: IdGenerator::new(floor),
            peers: Vec::new(),
        }
    }

    pub(super) fn connect(
        &mut self,
        worker: usize,
        requests: rtrb::Consumer<PublishRequest>,
        frames: rtrb::Producer<Arc<Sequenced>>,
        replies: rtrb::Producer<Reply>,
    ) {
        self.peers.push(Peer {
            worker,
            requests,
            frames,
            replies,
        });
    }

    /// The newest id issued so far.
    pub fn last_id(&self) -> EventId {
        self.ids.last()
    }

    pub fn has_requests(&self) -> bool {
        self.peers.iter().any(|p| !p.requests.is_empty())
    }

    /// Sequence a batch: all of it or (if some worker's ring lacks room) none of it. On success
    /// every other worker's ring holds the frames and the returned list is for the local worker.
    /// Returns the workers to wake through `woken`.
    pub fn sequence(
        &mut self,
        events: Vec<NewEvent>,
        now_ms: u64,
        woken: &mut Vec<usize>,
    ) -> Option<Vec<Arc<Sequenced>>> {
        let n = events.len();
        if self.peers.iter().any(|p| p.frames.slots() < n) {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for ev in events {
            let id = self.ids.next(now_ms);
            // Event types are validated when the request is read; a frame that still fails to
            // encode is skipped rather than taking the worker down.
            let Ok(frame) = encode_published(id, &ev.event_type, &ev.data) else {
                continue;
            };
            let seq = Arc::new(Sequenced {
                id,
                channels: ev.channels.into_boxed_slice(),
                frame: frame.into_bytes(),
                at_ms: now_ms,
            });
            for peer in &mut self.peers {
                // Room was checked above and only this thread pushes.
                let _ = peer.frames.push(Arc::clone(&seq));
            }
            out.push(seq);
        }
        if n > 0 {
            woken.extend(self.peers.iter().map(|p| p.worker));
        }
        Some(out)
    }

    /// Take the requests other workers sent, sequence them and queue the replies. Returns the
    /// locally applied events; the workers to wake are added to `woken`.
    pub fn serve_peers(&mut self, now_ms: u64, woken: &mut Vec<usize>) -> Vec<Arc<Sequenced>> {
        let mut local = Vec::new();
        for i in 0..self.peers.len() {
            while let Some(peer) = self.peers.get_mut(i) {
                // A reply must have room before its request is taken.
                if peer.replies.slots() == 0 {
                    break;
                }
                let Ok(req) = peer.requests.pop() else { break };
                let token = req.token;
                let worker = peer.worker;
                let outcome = match self.sequence(req.events, now_ms, woken) {
                    Some(mut done) => {
                        let ids = done.iter().map(|s| s.id).collect();
                        local.append(&mut done);
                        Outcome::Sequenced(ids)
                    }
                    None => Outcome::Busy,
                };
                if let Some(peer) = self.peers.get_mut(i) {
                    let _ = peer.replies.push(Reply { token, outcome });
                }
                woken.push(worker);
            }
        }
        local
    }
}
