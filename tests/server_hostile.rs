//! Hostile clients: connection floods from one address, garbage after a subscribe, channel lists
//! built to hurt, and publish floods. The server answers each with a clear status, keeps serving
//! everyone else, and its memory stays bounded.

#[macro_use]
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::json;

fn connect_from(addr: SocketAddr, source: [u8; 4]) -> TcpStream {
    connect_with(addr, |s| {
        s.bind(&SocketAddr::from((source, 0)).into())
            .unwrap_or_else(|e| panic!("bind {source:?}: {e}"));
    })
}

fn subscribe_from(addr: SocketAddr, source: [u8; 4], target: &str) -> SseStream {
    let mut s = SseStream::open(connect_from(addr, source), target, &[]);
    s.handshake();
    s
}

/// `--max-connections-per-ip 2`: a third connection from one address gets 429 with Retry-After
/// and a JSON error; other addresses are served; a freed place is usable again.
fn per_ip_limit_answers_429(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--max-connections-per-ip", "2"]);
    let addr = server.addr();
    let a = [127, 0, 0, 5];
    let first = subscribe_from(addr, a, "/events/stream?channels=ip");
    let _second = subscribe_from(addr, a, "/events/stream?channels=ip");
    let mut third = Conn::from_stream(connect_from(addr, a));
    third.send(b"GET /events/stream?channels=ip HTTP/1.1\r\nHost: t\r\n\r\n");
    let resp = third.read_response();
    assert_eq!(resp.status, 429, "{}", resp.text());
    assert!(resp
        .header("retry-after")
        .is_some_and(|v| v.trim().parse::<u64>().is_ok()));
    assert_eq!(
        resp.error_message(),
        "Too many connections from this address"
    );
    // Another address is not affected.
    let _other = subscribe_from(addr, [127, 0, 0, 6], "/events/stream?channels=ip");
    // Once one of the two leaves, the address may connect again.
    drop(first);
    let again = wait_until(IO_TIMEOUT, || {
        let mut c = Conn::from_stream(connect_from(addr, a));
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        c.try_read_response(IO_TIMEOUT)
            .is_ok_and(|r| r.status == 200)
    });
    assert!(
        again,
        "the address stayed refused after a connection closed"
    );
    assert!(
        server
            .metrics()
            .get("pushcore_connections_rejected_per_ip_total")
            >= 1
    );
}
both_drivers!(per_ip_limit_answers_429);

/// Read from `stream` until `needle` has arrived (bounded by [`IO_TIMEOUT`]).
fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    while std::time::Instant::now() < deadline {
        if seen.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    seen.windows(needle.len()).any(|w| w == needle)
}

/// Bytes a client sends after its subscribe request (in the same write, and a megabyte later)
/// are discarded: its stream keeps delivering and the server keeps serving.
fn garbage_after_subscribe_is_ignored(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /events/stream?channels=g HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\x00\xff\r\n\r\nGET / HTTP/1.1\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    assert!(
        read_until(&mut stream, &mut seen, b"event: connected\n"),
        "no handshake: {:?}",
        String::from_utf8_lossy(&seen)
    );
    assert!(seen.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let id = publish(addr, &json!({"channel":"g","data":"first"}).to_string());
    assert!(
        read_until(&mut stream, &mut seen, format!("id: {id}\n").as_bytes()),
        "event lost after pipelined garbage"
    );
    let _ = stream.write_all(&vec![b'x'; 1 << 20]);
    let id = publish(addr, &json!({"channel":"g","data":"second"}).to_string());
    assert!(
        read_until(&mut stream, &mut seen, format!("id: {id}\n").as_bytes()),
        "event lost after a megabyte of garbage"
    );
    assert_eq!(get(addr, "/healthz").status, 200);
}
both_drivers!(garbage_after_subscribe_is_ignored);

/// Channel lists built to hurt: invalid UTF-8, a name one byte too long, more channels than
/// allowed, thousands of channels (longer than the URI limit). Each gets a 4xx with a JSON error.
fn hostile_channel_lists_are_refused(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let longest = "n".repeat(200);
    let too_long = "n".repeat(201);
    let many: Vec<String> = (0..150).map(|i| format!("c{i}")).collect();
    let thousands: Vec<String> = (0..5000).map(|i| format!("channel{i}")).collect();
    let rows: Vec<(String, &[u16])> = vec![
        ("channels=%FF%FE".to_string(), &[400]),
        ("channels=caf%C3%A9".to_string(), &[400]),
        (format!("channels={too_long}"), &[400]),
        (format!("channels={}", many.join(",")), &[400]),
        (format!("channels={}", thousands.join(",")), &[414, 431]),
        ("channels=a,,b".to_string(), &[400]),
        ("channels=%00".to_string(), &[400]),
    ];
    for (query, statuses) in &rows {
        let raw = format!("GET /events/stream?{query} HTTP/1.1\r\nHost: t\r\n\r\n");
        let resp = request(addr, raw.as_bytes());
        assert!(
            statuses.contains(&resp.status),
            "{}…: {} {}",
            &query[..query.len().min(40)],
            resp.status,
            resp.text()
        );
        assert!(
            !resp.error_message().is_empty(),
            "no JSON error for {}",
            &query[..query.len().min(40)]
        );
    }
    // The longest allowed name works.
    let mut sub = subscribe_ready(addr, &format!("/events/stream?channels={longest}"));
    let id = publish(addr, &json!({"channel": longest, "data": 1}).to_string());
    assert_eq!(sub.expect_event("longest name").id(), Some(id.as_str()));
}
both_drivers!(hostile_channel_lists_are_refused);

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A publish flood (40 MB of events as fast as the server takes them, with a subscriber that
/// never reads) meets back-pressure and bounded history, not memory growth. Measured: about
/// 1.6 MiB of growth with this history limit, 43 MiB with an unbounded one.
fn publish_flood_keeps_memory_bounded(driver: Driver) {
    let server = Server::start_with_driver(
        driver,
        &[
            "--history-events",
            "200",
            "--history-bytes",
            "1048576",
            "--sndbuf-bytes",
            "4096",
            "--max-lag",
            "100",
        ],
    );
    let addr = server.addr();
    let _stuck = connect_with(addr, |s| {
        let _ = s.set_recv_buffer_size(4096);
    });
    let mut stuck = SseStream::open(_stuck, "/events/stream?channels=flood", &[]);
    stuck.handshake();
    let before = rss_bytes(server.pid());
    let payload = "x".repeat(4000);
    let body = json!({"channel": "flood", "data": payload}).to_string();
    let one = publish_request(&body, true);
    let mut conn = Conn::open(addr);
    let mut accepted = 0;
    for _ in 0..100 {
        // 100 pipelined publishes per write.
        let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
        conn.send(&burst);
        for _ in 0..100 {
            let r = conn.read_response();
            assert!(
                r.status == 200 || r.status == 503,
                "{} {}",
                r.status,
                r.text()
            );
            accepted += usize::from(r.status == 200);
        }
    }
    assert!(accepted > 0);
    let after = rss_bytes(server.pid());
    let growth = after.saturating_sub(before);
    eprintln!(
        "flood: {accepted} accepted, RSS {before} -> {after} (+{} KiB)",
        growth >> 10
    );
    assert!(
        growth < 16 << 20,
        "RSS grew by {} MiB during a 40 MB flood",
        growth >> 20
    );
    assert_eq!(get(addr, "/healthz").status, 200);
}
both_drivers!(publish_flood_keeps_memory_bounded);
