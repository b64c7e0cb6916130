//! A connection's and the server's life: hang-ups noticed, health and metrics endpoints, the
//! counters matching what happened, and the SIGTERM drain.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A subscriber that leaves with FIN, one that leaves with RST (SO_LINGER 0) and one that leaves
/// before an event is written to it are all noticed: the subscriber and connection gauges go
/// back to zero.
fn fin_and_rst_are_noticed(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let fin = subscribe_ready(addr, "/events/stream?channels=bye");
    let rst_stream = connect_with(addr, |s| {
        s.set_linger(Some(Duration::ZERO)).expect("SO_LINGER")
    });
    let mut rst = SseStream::open(rst_stream, "/events/stream?channels=bye", &[]);
    rst.handshake();
    let late = subscribe_ready(addr, "/events/stream?channels=bye");
    let all_in = wait_metric(addr, "pushcore_subscribers", IO_TIMEOUT, |v| v == 3);
    assert!(all_in.is_ok(), "subscribers gauge: {all_in:?}");

    fin.tcp()
        .shutdown(std::net::Shutdown::Both)
        .expect("shutdown");
    drop(fin);
    drop(rst);
    drop(late);
    publish(addr, r#"{"channel":"bye","data":1}"#);

    let gone = wait_metric(addr, "pushcore_subscribers", IO_TIMEOUT, |v| v == 0);
    assert!(
        gone.is_ok(),
        "subscribers still counted after FIN/RST: {gone:?}"
    );
    // Only the /metrics request itself is still open.
    let conns = wait_metric(addr, "pushcore_connections", IO_TIMEOUT, |v| v == 1);
    assert!(
        conns.is_ok(),
        "connections gauge after everyone left: {conns:?}"
    );
}
both_drivers!(fin_and_rst_are_noticed);

/// `/healthz` answers 200 `{"status":"ok"}` (HEAD without a body); `/metrics` is Prometheus text
/// with every series the contract names.
fn health_and_metrics_endpoints(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let resp = get(server.addr(), "/healthz");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({ "status": "ok" }));
    let head = request(
        server.addr(),
        b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(head.status, 200);

    let resp = get(server.addr(), "/metrics");
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"),
        "{:?}",
        resp.headers
    );
    let text = resp.text();
    for name in [
        "pushcore_connections",
        "pushcore_subscribers",
        "pushcore_events_published_total",
        "pushcore_deliveries_total",
        "pushcore_bytes_written_total",
        "pushcore_heartbeats_total",
        "pushcore_replays_total",
        "pushcore_resets_total",
        "pushcore_slow_consumer_disconnects_total",
        "pushcore_connections_rejected_total",
        "pushcore_parse_errors_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "/metrics lacks {name}:\n{text}"
        );
    }
    for w in 0..server.workers() {
        assert!(
            text.contains(&format!("pushcore_connections{{worker=\"{w}\"}} ")),
            "no connections gauge for worker {w}"
        );
    }
}
both_drivers!(health_and_metrics_endpoints);

