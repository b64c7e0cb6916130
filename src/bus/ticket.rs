//! Tickets: a publisher's wait for its ids. The bus issues one per submitted request and
//! completes it when the sequencer's reply arrives (or at once, when sequenced in place).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{Answer, Busy};

type Outcome = Result<Answer, Busy>;

#[derive(Debug, Default)]
struct Slot {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

/// Resolves to the sequencer's [`Answer`], or [`Busy`].
#[derive(Debug)]
pub struct Ticket(Rc<RefCell<Slot>>);

impl Ticket {
    pub(super) fn ready(outcome: Outcome) -> Ticket {
        Ticket(Rc::new(RefCell::new(Slot {
            outcome: Some(outcome),
            waker: None,
        })))
    }
}

impl Future for Ticket {
    type Output = Outcome;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut slot = self.0.borrow_mut();
        match slot.outcome.take() {
            Some(o) => Poll::Ready(o),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The tickets of one worker still waiting for a reply, by request token.
#[derive(Debug, Default)]
pub(super) struct Tickets {
    next_token: u64,
    waiting: HashMap<u64, Rc<RefCell<Slot>>>,
}

impl Tickets {
    pub(super) fn issue(&mut self) -> (u64, Ticket) {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        let slot = Rc::new(RefCell::new(Slot::default()));
        self.waiting.insert(token, Rc::clone(&slot));
        (token, Ticket(slot))
    }

    pub(super) fn complete(&mut self, token: u64, outcome: Outcome) {
        let Some(slot) = self.waiting.remove(&token) else {
            return;
        };
        let waker = {
            let mut s = slot.borrow_mut();
            s.outcome = Some(outcome);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}
