//! The bus's rules, without a runtime: all-or-nothing batches, replies to the right ticket,
//! frames to every worker in order, and the same behaviour through an external hub.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::*;

fn ev(channel: &str) -> NewEvent {
    NewEvent {
        channels: vec![channel.to_string()],
        event_type: "t".into(),
        data: "1".into(),
    }
}

fn poll_now(ticket: Ticket) -> Option<Result<Vec<EventId>, Busy>> {
    let mut ticket = pin!(ticket);
    match ticket
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(o) => Some(ids(o)),
        Poll::Pending => None,
    }
}

fn ids(outcome: Result<Answer, Busy>) -> Result<Vec<EventId>, Busy> {
    match outcome {
        Ok(Answer::Ids(ids)) => Ok(ids),
        Ok(other) => panic!("not ids: {other:?}"),
        Err(Busy) => Err(Busy),
    }
}

fn events(d: Delivery) -> Arc<Sequenced> {
    match d {
        Delivery::Event(seq) => seq,
        other => panic!("not an event: {other:?}"),
    }
}

fn ids_of(applied: &[Arc<Sequenced>]) -> Vec<EventId> {
    applied.iter().map(|s| s.id).collect()
}

#[test]
fn embedded_worker0_sequences_its_own_and_its_peers_events() {
    let built = build(
        2,
        Topology::Embedded {
            floor: EventId::new(100, 0),
            gzip: false,
        },
    )
    .expect("bus");
    assert!(built.hub.is_none());
    let mut eps: Vec<Endpoint> = built
        .endpoints
        .into_iter()
        .map(|(w, _)| Endpoint::new(w))
        .collect();
    let (w0, rest) = eps.split_at_mut(1);
    let (w0, w1) = (&mut w0[0], &mut rest[0]);

    // Worker 1 submits: nothing happens until worker 0 drains.
    let t1 = w1.submit(vec![ev("a"), ev("b")], 1000);
    let mut t1 = Box::pin(t1);
    assert!(t1
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending());
    assert!(w0.has_input());
    let mut at0 = Vec::new();
    let d = w0.drain(1000, |d| at0.push(events(d)));
    assert_eq!(d.sequenced_for_peers, 2);
    assert_eq!(at0.len(), 2);

    // Worker 1 gets its reply and the frames, in id order, in the same drain.
    let mut at1 = Vec::new();
    w1.drain(1000, |d| at1.push(events(d)));
    assert_eq!(ids_of(&at0), ids_of(&at1));
    let Poll::Ready(outcome) = t1.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("ticket not completed");
    };
    let ids = ids(outcome).expect("ids");
    assert_eq!(ids, ids_of(&at1));
    assert!(ids[0] > EventId::new(100, 0) && ids[1] > ids[0]);

    // Worker 0's own submit is sequenced in place and applied at its next drain.
    let t0 = w0.submit(vec![ev("c")], 1001);
    let own = poll_now(t0).expect("ready").expect("ids");
    let mut again = Vec::new();
    w0.drain(1001, |d| again.push(events(d)));
    assert_eq!(ids_of(&again), own);
    let mut at1 = Vec::new();
    w1.drain(1001, |d| at1.push(events(d)));
    assert_eq!(ids_of(&at1), own);
}

#[test]
fn a_batch_is_sequenced_all_or_nothing() {
    let built = build(
        2,
        Topology::Embedded {
            floor: EventId::ZERO,
            gzip: false,
        },
    )
    .expect("bus");
    let mut eps: Vec<Endpoint> = built
        .endpoints
        .into_iter()
        .map(|(w, _)| Endpoint::new(w))
        .collect();
    let w0 = &mut eps[0];
    // Fill worker 1's frame ring to one slot short of full.
    let fill: Vec<NewEvent> = (0..RING_CAPACITY - 1).map(|_| ev("a")).collect();
    assert!(poll_now(w0.submit(fill, 1)).expect("ready").is_ok());
    // Two events do not fit: neither is sequenced.
    assert_eq!(
        poll_now(w0.submit(vec![ev("a"), ev("b")], 2)),
        Some(Err(Busy))
    );
    // One still fits.
    assert!(poll_now(w0.submit(vec![ev("a")], 2))
        .expect("ready")
        .is_ok());
    let mut applied = 0;
    w0.drain(2, |_| applied += 1);
    assert_eq!(applied, RING_CAPACITY);
}