/// After a known history of publishes, deliveries, a replay with reset, a refused connection
/// and a malformed request, the counters say exactly that.
fn metrics_count_what_happened(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--max-connections", "4"]);
    let addr = server.addr();
    // One keep-alive connection for every publish and /metrics read: the connection count stays
    // known. Wait until it is the only one (the harness's start-up check has closed).
    let mut ops = Conn::open(addr);
    let alone = wait_until(IO_TIMEOUT, || {
        let text = ops
            .request(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .text();
        parse_metrics(&text).get("pushcore_connections") == 1
    });
    assert!(alone, "connections from the start-up check are still open");
    // One event before anyone subscribes.
    let first = ops.publish_ok(&event_json("m", None, &json!("first")));
    let open = |target: &str| {
        let mut s = SseStream::open_paused(connect(addr), target, &[], Duration::ZERO);
        s.handshake();
        s
    };
    let mut a = open("/events/stream?channels=m");
    let mut b = open("/events/stream?channels=m");
    for n in 0..7 {
        ops.publish_ok(&event_json("m", None, &json!(n)));
    }
    for n in 0..3 {
        ops.publish_ok(&event_json("other", None, &json!(n)));
    }
    let mut event_bytes = 0;
    for sub in [&mut a, &mut b] {
        for ev in sub.events(7) {
            event_bytes += ev.raw.len();
        }
    }
    let mut c = open("/events/stream?channels=m&lastEventId=junk");
    assert_eq!(c.expect_event("reset").event(), Some("reset"));
    let replayed = c.events(8);
    assert_eq!(replayed[0].id(), Some(first.as_str()));
    for ev in replayed {
        event_bytes += ev.raw.len();
    }
    // Four connections are open (a, b, c, ops): the next is refused.
    let mut refused = Conn::open(addr);
    let _ = refused.try_send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(refused.read_response().status, 503);
    drop(refused);
    assert_eq!(ops.publish(r#"{"channel":"m""#).status, 400);

    let m = parse_metrics(
        &ops.request(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .text(),
    );
    let expect = [
        ("pushcore_events_published_total", 1 + 10),
        ("pushcore_publish_requests_total", 1 + 10),
        ("pushcore_deliveries_total", 7 + 7 + 8),
        ("pushcore_replays_total", 1),
        ("pushcore_resets_total", 1),
        ("pushcore_connections_rejected_total", 1),
        ("pushcore_parse_errors_total", 1),
        ("pushcore_subscribers", 3),
        ("pushcore_heartbeats_total", 0),
        ("pushcore_slow_consumer_disconnects_total", 0),
    ];
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(name, want)| m.get(name) != *want)
        .map(|(name, want)| format!("{name} = {} (expected {want})", m.get(name)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Bytes are counted when a write completes, which may be just after the client read them.
    let mut written = 0;
    let counted = wait_until(IO_TIMEOUT, || {
        let text = ops
            .request(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .text();
        written = parse_metrics(&text).get("pushcore_bytes_written_total");
        written >= event_bytes as u64
    });
    assert!(
        counted,
        "bytes written {written} < {event_bytes} bytes of events received"
    );
}
both_drivers!(metrics_count_what_happened);

/// SIGTERM: every subscriber gets `retry: <jittered>` + `event: shutdown` with
/// `{"message":"Server shutting down"}` and no id, then EOF; idle keep-alive connections are
/// closed; the process exits 0 within `--drain-timeout`.
fn sigterm_drains_subscribers_and_exits_0(driver: Driver) {
    let mut server = Server::start_with_driver(
        driver,
        &["--workers", "2", "--drain-timeout", "5", "--retry", "1000"],
    );
    let addr = server.addr();
    let mut subs: Vec<SseStream> = (0..6)
        .map(|_| subscribe_ready(addr, "/events/stream?channels=d"))
        .collect();
    let mut idle = Conn::open(addr);
    let id = idle.publish_ok(r#"{"channel":"d","data":"before"}"#);
    for sub in &mut subs {
        assert_eq!(sub.expect_event("before the drain").id(), Some(id.as_str()));
    }

    let stopped = Instant::now();
    server.stop();
    let mut retries = HashSet::new();
    for (i, sub) in subs.iter_mut().enumerate() {
        let block = sub.expect_event("shutdown");
        let retry = block
            .retry()
            .unwrap_or_else(|| panic!("subscriber {i}: shutdown without retry: {:?}", block.raw));
        assert!(
            retry >= 1000,
            "subscriber {i}: retry {retry} below the configured 1000"
        );
        assert_eq!(
            block.raw,
            format!("retry: {retry}\nevent: shutdown\ndata: {{\"message\":\"Server shutting down\"}}\n\n"),
            "subscriber {i}"
        );
        retries.insert(retry);
        let (rest, end) = sub.read_to_end(IO_TIMEOUT);
        assert!(
            rest.is_empty(),
            "subscriber {i}: blocks after shutdown: {rest:?}"
        );
        assert_eq!(end, End::Eof, "subscriber {i}: stream not closed cleanly");
    }
    assert!(
        retries.len() >= 2,
        "retry hints are not jittered: {retries:?}"
    );
    let (end, bytes) = idle.read_to_end(IO_TIMEOUT);
    assert!(
        matches!(end, End::Eof | End::Reset),
        "idle publisher connection not closed: {end:?}"
    );
    assert!(
        bytes.is_empty(),
        "idle connection got {:?}",
        String::from_utf8_lossy(&bytes)
    );

    let status = server
        .wait_exit(Duration::from_secs(7))
        .expect("no exit within the drain timeout");
    assert_eq!(status.code(), Some(0), "exit status");
    assert!(
        stopped.elapsed() < Duration::from_secs(7),
        "drain took {:?}",
        stopped.elapsed()
    );
    // (Whether the port still answers is not checked: the process has exited, so its
    // listeners are closed, and a test running beside this one may already have the port.)
}
both_drivers!(sigterm_drains_subscribers_and_exits_0);

/// `--drain-timeout 1`: a subscriber that does not read (its socket full) does not hold the
/// exit: the process exits 0 shortly after the drain timeout.
fn drain_timeout_bounds_exit_with_a_stuck_subscriber(driver: Driver) {
    let mut server = Server::start_with_driver(
        driver,
        &[
            "--drain-timeout",
            "1",
            "--sndbuf-bytes",
            "4096",
            "--max-lag",
            "100000",
            "--write-timeout",
            "600",
        ],
    );
    let addr = server.addr();
    let small = connect_with(addr, |s| s.set_recv_buffer_size(4096).expect("SO_RCVBUF"));
    let mut stuck = SseStream::open(small, "/events/stream?channels=s", &[]);
    stuck.handshake();
    let pad = "z".repeat(1000);
    let mut ops = Conn::open(addr);
    for n in 0..300 {
        ops.publish_ok(&event_json("s", None, &json!({ "n": n, "pad": pad })));
    }
    drop(ops);
    let stopped = Instant::now();
    server.stop();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("no exit within 5 s of SIGTERM with --drain-timeout 1");
    assert_eq!(status.code(), Some(0));
    assert!(stopped.elapsed() < Duration::from_secs(5));
    drop(stuck);
}
both_drivers!(drain_timeout_bounds_exit_with_a_stuck_subscriber);
