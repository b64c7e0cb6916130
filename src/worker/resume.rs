//! Where a new stream starts. The resume rule ([`crate::channel::resume::plan`]) decides from
//! what this worker holds; in cluster mode three cases get more than the rule alone:
//! - the instance has not read the log yet (start-up backfill): the stream waits for it;
//! - the id is newer than anything this instance has read (the client comes from an instance
//!   that is ahead): the stream waits until this one catches up, instead of `unknown-id`;
//! - the id is older than this worker's history but the log still holds what follows it: the
//!   missing part is read back from the log ([`crate::bus::Endpoint::replay`]) and sent first.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Worker;
use crate::api::subscribe::Subscription;
use crate::api::ApiError;
use crate::bus::{Answer, Sequenced};
use crate::channel::resume::{self, Known, ResetReason, Start};
use crate::channel::ChannelIdx;
use crate::http::HttpError;
use crate::sse::id::{self, unix_ms_now, EventId};

/// How long a stream waits for the instance to finish reading the log at start-up.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long a stream whose id is ahead of this instance waits for it to catch up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);
/// Steps of those waits.
const WAIT_STEP: Duration = Duration::from_millis(5);

impl Worker {
    /// The start of `sub`'s stream, and the events to send first that only the log still has.
    pub(super) async fn start_of(
        self: &Rc<Self>,
        sub: &Subscription,
    ) -> Result<(Start, Vec<Arc<Sequenced>>), ApiError> {
        if !self.wait_until_ready().await {
            return Err(ApiError::Http(HttpError::ServiceUnavailable {
                message: "Server starting: the event log is still being read",
                retry_after_secs: 1,
            }));
        }
        // Take in-flight events first, so the decision sees every id issued so far.
        self.pump_bus();
        let requested = sub.last_event_id.as_deref().map(str::as_bytes);
        let mut start = self.plan_stream(sub, requested);
        if self.shared.cluster && start.reset == Some(ResetReason::UnknownId) {
            start = self.catch_up(sub, requested).await;
        }
        let mut from_log = Vec::new();
        if self.shared.cluster && start.reset == Some(ResetReason::Evicted) {
            // Everything after the id up to the worker's floor comes from the log; history
            // covers the rest.
            let until = start.acknowledged_floor;
            let ticket = self.bus.borrow_mut().replay(
                sub.channels.clone(),
                start.cursor,
                until,
                unix_ms_now(),
            );
            match ticket.await {
                Ok(Answer::Replayed(events)) => {
                    from_log = events;
                    start = Start {
                        cursor: until,
                        acknowledged_floor: EventId::ZERO,
                        reset: None,
                        ..start
                    };
                    self.metrics.log_replays_total.inc();
                }
                Ok(_) => {}
                Err(_) => return Err(ApiError::BUSY),
            }
        }
        if sub.last_event_id.is_some() {
            self.metrics.replays_total.inc();
        }
        if start.reset.is_some() {
            self.metrics.resets_total.inc();
        }
        Ok((start, from_log))
    }

    /// In cluster mode, wait (bounded) until the instance has read the log; false if it has not.
    async fn wait_until_ready(&self) -> bool {
        let deadline = Instant::now() + READY_WAIT;
        while !self.shared.ready.load(Ordering::Acquire) {
            if Instant::now() >= deadline || self.is_draining() {
                return false;
            }
            monoio::time::sleep(WAIT_STEP).await;
        }
        true
    }

    /// The id is ahead of this instance: wait (bounded) for the log to bring it here.
    async fn catch_up(self: &Rc<Self>, sub: &Subscription, requested: Option<&[u8]>) -> Start {
        let target = requested.and_then(|raw| id::parse(raw).ok());
        let deadline = Instant::now() + CATCH_UP_WAIT;
        while let Some(target) = target {
            if self.state.borrow().newest >= target || Instant::now() >= deadline {
                break;
            }
            monoio::time::sleep(WAIT_STEP).await;
            self.pump_bus();
        }
        self.plan_stream(sub, requested)
    }

    /// The resume rule, from what this worker holds now.
    fn plan_stream(&self, sub: &Subscription, requested: Option<&[u8]>) -> Start {
        let mut st = self.state.borrow_mut();
        let chans: Vec<ChannelIdx> = sub
            .channels
            .iter()
            .map(|n| st.channels.find_or_create(n))
            .collect();
        let known = Known {
            newest: st.newest,
            boot: st.boot,
            floor: st.channels.floor_of(&chans),
        };
        resume::plan(requested, known)
    }
}
