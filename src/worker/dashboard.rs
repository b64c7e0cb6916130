//! `--dashboard`: once a second every worker posts what only it knows (its channels'
//! subscribers, its history bytes) on the shared board, and worker 0 (the sequencer) publishes a
//! stats snapshot on the internal dashboard channel through the same sequence-and-apply path
//! publishers' events take, so every worker delivers it to its own viewers.

use std::rc::Rc;
use std::time::Duration;

use super::{ring, Worker};
use crate::bus::NewEvent;
use crate::sse::id::unix_ms_now;
use crate::web::stats::{self, Extra};
use crate::web::{DASHBOARD_CHANNEL, STATS_EVENT};

/// One snapshot a second.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl Worker {
    pub(super) async fn dashboard_loop(self: Rc<Self>) {
        let mut ticks = monoio::time::interval(STATS_INTERVAL);
        loop {
            monoio::select! {
                _ = ticks.tick() => {},
                _ = self.drain_signal.wait() => return,
            }
            self.post_board();
            if self.bus.borrow().sequencer.is_some() {
                self.publish_stats();
            }
        }
    }

    fn post_board(&self) {
        let board = {
            let st = self.state.borrow();
            stats::worker_board(
                st.channels
                    .iter()
                    .map(|c| (&*c.name, c.subscribers.len(), c.history.bytes())),
            )
        };
        self.shared.board.post(self.index, board);
    }

    /// Sequence one snapshot and apply it here; the bus takes it to the other workers. Not
    /// counted in `events_published_total` (it is not a publisher's event); a full ring skips
    /// this second's snapshot.
    fn publish_stats(self: &Rc<Self>) {
        let extra = Extra {
            boards: self.shared.board.read(),
            rss_bytes: stats::rss_bytes(),
            uptime_secs: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION"),
            now_ms: unix_ms_now(),
        };
        let event = NewEvent {
            channels: vec![DASHBOARD_CHANNEL.to_string()],
            event_type: STATS_EVENT.to_string(),
            data: stats::snapshot(&self.shared.metrics, &extra),
        };
        let done = {
            let mut bus = self.bus.borrow_mut();
            let mut woken = Vec::new();
            let done = bus
                .sequencer
                .as_mut()
                .and_then(|seq| seq.sequence(vec![event], unix_ms_now(), &mut woken));
            ring(&bus, &woken);
            done
        };
        for seq in done.iter().flatten() {
            self.apply(seq);
        }
    }
}
