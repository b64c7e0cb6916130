//! The event stream as a subscriber sees it: response head, handshake, framing, fan-out to
//! every subscriber on every worker, channels, batches and heartbeats.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Status line and headers of the stream, then `retry:` with the configured value and the
/// `connected` event, no `id:` line.
fn subscribe_response_head_and_handshake(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--retry", "1234"]);
    let before = unix_ms();
    let mut sub = subscribe(server.addr(), "/events/stream?channels=news");
    let head = &sub.head;
    assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("cache-control"), Some("no-cache, no-transform"));
    assert_eq!(head.header("connection"), Some("keep-alive"));
    assert_eq!(head.header("x-accel-buffering"), Some("no"));
    assert_eq!(
        head.header("content-length"),
        None,
        "a stream must be close-delimited"
    );
    assert_eq!(
        head.header("transfer-encoding"),
        None,
        "a stream must be close-delimited"
    );

    let hs = sub.handshake();
    assert!(
        hs.blocks[0].raw.starts_with("retry: 1234\n"),
        "first bytes: {:?}",
        hs.blocks[0].raw
    );
    assert_eq!(hs.retry, Some(1234));
    let after = unix_ms();
    assert!(
        hs.timestamp + 1000 >= before && hs.timestamp <= after + 1000,
        "timestamp {} not within [{before}, {after}]",
        hs.timestamp
    );
    for block in &hs.blocks {
        assert!(
            !block.raw.contains("\nid:") && !block.raw.starts_with("id:"),
            "handshake carries an id: {:?}",
            block.raw
        );
    }

    // A second subscriber gets a different client id.
    let mut other = subscribe(server.addr(), "/events/stream?channels=news");
    assert_ne!(other.handshake().client_id, hs.client_id);
}
both_drivers!(subscribe_response_head_and_handshake);

