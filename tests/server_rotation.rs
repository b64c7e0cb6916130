//! `--max-stream-lifetime`: a stream that has lived that long (jittered down by up to a quarter)
//! ends with the drain's `shutdown` event and a jittered `retry:`, and the client resumes
//! exactly with its Last-Event-ID; without the flag streams never end.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn a_stream_is_rotated_and_resumes_exactly(driver: Driver) {
    let server =
        Server::start_with_driver(driver, &["--max-stream-lifetime", "2", "--retry", "500"]);
    let addr = server.addr();
    let opened = Instant::now();
    let mut sub = subscribe_ready(addr, "/events/stream?channels=rot");
    let before = publish(addr, &event_json("rot", None, &json!("before")));
    assert_eq!(sub.expect_event("before").id(), Some(before.as_str()));
    // The stream ends by itself: shutdown with a retry hint, then the server closes.
    let end = sub
        .next_event(Duration::from_secs(6))
        .unwrap_or_else(|e| panic!("no shutdown within 6 s: {e:?}"));
    let lived = opened.elapsed();
    assert_eq!(end.event(), Some("shutdown"), "{:?}", end.raw);
    let retry = end.retry().expect("a retry: hint with the shutdown");
    assert!(
        (500..1500).contains(&retry),
        "retry {retry} outside the drain's jitter range"
    );
    assert!(
        lived >= Duration::from_millis(1400),
        "ended after {lived:?}, before three quarters of its 2 s lifetime"
    );
    let (rest, how) = sub.read_to_end(IO_TIMEOUT);
    assert!(rest.is_empty(), "blocks after shutdown: {rest:?}");
    assert_eq!(how, End::Eof);
    // Missed while away, then resumed with the last id it saw: exactly that, no reset.
    let missed = publish(addr, &event_json("rot", None, &json!("missed")));
    let target = format!("/events/stream?channels=rot&lastEventId={before}");
    let mut again = subscribe(addr, &target);
    again.handshake();
    let ev = again.expect_event("missed");
    assert_eq!(ev.event_type(), "message", "{:?}", ev.raw);
    assert_eq!(ev.id(), Some(missed.as_str()));
    assert!(wait_until(IO_TIMEOUT, || server
        .metrics()
        .get("pushcore_stream_rotations_total")
        >= 1));
    assert_eq!(server.metrics().get("pushcore_resets_total"), 0);
}
both_drivers!(a_stream_is_rotated_and_resumes_exactly);

fn without_the_flag_streams_stay_open(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--heartbeat", "1"]);
    let addr = server.addr();
    let mut sub = subscribe_ready(addr, "/events/stream?channels=stay");
    // Three heartbeats in a row, and no shutdown among them.
    for _ in 0..3 {
        let block = sub
            .next_block(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("stream ended: {e:?}"));
        assert!(block.is_comment(), "unexpected block {:?}", block.raw);
    }
    assert_eq!(server.metrics().get("pushcore_stream_rotations_total"), 0);
}
both_drivers!(without_the_flag_streams_stay_open);
