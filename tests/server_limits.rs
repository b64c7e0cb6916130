//! Limits an operator sets: connection capacity (503), handshake and keep-alive timeouts, the
//! slow-consumer limit and the write-stall timeout.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// `--max-connections 3`: with 3 subscribers open, the next connection gets 503 with
/// `Retry-After` and `{"error":"Server at capacity"}`; once one leaves, connections are served.
fn at_capacity_new_connections_get_503(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--max-connections", "3"]);
    let addr = server.addr();
    let mut subs: Vec<SseStream> = (0..3)
        .map(|_| subscribe_when_free(addr, "/events/stream?channels=cap"))
        .collect();

    let requests = [
        b"GET /events/stream?channels=cap HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        publish_request(r#"{"channel":"cap","data":1}"#, true),
    ];
    for raw in &requests {
        let mut conn = Conn::open(addr);
        conn.send(raw);
        let resp = conn.read_response();
        assert_eq!(resp.status, 503, "{}", resp.text());
        let retry_after = resp
            .header("retry-after")
            .unwrap_or_else(|| panic!("503 without Retry-After: {:?}", resp.headers));
        assert!(
            retry_after.trim().parse::<u64>().is_ok_and(|s| s > 0),
            "Retry-After {retry_after:?}"
        );
        assert_eq!(resp.text(), r#"{"error":"Server at capacity"}"#);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let (end, rest) = conn.read_to_end(IO_TIMEOUT);
        assert!(
            matches!(end, End::Eof | End::Reset),
            "the refused connection is not closed: {end:?}"
        );
        assert!(
            rest.is_empty(),
            "bytes after the 503: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    // The three subscribers were not disturbed.
    let id = publish_when_served(addr, subs.pop());
    for sub in &mut subs {
        assert_eq!(sub.expect_event("after the 503s").id(), Some(id.as_str()));
    }
}
both_drivers!(at_capacity_new_connections_get_503);

/// A refused connection ends with FIN, not RST, even when the client had sent its request:
/// a reset can destroy the response before the client reads it (RFC 9112 §9.6).
fn refused_connection_closes_without_reset(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--max-connections", "1"]);
    let _only = subscribe_when_free(server.addr(), "/events/stream?channels=cap");
    let mut conn = Conn::open(server.addr());
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(conn.read_response().status, 503);
    assert_eq!(
        conn.read_to_end(IO_TIMEOUT).0,
        End::Eof,
        "the 503 is followed by a reset"
    );
}
both_drivers!(refused_connection_closes_without_reset);

/// Drop `leaving` (freeing a slot) and publish as soon as the server accepts connections again.
fn publish_when_served(addr: std::net::SocketAddr, leaving: Option<SseStream>) -> String {
    drop(leaving);
    let mut id = None;
    let served = wait_until(IO_TIMEOUT, || {
        let resp = request(
            addr,
            &publish_request(r#"{"channel":"cap","data":"after"}"#, false),
        );
        if resp.status == 200 {
            id = resp.json()["eventId"].as_str().map(str::to_string);
        }
        resp.status == 200
    });
    assert!(served, "a freed slot was not reused within {IO_TIMEOUT:?}");
    id.unwrap_or_default()
}

/// Read what the server sends until it closes; it must be one 408 response with a JSON error.
fn expect_408_then_close(conn: &mut Conn, what: &str) {
    let started = Instant::now();
    let (end, bytes) = conn.read_to_end(Duration::from_secs(5));
    assert_eq!(
        end,
        End::Eof,
        "{what}: connection not closed within 5 s; got {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let (resp, used) = parse_response(&bytes).unwrap_or_else(|| {
        panic!(
            "{what}: no complete response before close: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(resp.status, 408, "{what}: {}", resp.text());
    resp.error_message();
    assert_eq!(used, bytes.len(), "{what}: bytes after the 408");
    assert!(started.elapsed() < Duration::from_secs(5), "{what}");
}

/// `--handshake-timeout 1`: half a request head, or nothing at all, gets 408 and a close.
fn stalled_request_head_gets_408(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--handshake-timeout", "1"]);
    let mut half = Conn::open(server.addr());
    half.send(b"GET /events/stream?channels=a HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let mut silent = Conn::open(server.addr());
    expect_408_then_close(&mut half, "half a head");
    expect_408_then_close(&mut silent, "nothing sent");
    // A complete head in time is served as usual.
    assert_eq!(get(server.addr(), "/healthz").status, 200);
}
both_drivers!(stalled_request_head_gets_408);

/// `--handshake-timeout 1`: a publish whose body stalls is not kept open forever: the server
/// answers 408 and closes.
fn stalled_publish_body_gets_408(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--handshake-timeout", "1"]);
    let mut conn = Conn::open(server.addr());
    conn.send(b"POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"chan");
    expect_408_then_close(&mut conn, "stalled body");
}
both_drivers!(stalled_publish_body_gets_408);

/// `--keepalive-timeout 1`: an idle keep-alive connection is closed quietly (no 408) after
/// serving requests.
fn idle_keepalive_connection_is_closed(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--keepalive-timeout", "1"]);
    let mut conn = Conn::open(server.addr());
    conn.publish_ok(r#"{"channel":"k","data":1}"#);
    conn.publish_ok(r#"{"channel":"k","data":2}"#);
    let (end, bytes) = conn.read_to_end(Duration::from_secs(5));
    assert_eq!(end, End::Eof, "idle connection not closed within 5 s");
    assert!(
        bytes.is_empty(),
        "an idle keep-alive close sends nothing, got {:?}",
        String::from_utf8_lossy(&bytes)
    );
}
both_drivers!(idle_keepalive_connection_is_closed);

/// `--max-lag 500 --sndbuf-bytes 4096`: one subscriber never reads, one reads; 2000 events of
/// ~1 KB. The reader gets all of them in order; the non-reader is disconnected (its stream ends
/// before all events) and counted in `pushcore_slow_consumer_disconnects_total`.
fn slow_consumer_is_disconnected_and_others_unaffected(driver: Driver) {
    slow_consumer_case(driver, "500");
}
both_drivers!(slow_consumer_is_disconnected_and_others_unaffected);

/// The same with `--max-lag 50`.
fn slow_consumer_limit_50_spares_readers(driver: Driver) {
    slow_consumer_case(driver, "50");
}
both_drivers!(slow_consumer_limit_50_spares_readers);

fn slow_consumer_case(driver: Driver, max_lag: &str) {
    const EVENTS: usize = 2000;
    let server =
        Server::start_with_driver(driver, &["--max-lag", max_lag, "--sndbuf-bytes", "4096"]);
    let addr = server.addr();
    let small = connect_with(addr, |s| s.set_recv_buffer_size(4096).expect("SO_RCVBUF"));
    let mut stalled = SseStream::open(small, "/events/stream?channels=slow", &[]);
    stalled.handshake();
    let mut reader = subscribe_ready(addr, "/events/stream?channels=slow");
    // How many events the reader has; the publisher stays within half of --max-lag of it, so
    // the reader keeps up however loaded the machine is (falling behind is what gets a
    // subscriber dropped, by design) while the stalled subscriber falls behind for good.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let window = max_lag.parse::<usize>().expect("max_lag") / 2;
    let reader_progress = std::sync::Arc::clone(&progress);
    let reading = std::thread::spawn(move || {
        let mut ids = Vec::with_capacity(EVENTS);
        while ids.len() < EVENTS {
            match reader.next_event(Duration::from_secs(10)) {
                Ok(ev) => ids.push(ev.id().unwrap_or_default().to_string()),
                Err(end) => return Err((end, ids.len())),
            }
            reader_progress.store(ids.len(), std::sync::atomic::Ordering::Release);
        }
        Ok(ids)
    });

    let pad = "x".repeat(1000);
    let mut publisher = Conn::open(addr);
    let published: Vec<String> = (0..EVENTS)
        .map(|n| {
            let caught_up = wait_until(Duration::from_secs(10), || {
                progress.load(std::sync::atomic::Ordering::Acquire) + window >= n
                    || reading.is_finished()
            });
            assert!(
                caught_up,
                "the reader is stuck {window}+ events behind at event {n}"
            );
            publisher.publish_ok(&event_json("slow", None, &json!({ "n": n, "pad": pad })))
        })
        .collect();

    let got = reading.join().expect("reader thread");
    let got = got.unwrap_or_else(|(end, n)| {
        panic!("the reading subscriber lost its stream after {n} events: {end:?}")
    });
    assert_eq!(
        got, published,
        "the reading subscriber gets every event in order"
    );

    let counted = wait_metric(
        addr,
        "pushcore_slow_consumer_disconnects_total",
        Duration::from_secs(10),
        |v| v >= 1,
    );
    assert!(
        counted.is_ok(),
        "no slow-consumer disconnect counted: {counted:?}"
    );
    let (blocks, end) = stalled.read_to_end(Duration::from_secs(10));
    assert!(
        matches!(end, End::Eof | End::Reset),
        "the non-reading subscriber's stream did not end: {end:?}"
    );
    let events = blocks.iter().filter(|b| b.id().is_some()).count();
    assert!(
        events < EVENTS,
        "the non-reading subscriber received all {events} events"
    );
    // What it did receive is a prefix of the published events, in order.
    for (i, b) in blocks.iter().filter(|b| b.id().is_some()).enumerate() {
        assert_eq!(b.id(), Some(published[i].as_str()));
    }
}

/// `--max-lag 50`: one publish of a 60-event batch is not a slow consumer: a subscriber that
/// reads gets all 60.
fn batch_larger_than_max_lag_reaches_reading_subscribers(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--max-lag", "50"]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=burst");
    let body: Vec<String> = (0..60)
        .map(|n| event_json("burst", None, &json!(n)))
        .collect();
    let ids = publish_batch(server.addr(), &format!("[{}]", body.join(",")));
    let got: Vec<String> = sub
        .events(60)
        .iter()
        .map(|e| e.id().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(
        server
            .metrics()
            .get("pushcore_slow_consumer_disconnects_total"),
        0
    );
}
both_drivers!(batch_larger_than_max_lag_reaches_reading_subscribers);

/// `--write-timeout 1`: a subscriber whose socket stays full is dropped and counted in
/// `pushcore_write_timeouts_total` (or as a slow consumer, whichever limit fires first).
fn stalled_writes_drop_the_subscriber(driver: Driver) {
    let server = Server::start_with_driver(
        driver,
        &[
            "--write-timeout",
            "1",
            "--sndbuf-bytes",
            "4096",
            "--max-lag",
            "100000",
        ],
    );
    let addr = server.addr();
    let small = connect_with(addr, |s| s.set_recv_buffer_size(4096).expect("SO_RCVBUF"));
    let mut stalled = SseStream::open(small, "/events/stream?channels=w", &[]);
    stalled.handshake();
    let pad = "y".repeat(1000);
    let mut publisher = Conn::open(addr);
    for n in 0..300 {
        publisher.publish_ok(&event_json("w", None, &json!({ "n": n, "pad": pad })));
    }
    let dropped = wait_metric(addr, "pushcore_subscribers", Duration::from_secs(8), |v| {
        v == 0
    });
    assert!(
        dropped.is_ok(),
        "the stalled subscriber is still connected: {dropped:?}"
    );
    let m = server.metrics();
    assert_eq!(
        m.get("pushcore_write_timeouts_total") + m.get("pushcore_slow_consumer_disconnects_total"),
        1,
        "{m:?}"
    );
    let (_, end) = stalled.read_to_end(Duration::from_secs(5));
    assert!(matches!(end, End::Eof | End::Reset), "{end:?}");
}
both_drivers!(stalled_writes_drop_the_subscriber);

/// A subscriber that stops reading while ~400 KB of events arrive (its socket fills: the write
/// goes from the fast path to a writer task, mid-frame) and then reads again gets every event,
/// whole and in order, and the stream stays live for the next one.
fn a_reader_that_pauses_gets_every_event_when_it_resumes(driver: Driver) {
    const EVENTS: usize = 50;
    let server = Server::start_with_driver(driver, &["--sndbuf-bytes", "4096"]);
    let addr = server.addr();
    let small = connect_with(addr, |s| s.set_recv_buffer_size(4096).expect("SO_RCVBUF"));
    let mut paused = SseStream::open(small, "/events/stream?channels=pause", &[]);
    paused.handshake();
    let pad = "p".repeat(8000);
    let mut publisher = Conn::open(addr);
    let published: Vec<String> = (0..EVENTS)
        .map(|n| publisher.publish_ok(&event_json("pause", None, &json!({ "n": n, "pad": pad }))))
        .collect();
    let got = paused.events(EVENTS);
    let ids: Vec<&str> = got.iter().map(|e| e.id().unwrap_or_default()).collect();
    assert_eq!(ids, published, "every event, in order");
    for (n, e) in got.iter().enumerate() {
        assert_eq!(e.json()["n"], json!(n), "event {n} arrived whole");
        assert_eq!(e.json()["pad"], json!(pad), "event {n} arrived whole");
    }
    let next = publisher.publish_ok(&event_json("pause", None, &json!("after")));
    let after = paused.events(1);
    assert_eq!(
        after[0].id(),
        Some(next.as_str()),
        "the stream is still live"
    );
}
both_drivers!(a_reader_that_pauses_gets_every_event_when_it_resumes);
