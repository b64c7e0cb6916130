//! `--dashboard`: once a second every worker posts what only it knows (its channels'
//! subscribers, its history bytes) on the shared board, and worker 0 submits a stats snapshot
//! on this instance's internal dashboard channel to the bus, the path publishers' events take,
//! so every worker delivers it to its own viewers. The channel's name starts with `$`, outside
//! the public grammar, so no publisher or subscriber can reach it through the public API; it
//! names the instance, so that in cluster mode each instance's page shows its own figures.

use std::rc::Rc;
use std::time::Duration;

use super::Worker;
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
            if self.index == 0 {
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
            channels: vec![self.dashboard_channel()],
            event_type: STATS_EVENT.to_string(),
            data: stats::snapshot(&self.shared.metrics, &extra),
        };
        // The ticket is not awaited: a snapshot that finds the rings full is simply skipped.
        let _ticket = self.bus.borrow_mut().submit(vec![event], unix_ms_now());
        self.pump_bus();
    }

    /// This instance's dashboard channel.
    pub(super) fn dashboard_channel(&self) -> String {
        format!("{DASHBOARD_CHANNEL}:{:x}", self.shared.boot.ms)
    }
}