/// 20 subscribers spread over 2 workers, 50 events from publishers on either worker: each
/// subscriber gets all 50, once, in order, with the ids the publishes returned.
fn every_subscriber_on_every_worker_gets_every_event_in_order(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--workers", "2"]);
    let mut subs: Vec<SseStream> = (0..20)
        .map(|_| subscribe(server.addr(), "/events/stream?channels=fan"))
        .collect();
    for sub in &mut subs {
        assert_eq!(sub.handshake().retry, Some(3000), "default retry hint");
    }
    let raw = metrics_raw(server.addr());
    for w in 0..2 {
        let n = raw
            .get(&format!("pushcore_subscribers{{worker=\"{w}\"}}"))
            .copied()
            .unwrap_or(0);
        assert!(
            n > 0,
            "no subscriber landed on worker {w}; the test would not cross workers: {raw:?}"
        );
    }

    // A new connection per publish: publishers land on both workers too.
    let ids: Vec<String> = (0..50)
        .map(|i| {
            publish(
                server.addr(),
                &event_json("fan", Some("tick"), &json!({ "n": i })),
            )
        })
        .collect();
    assert_increasing(&ids);
    // A last event: whatever arrives before it is all there is (no duplicate, no extra).
    let last = publish(server.addr(), r#"{"channel":"fan","data":"last"}"#);

    for (s, sub) in subs.iter_mut().enumerate() {
        let got = sub.events(50);
        for (i, ev) in got.iter().enumerate() {
            assert_eq!(
                ev.id(),
                Some(ids[i].as_str()),
                "subscriber {s}, event {i}: {:?}",
                ev.raw
            );
            assert_eq!(ev.event(), Some("tick"));
            assert_eq!(ev.json(), json!({ "n": i }));
        }
        assert_eq!(
            sub.expect_event("the last event").id(),
            Some(last.as_str()),
            "subscriber {s}"
        );
    }
}
both_drivers!(every_subscriber_on_every_worker_gets_every_event_in_order);

/// `data` is the publisher's JSON, compact on one `data:` line (newlines inside strings stay
/// escaped); the frame is exactly `id`, `event`, `data`; eventType defaults to `message`.
fn data_round_trips_on_one_line(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=text");
    let values = [
        json!({ "text": "line1\nline2\r\nline3\rend", "n": [1, 2.5, null, true] }),
        json!("a string\nwith a newline"),
        json!(42),
        json!([{ "nested": { "deep": "ü ✓ \u{0}" } }]),
    ];
    let mut ids = Vec::new();
    for v in &values {
        ids.push(publish(server.addr(), &event_json("text", None, v)));
    }
    // Insignificant whitespace is removed; key order and spelling are kept.
    let pretty = "{\n  \"channel\" : \"text\",\n  \"eventType\": \"update\",\n  \"data\" : { \"z\" : 1 ,\n \"a\" : [ 1 , 2 ] }\n}";
    ids.push(publish(server.addr(), pretty));
    let pretty_index = ids.len() - 1;

    for (i, v) in values.iter().enumerate() {
        let ev = sub.expect_event("published value");
        assert_eq!(ev.data_lines(), 1, "{:?}", ev.raw);
        assert_eq!(ev.json(), *v);
        assert_eq!(ev.event(), Some("message"), "default eventType");
        let expected = format!(
            "id: {}\nevent: message\ndata: {}\n\n",
            ids[i],
            ev.data().unwrap_or_default()
        );
        assert_eq!(ev.raw, expected);
    }
    let ev = sub.expect_event("pretty-printed publish");
    assert_eq!(
        ev.raw,
        format!(
            "id: {}\nevent: update\ndata: {{\"z\":1,\"a\":[1,2]}}\n\n",
            ids[pretty_index]
        )
    );
}
both_drivers!(data_round_trips_on_one_line);

/// A JSON array publishes a batch: `eventIds`, one per event, increasing, delivered in order.
fn batch_publish_returns_event_ids(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=b1,b2");
    let ids = publish_batch(
        server.addr(),
        r#"[{"channel":"b1","data":1},{"channel":"b2","eventType":"two","data":2},{"channels":["b1","b2"],"data":3}]"#,
    );
    assert_eq!(ids.len(), 3);
    assert_increasing(&ids);
    for (i, ev) in sub.events(3).iter().enumerate() {
        assert_eq!(ev.id(), Some(ids[i].as_str()));
        assert_eq!(ev.json(), json!(i + 1));
    }
    let single = publish(server.addr(), r#"{"channel":"b1","data":4}"#);
    assert!(parse_id(&single) > parse_id(&ids[2]));
    assert_eq!(sub.expect_event("after batch").id(), Some(single.as_str()));
}
both_drivers!(batch_publish_returns_event_ids);

/// An event on `channels:[a,b]` reaches a subscriber of a and b once; other channels' events
/// do not reach it; no `channels` follows `default`.
fn channels_route_events_and_multi_channel_events_arrive_once(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut ab = subscribe_ready(server.addr(), "/events/stream?channels=a,b");
    let mut b = subscribe_ready(server.addr(), "/events/stream?channels=b");
    let mut dflt = subscribe_ready(server.addr(), "/events/stream");

    let both = publish(server.addr(), r#"{"channels":["a","b"],"data":"both"}"#);
    let only_c = publish(server.addr(), r#"{"channel":"c","data":"c"}"#);
    let only_a = publish(server.addr(), r#"{"channel":"a","data":"a"}"#);
    let to_default = publish(server.addr(), r#"{"channel":"default","data":"d"}"#);
    let only_b = publish(server.addr(), r#"{"channel":"b","data":"b"}"#);
    let _ = only_c;
    // A last event on every channel: what arrives before it is all there is.
    let last = publish(
        server.addr(),
        r#"{"channels":["a","b","default"],"data":"last"}"#,
    );

    let ids = |sub: &mut SseStream, n| -> Vec<String> {
        sub.events(n)
            .iter()
            .map(|e| e.id().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        ids(&mut ab, 4),
        [both.clone(), only_a, only_b.clone(), last.clone()]
    );
    assert_eq!(ids(&mut b, 3), [both, only_b, last.clone()]);
    assert_eq!(ids(&mut dflt, 2), [to_default, last]);
}
both_drivers!(channels_route_events_and_multi_channel_events_arrive_once);

/// `--heartbeat 1`: a quiet stream receives `: heartbeat\n\n`.
fn heartbeat_arrives_while_idle(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--heartbeat", "1"]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=quiet");
    let block = sub
        .next_block(Duration::from_secs(4))
        .expect("a heartbeat within 4 s");
    assert_eq!(block.raw, ": heartbeat\n\n");
    // Events still flow on a stream that has had heartbeats; another heartbeat follows.
    let id = publish(server.addr(), r#"{"channel":"quiet","data":1}"#);
    assert_eq!(
        sub.expect_event("event after heartbeat").id(),
        Some(id.as_str())
    );
    let block = sub
        .next_block(Duration::from_secs(4))
        .expect("a second heartbeat within 4 s");
    assert_eq!(block.raw, ": heartbeat\n\n");
}
both_drivers!(heartbeat_arrives_while_idle);

/// `"data": null` is JSON like any other value: published and delivered as `data: null`.
fn null_data_is_published(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=n");
    let resp = request(
        server.addr(),
        &publish_request(r#"{"channel":"n","data":null}"#, false),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.json()["eventId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        sub.expect_event("null data").raw,
        format!("id: {id}\nevent: message\ndata: null\n\n")
    );
    let ids = publish_batch(
        server.addr(),
        r#"[{"channel":"n","data":null},{"channel":"n","data":[null]}]"#,
    );
    assert_eq!(
        sub.expect_event("batch null").raw,
        format!("id: {}\nevent: message\ndata: null\n\n", ids[0])
    );
}
both_drivers!(null_data_is_published);

/// A subscriber to a new channel whose handshake takes a while to write (a slow client: small
/// receive window, a 16 KB `reset` echoing its Last-Event-ID) still receives the channel's
/// events once it reads.
fn subscribe_on_a_new_channel_after_a_slow_handshake(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--sndbuf-bytes", "4096"]);
    let small = connect_with(server.addr(), |s| {
        s.set_recv_buffer_size(4096).expect("SO_RCVBUF")
    });
    let long_id = "x".repeat(15_000);
    // Not reading for a second keeps the handshake write pending across several sweeps.
    let mut sub = SseStream::open_paused(
        small,
        "/events/stream?channels=late",
        &[("Last-Event-ID", &long_id)],
        Duration::from_millis(1200),
    );
    sub.handshake();
    assert_eq!(sub.expect_event("reset").event(), Some("reset"));
    let id = publish(server.addr(), r#"{"channel":"late","data":1}"#);
    assert_eq!(
        sub.expect_event("event after a slow handshake").id(),
        Some(id.as_str())
    );
}
both_drivers!(subscribe_on_a_new_channel_after_a_slow_handshake);