#[test]
fn external_hub_answers_tickets_and_fans_out() {
    let built = build(2, Topology::External).expect("bus");
    let (mut hub, _bell) = built.hub.expect("hub");
    let mut eps: Vec<Endpoint> = built
        .endpoints
        .into_iter()
        .map(|(w, _)| Endpoint::new(w))
        .collect();
    let ta = Box::pin(eps[0].submit(vec![ev("a")], 5));
    let tb = Box::pin(eps[1].submit(vec![ev("b"), ev("c")], 5));

    // The external sequencer takes both requests and answers them with its own ids.
    let mut taken = Vec::new();
    hub.intake.take(usize::MAX, &mut taken);
    assert_eq!(taken.len(), 2);
    let mut next = 7u64;
    for (port, req) in taken {
        let Ask::Sequence(events) = req.ask else {
            panic!("not a publish");
        };
        let mut ids = Vec::new();
        for e in events {
            let id = EventId::new(next, 0);
            next += 1;
            let seq = Arc::new(Sequenced {
                id,
                channels: e.channels.into_boxed_slice(),
                frame: bytes::Bytes::from_static(b"x"),
                gzip: None,
                at_ms: 0,
            });
            hub.fanout.broadcast(&seq).expect("room");
            ids.push(id);
        }
        hub.intake.answer(
            port,
            Reply {
                token: req.token,
                outcome: Ok(Answer::Ids(ids)),
            },
        );
    }
    hub.fanout.wake_all();

    for (ep, ticket, want) in [(0usize, ta, 1usize), (1, tb, 2)] {
        let mut seen = Vec::new();
        eps[ep].drain(5, |d| seen.push(events(d).id));
        assert_eq!(seen.len(), 3, "every worker gets every event");
        let mut ticket = ticket;
        let Poll::Ready(Ok(ids)) = ticket
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("worker {ep}: ticket not completed");
        };
        assert_eq!(super::tests::ids(Ok(ids)).expect("ids").len(), want);
    }
}

#[test]
fn a_full_request_ring_completes_the_ticket_as_busy() {
    let built = build(1, Topology::External).expect("bus");
    let mut eps: Vec<Endpoint> = built
        .endpoints
        .into_iter()
        .map(|(w, _)| Endpoint::new(w))
        .collect();
    for _ in 0..RING_CAPACITY {
        let _pending = eps[0].submit(vec![ev("a")], 1);
    }
    assert_eq!(poll_now(eps[0].submit(vec![ev("a")], 1)), Some(Err(Busy)));
}

#[test]
fn a_lost_log_is_announced_to_every_worker_in_order() {
    let built = build(2, Topology::External).expect("bus");
    let (mut hub, _bell) = built.hub.expect("hub");
    let mut eps: Vec<Endpoint> = built
        .endpoints
        .into_iter()
        .map(|(w, _)| Endpoint::new(w))
        .collect();
    let seq = Arc::new(Sequenced {
        id: EventId::new(9, 0),
        channels: vec!["a".to_string()].into_boxed_slice(),
        frame: bytes::Bytes::from_static(b"x"),
        gzip: None,
        at_ms: 0,
    });
    hub.fanout.broadcast(&seq).expect("room");
    hub.fanout
        .announce_log_lost(EventId::new(9, 0))
        .expect("room");
    for ep in &mut eps {
        let mut seen = Vec::new();
        ep.drain(1, |d| seen.push(d));
        assert!(matches!(seen.first(), Some(Delivery::Event(s)) if s.id == EventId::new(9, 0)));
        assert!(
            matches!(seen.get(1), Some(Delivery::LogLost { floor }) if *floor == EventId::new(9, 0))
        );
    }
}

#[test]
fn the_embedded_sequencer_has_no_log_to_replay() {
    let built = build(
        1,
        Topology::Embedded {
            floor: EventId::ZERO,
            gzip: false,
        },
    )
    .expect("bus");
    let mut eps: Vec<Endpoint> = built
        .endpoints
        .into_iter()
        .map(|(w, _)| Endpoint::new(w))
        .collect();
    let t = eps[0].replay(vec!["a".into()], EventId::ZERO, EventId::new(5, 0), 1);
    let mut t = pin!(t);
    let got = t.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(got, Poll::Ready(Ok(Answer::NotRetained))));
}
