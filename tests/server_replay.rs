//! Resuming with `Last-Event-ID` (header or query): exactly the missed events, in order, then
//! live ones with no duplicate and no gap at the seam; `event: reset` when the id cannot be
//! served exactly.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;

fn ids_of(blocks: &[Block]) -> Vec<String> {
    blocks
        .iter()
        .map(|b| b.id().unwrap_or("<no id>").to_string())
        .collect()
}

/// Subscribe to `target` (plus `header` as `Last-Event-ID` if given) and read the handshake.
fn resume(addr: SocketAddr, target: &str, header: Option<&str>) -> SseStream {
    let headers: Vec<(&str, &str)> = header.map(|h| ("Last-Event-ID", h)).into_iter().collect();
    let mut sub = SseStream::open(connect(addr), target, &headers);
    sub.handshake();
    sub
}

/// Read events until the one with id `last` (inclusive); panics on anything missing.
fn events_until(sub: &mut SseStream, last: &str) -> Vec<Block> {
    let mut got = Vec::new();
    loop {
        let ev = sub
            .next_event(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("waiting for {last}: {end:?} after {:?}", ids_of(&got)));
        let done = ev.id() == Some(last);
        got.push(ev);
        assert!(got.len() <= 10_000, "runaway stream");
        if done {
            return got;
        }
    }
}

/// The `reset` block: no id, data `{"reason":"…","requested":"<id>"}`.
fn assert_reset(block: &Block, requested: &str) {
    assert_eq!(
        block.event(),
        Some("reset"),
        "expected a reset first, got {:?}",
        block.raw
    );
    assert_eq!(
        block.id(),
        None,
        "reset must not carry an id: {:?}",
        block.raw
    );
    let data = block.json();
    let reason = data["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {data}"));
    assert!(!reason.is_empty(), "empty reason");
    assert_eq!(data["requested"].as_str(), Some(requested), "{data}");
    assert_eq!(
        data.as_object().map(|o| o.len()),
        Some(2),
        "unexpected fields in {data}"
    );
}

/// Each spelling of the resume id replays exactly what was missed, then live events, while a
/// publisher keeps publishing during the reconnect (no duplicate, no gap at the seam).
fn resume_replays_missed_then_live_for_each_spelling(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let spellings: [(&str, bool); 4] = [
        ("Last-Event-ID", true),
        ("lastEventId", false),
        ("last_event_id", false),
        ("lastEventID", false),
    ];
    for (i, (spelling, is_header)) in spellings.into_iter().enumerate() {
        let channel = format!("r{i}");
        let body = |n: usize| event_json(&channel, Some("seq"), &json!({ "n": n }));
        let before: Vec<String> = (0..5).map(|n| publish(addr, &body(n))).collect();

        // Publish concurrently with the reconnect.
        let during = {
            let bodies: Vec<String> = (5..35).map(body).collect();
            std::thread::spawn(move || {
                bodies
                    .iter()
                    .map(|b| publish(addr, b))
                    .collect::<Vec<String>>()
            })
        };
        let mut sub = if is_header {
            resume(
                addr,
                &format!("/events/stream?channels={channel}"),
                Some(&before[1]),
            )
        } else {
            resume(
                addr,
                &format!("/events/stream?channels={channel}&{spelling}={}", before[1]),
                None,
            )
        };
        let during = during.join().expect("publisher thread");
        let last = publish(addr, &body(35));

        let got = events_until(&mut sub, &last);
        let mut expected: Vec<String> = before[2..].to_vec();
        expected.extend(during);
        expected.push(last);
        assert_eq!(ids_of(&got), expected, "resume via {spelling}");
        for (k, ev) in got.iter().enumerate() {
            assert_eq!(ev.json(), json!({ "n": k + 2 }), "resume via {spelling}");
        }
    }
}
both_drivers!(resume_replays_missed_then_live_for_each_spelling);

/// Resuming on several channels merges their histories by id: each event once, none from other
/// channels; the same from subscribers on either worker.
fn resume_across_channels_merges_by_id(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--workers", "2"]);
    let addr = server.addr();
    let plan: [(&[&str], bool); 8] = [
        (&["a"], false),
        (&["b"], true),
        (&["a", "b"], true),
        (&["c"], false),
        (&["b"], true),
        (&["a"], true),
        (&["a", "c"], true),
        (&["c", "d"], false),
    ];
    let mut expected = Vec::new();
    let mut first = String::new();
    for (n, (channels, wanted)) in plan.iter().enumerate() {
        let id = publish(
            addr,
            &json!({ "channels": channels, "data": n }).to_string(),
        );
        if n == 0 {
            first = id.clone();
        }
        if *wanted {
            expected.push(id);
        }
    }
    let last = publish(addr, r#"{"channels":["a","b"],"data":"last"}"#);
    expected.push(last.clone());
    for _ in 0..6 {
        let mut sub = resume(addr, "/events/stream?channels=a,b", Some(&first));
        assert_eq!(ids_of(&events_until(&mut sub, &last)), expected);
    }
}
both_drivers!(resume_across_channels_merges_by_id);

/// `--history-events 3`, 10 events: a resume id that cannot be served exactly (evicted, from the
/// future, malformed, from an earlier run) gets `event: reset` first, then what is retained,
/// then live events. Ids that can be served exactly get no reset.
fn unservable_resume_ids_get_a_reset_then_retained_events(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--history-events", "3"]);
    let addr = server.addr();
    let future = format!("{}-0", unix_ms() + 3_600_000);
    let cases: [(&str, Option<&str>); 4] = [
        ("evicted", None),
        ("future", Some(&future)),
        ("malformed", Some("not-an-id")),
        ("previous run", Some("1-0")),
    ];
    for (k, (what, requested)) in cases.into_iter().enumerate() {
        let channel = format!("h{k}");
        let target = format!("/events/stream?channels={channel}");
        let ids: Vec<String> = (0..10)
            .map(|n| publish(addr, &event_json(&channel, None, &json!(n))))
            .collect();
        let requested = requested.unwrap_or(&ids[0]);
        let mut sub = resume(addr, &target, Some(requested));
        assert_reset(&sub.expect_event(what), requested);
        assert_eq!(
            ids_of(&sub.events(3)),
            &ids[7..],
            "{what}: the retained events follow the reset"
        );
        let live = publish(addr, &event_json(&channel, None, &json!("live")));
        assert_eq!(
            sub.expect_event(what).id(),
            Some(live.as_str()),
            "{what}: live after replay"
        );
    }

    // Exactly servable: resuming from the newest evicted id needs only retained events.
    let ids: Vec<String> = (0..6)
        .map(|n| publish(addr, &event_json("x", None, &json!(n))))
        .collect();
    let mut sub = resume(addr, "/events/stream?channels=x", Some(&ids[2]));
    assert_eq!(
        ids_of(&sub.events(3)),
        &ids[3..],
        "resume from the newest evicted id needs no reset"
    );
    // Resuming from the newest id replays nothing: the next event is live.
    let mut sub = resume(addr, "/events/stream?channels=x", Some(&ids[5]));
    let live = publish(addr, &event_json("x", None, &json!("live")));
    assert_eq!(sub.expect_event("live").id(), Some(live.as_str()));
    // The header wins over the query parameter.
    let target = format!("/events/stream?channels=x&lastEventId={}", ids[0]);
    let mut sub = resume(addr, &target, Some(&ids[5]));
    let live2 = publish(addr, &event_json("x", None, &json!("live2")));
    assert_eq!(ids_of(&sub.events(2)), [live, live2]);
}
both_drivers!(unservable_resume_ids_get_a_reset_then_retained_events);

/// A restarted server never reuses an id a client may hold; resuming from the earlier run's id
/// gets a reset and then the new run's events.
fn restart_never_reuses_ids_and_resets_old_ones(driver: Driver) {
    let mut first = Server::start_with_driver(driver, &[]);
    let old: Vec<String> = (0..3)
        .map(|n| publish(first.addr(), &event_json("p", None, &json!(n))))
        .collect();
    first.stop();
    assert!(first
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));

    let second = Server::start_with_driver(driver, &[]);
    let new: Vec<String> = (0..2)
        .map(|n| publish(second.addr(), &event_json("p", None, &json!(n))))
        .collect();
    assert!(
        parse_id(&new[0]) > parse_id(&old[2]),
        "id {} of the new run is not above {} of the old",
        new[0],
        old[2]
    );
    let mut sub = resume(second.addr(), "/events/stream?channels=p", Some(&old[2]));
    assert_reset(&sub.expect_event("old id"), &old[2]);
    assert_eq!(ids_of(&sub.events(2)), new);
}
both_drivers!(restart_never_reuses_ids_and_resets_old_ones);
