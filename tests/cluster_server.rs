//! Cluster mode end to end: two or three `pushcore serve --redis-url …` instances over one real
//! `redis-server` (started per test on a free loopback port, stopped by PID): identical ids and
//! bytes everywhere, exact resume on any instance, rolling restarts and a late joiner without a
//! reset or a loss, Redis going away (publishes 503, streams stay, tailing resumes), Redis coming
//! back empty (reset, never a repeated id), trimming (reset `evicted`), a stalled Redis (503).

#[macro_use]
mod common;
mod redis_server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use redis_server::{Persistence, RedisServer};
use serde_json::json;

const STREAM: &str = "pushcore:test";

fn instance(driver: Driver, redis: &RedisServer, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec![
        "--redis-url",
        url.as_str(),
        "--redis-stream",
        STREAM,
        "--redis-timeout",
        "500",
    ];
    if !extra.contains(&"--workers") {
        args.extend_from_slice(&["--workers", "2"]);
    }
    args.extend_from_slice(extra);
    let server = Server::start_with_driver(driver, &args);
    assert!(
        wait_until(Duration::from_secs(10), || get(server.addr(), "/healthz")
            .status
            == 200),
        "instance not ready: {}",
        server.stderr()
    );
    server
}

/// Publish `data` on `channel` through `addr`, retrying (bounded) while the answer is a 503.
fn publish_retrying(addr: SocketAddr, channel: &str, data: serde_json::Value) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = request(
            addr,
            &publish_request(&event_json(channel, None, &data), false),
        );
        if resp.status == 200 {
            return resp.json()["eventId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        assert!(
            resp.status == 503 && Instant::now() < deadline,
            "publish refused: {} {}",
            resp.status,
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ids(blocks: &[Block]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| b.id().map(str::to_string))
        .collect()
}

/// Publishes through either instance reach subscribers of both with the same ids and the same
/// bytes, in the same order.
fn both_instances_deliver_identical_streams(driver: Driver) {
    let redis = RedisServer::start(Persistence::None);
    let a = instance(driver, &redis, &[]);
    let b = instance(driver, &redis, &[]);
    let mut on_a = subscribe_ready(a.addr(), "/events/stream?channels=x,y");
    let mut on_b = subscribe_ready(b.addr(), "/events/stream?channels=x,y");
    let mut acked = Vec::new();
    for n in 0..20 {
        let via = if n % 2 == 0 { a.addr() } else { b.addr() };
        let channel = if n % 3 == 0 { "y" } else { "x" };
        acked.push(publish(via, &event_json(channel, None, &json!({ "n": n }))));
        // Paced to the readers: one event in flight at a time.
        let got_a = on_a.expect_event("event on A");
        let got_b = on_b.expect_event("event on B");
        assert_eq!(
            got_a.raw, got_b.raw,
            "event {n}: different bytes on A and B"
        );
        assert_eq!(got_a.id(), Some(acked[n].as_str()), "event {n}");
        assert_eq!(got_a.json()["n"], json!(n));
    }
    assert_increasing(&acked);
}
both_drivers!(both_instances_deliver_identical_streams);

/// A client cut from A resumes on B with one id across several channels — by header and by
/// query — and gets exactly what it missed; an id B has not read yet is held, not refused.
fn resume_on_another_instance(driver: Driver) {
    let redis = RedisServer::start(Persistence::None);
    let a = instance(driver, &redis, &[]);
    let b = instance(driver, &redis, &[]);
    let mut sub = subscribe_ready(a.addr(), "/events/stream?channels=p,q");
    let mut sent = Vec::new();
    for n in 0..6 {
        let channel = if n % 2 == 0 { "p" } else { "q" };
        sent.push(publish(a.addr(), &event_json(channel, None, &json!(n))));
    }
    let seen = ids(&sub.events(3));
    assert_eq!(seen, sent[..3]);
    drop(sub);
    for n in 6..9 {
        sent.push(publish(b.addr(), &event_json("q", None, &json!(n))));
    }
    // By header, on B.
    let mut by_header = SseStream::open(
        connect(b.addr()),
        "/events/stream?channels=p,q",
        &[("Last-Event-ID", &seen[2])],
    );
    by_header.handshake();
    assert_eq!(
        ids(&by_header.events(6)),
        sent[3..],
        "resume by header on B"
    );
    // By query, on B, from the same point.
    let target = format!("/events/stream?channels=q,p&lastEventId={}", seen[2]);
    let mut by_query = subscribe_ready(b.addr(), &target);
    assert_eq!(ids(&by_query.events(6)), sent[3..], "resume by query on B");
    // Ids that B may not have read yet (published on A a moment ago) are held until it has.
    for n in 0..20 {
        let id = publish(a.addr(), &event_json("p", None, &json!({ "fresh": n })));
        let target = format!("/events/stream?channels=p&lastEventId={id}");
        let mut s = subscribe(b.addr(), &target);
        s.handshake();
        let next = publish(a.addr(), &event_json("p", None, &json!({ "after": n })));
        let ev = s.expect_event("the event after the fresh id");
        assert_ne!(
            ev.event(),
            Some("reset"),
            "got {:?} instead of the next event",
            ev.raw
        );
        assert_eq!(ev.id(), Some(next.as_str()));
    }
    assert_eq!(b.metrics().get("pushcore_resets_total"), 0);
}
both_drivers!(resume_on_another_instance);

/// What a reconnecting client saw.
#[derive(Default)]
struct Seen {
    ids: Vec<String>,
    resets: Vec<String>,
    connects: usize,
}

/// A client that follows `channel` on whichever instance is listed in `live`, and reconnects
/// with its last id whenever a stream ends, until `stop`.
fn follow(
    live: Arc<Mutex<Vec<SocketAddr>>>,
    channel: &'static str,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut turn = 0usize;
        while !stop.load(Ordering::Acquire) {
            let addrs = live.lock().map(|l| l.clone()).unwrap_or_default();
            let Some(addr) = addrs.get(turn % addrs.len().max(1)).copied() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            turn += 1;
            let last = seen.lock().ok().and_then(|s| s.ids.last().cloned());
            let Ok(tcp) = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let headers: Vec<(&str, &str)> = match &last {
                Some(id) => vec![("Last-Event-ID", id.as_str())],
                None => vec![],
            };
            let target = format!("/events/stream?channels={channel}");
            // An instance that is going away may reset the connection: try another.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SseStream::try_open(tcp, &target, &headers)
            }));
            let Ok(Ok(mut s)) = opened else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            if let Ok(mut g) = seen.lock() {
                g.connects += 1;
            }
            loop {
                match s.next_block(Duration::from_millis(300)) {
                    Ok(block) => {
                        let mut g = match seen.lock() {
                            Ok(g) => g,
                            Err(_) => return,
                        };
                        match block.event() {
                            Some("reset") => g.resets.push(block.raw.clone()),
                            _ => {
                                if let Some(id) = block.id() {
                                    g.ids.push(id.to_string());
                                }
                            }
                        }
                    }
                    Err(End::Timeout) if !stop.load(Ordering::Acquire) => continue,
                    Err(_) => break,
                }
            }
        }
    })
}

/// Restart every instance in turn (SIGTERM, drain, a new process) while events are published
/// and a client follows: the client sees every acknowledged event exactly once, in order, and
/// never a reset. A late third instance joins mid-way and serves the same client too.
fn rolling_restart_under_load(driver: Driver) {
    let redis = RedisServer::start(Persistence::Aof);
    let mut instances = vec![instance(driver, &redis, &[]), instance(driver, &redis, &[])];
    let live = Arc::new(Mutex::new(
        instances.iter().map(Server::addr).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let client = follow(
        Arc::clone(&live),
        "roll",
        Arc::clone(&stop),
        Arc::clone(&seen),
    );
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let live = Arc::clone(&live);
        let acked = Arc::clone(&acked);
        let publishing = Arc::clone(&publishing);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while publishing.load(Ordering::Acquire) {
                let addrs = live.lock().map(|l| l.clone()).unwrap_or_default();
                for addr in addrs
                    .iter()
                    .cycle()
                    .skip(n as usize % addrs.len().max(1))
                    .take(addrs.len())
                {
                    let body = event_json("roll", None, &json!({ "n": n }));
                    let Ok(mut tcp) = std::net::TcpStream::connect_timeout(addr, IO_TIMEOUT) else {
                        continue;
                    };
                    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
                    let _ = std::io::Write::write_all(&mut tcp, &publish_request(&body, false));
                    let mut conn = Conn::from_stream(tcp);
                    if let Ok(resp) = conn.try_read_response(IO_TIMEOUT) {
                        if resp.status == 200 {
                            let id = resp.json()["eventId"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string();
                            if let Ok(mut a) = acked.lock() {
                                a.push(id);
                            }
                            break;
                        }
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let wait_events = |more: usize| {
        let start = acked.lock().map(|a| a.len()).unwrap_or(0);
        assert!(
            wait_until(Duration::from_secs(10), || acked
                .lock()
                .map(|a| a.len())
                .unwrap_or(0)
                >= start + more),
            "publishing stalled"
        );
    };
    wait_events(30);
    for i in 0..2 {
        let old = instances.remove(0);
        live.lock().expect("live").retain(|a| *a != old.addr());
        let mut old = old;
        old.stop();
        assert!(
            old.wait_exit(Duration::from_secs(15)).is_some(),
            "instance {i} did not drain"
        );
        wait_events(20);
        let fresh = instance(driver, &redis, &[]);
        live.lock().expect("live").push(fresh.addr());
        instances.push(fresh);
        wait_events(20);
    }
    // A late third instance joins under load; the client will be sent there too.
    let late = instance(driver, &redis, &[]);
    live.lock().expect("live").push(late.addr());
    instances.push(late);
    wait_events(30);
    publishing.store(false, Ordering::Release);
    let _ = publisher.join();
    let acked = acked.lock().expect("acked").clone();
    let complete = wait_until(Duration::from_secs(10), || {
        seen.lock()
            .map(|s| s.ids.len() >= acked.len())
            .unwrap_or(false)
    });
    stop.store(true, Ordering::Release);
    let _ = client.join();
    let seen = seen.lock().expect("seen");
    assert!(
        seen.resets.is_empty(),
        "resets during a rolling restart: {:?}",
        seen.resets
    );
    let missing: Vec<(usize, &String)> = acked
        .iter()
        .enumerate()
        .filter(|(_, id)| !seen.ids.contains(id))
        .collect();
    assert!(
        complete,
        "received {} of {} acknowledged events; missing (position, id): {missing:?}; connects {}",
        seen.ids.len(),
        acked.len(),
        seen.connects
    );
    assert_eq!(seen.ids, acked, "lost, duplicated or reordered events");
    assert!(
        seen.connects >= 3,
        "the client was never moved ({} connects)",
        seen.connects
    );
}
both_drivers!(rolling_restart_under_load);

/// Redis stops (with its append-only file) and comes back: meanwhile publishes are refused with
/// 503 in bounded time, open streams stay open with heartbeats; afterwards every instance
/// resumes tailing with nothing acknowledged lost, no gap, no duplicate, no reset.
fn redis_outage_with_aof_loses_nothing(driver: Driver) {
    let mut redis = RedisServer::start(Persistence::Aof);
    let a = instance(driver, &redis, &["--heartbeat", "1"]);
    let b = instance(driver, &redis, &["--heartbeat", "1"]);
    let mut sub = subscribe_ready(b.addr(), "/events/stream?channels=o");
    let mut acked: Vec<String> = (0..5)
        .map(|n| publish(a.addr(), &event_json("o", None, &json!(n))))
        .collect();
    assert_eq!(ids(&sub.events(5)), acked);
    redis.stop();
    let resp = request(
        a.addr(),
        &publish_request(&event_json("o", None, &json!("down")), false),
    );
    assert_eq!(
        resp.status,
        503,
        "a publish while Redis is down: {}",
        resp.text()
    );
    assert!(resp.header("retry-after").is_some());
    // The stream stays open: a heartbeat arrives while Redis is away.
    let beat = sub
        .next_block(Duration::from_secs(5))
        .expect("a heartbeat during the outage");
    assert!(beat.is_comment(), "{:?}", beat.raw);
    redis.start_again();
    for n in 5..10 {
        acked.push(publish_retrying(a.addr(), "o", json!(n)));
    }
    let rest: Vec<Block> = (0..5)
        .map(|_| sub.expect_event("after the outage"))
        .collect();
    assert_eq!(ids(&rest), acked[5..]);
    assert_increasing(&acked);
    assert_eq!(
        a.metrics().get("pushcore_resets_total") + b.metrics().get("pushcore_resets_total"),
        0
    );
}
both_drivers!(redis_outage_with_aof_loses_nothing);

/// Redis restarts without its data: the open stream is told with `reset` (never silence), ids
/// after it are above every id handed out before (never a repeat), and a resume from before the
/// loss gets a reset too.
fn redis_restarted_empty_resets(driver: Driver) {
    let mut redis = RedisServer::start(Persistence::None);
    let a = instance(driver, &redis, &[]);
    let mut sub = subscribe_ready(a.addr(), "/events/stream?channels=e");
    let before: Vec<String> = (0..5)
        .map(|n| publish(a.addr(), &event_json("e", None, &json!(n))))
        .collect();
    assert_eq!(ids(&sub.events(5)), before);
    redis.restart(false);
    let after = publish_retrying(a.addr(), "e", json!("after"));
    assert!(
        parse_id(&after) > parse_id(&before[4]),
        "an id at or below one already handed out: {after} after {}",
        before[4]
    );
    let reset = sub.expect_event("reset after the log was lost");
    assert_eq!(reset.event(), Some("reset"), "{:?}", reset.raw);
    assert_eq!(reset.json()["reason"], json!("log-lost"));
    let next = sub.expect_event("the first event of the new log");
    assert_eq!(next.id(), Some(after.as_str()));
    let target = format!("/events/stream?channels=e&lastEventId={}", before[1]);
    let mut old = subscribe_ready(a.addr(), &target);
    assert_eq!(
        old.expect_event("reset for an id of the lost log").event(),
        Some("reset")
    );
}
both_drivers!(redis_restarted_empty_resets);

/// A resume older than an instance's own history is served from the log, exactly; once the log
/// is trimmed past it, the client gets `reset: evicted`.
fn resume_from_the_log_then_trimmed(driver: Driver) {
    let redis = RedisServer::start(Persistence::None);
    // One worker, and a reader that has seen every event: the instance's history is settled
    // (3 events) before the resume, which must come from the log for the rest.
    let a = instance(driver, &redis, &["--history-events", "3", "--workers", "1"]);
    let mut watch = subscribe_ready(a.addr(), "/events/stream?channels=t");
    let sent: Vec<String> = (0..12)
        .map(|n| {
            let id = publish(a.addr(), &event_json("t", None, &json!(n)));
            assert_eq!(watch.expect_event("live").id(), Some(id.as_str()));
            id
        })
        .collect();
    let target = format!("/events/stream?channels=t&lastEventId={}", sent[1]);
    let mut s = subscribe_ready(a.addr(), &target);
    assert_eq!(
        ids(&s.events(10)),
        sent[2..],
        "served from the log and history, in order"
    );
    assert!(a.metrics().get("pushcore_log_replays_total") >= 1);
    assert_eq!(a.metrics().get("pushcore_resets_total"), 0);
    redis.cli(&["XTRIM", STREAM, "MAXLEN", "4"]);
    let mut s = subscribe_ready(a.addr(), &target);
    let reset = s.expect_event("reset after trimming");
    assert_eq!(reset.event(), Some("reset"));
    assert_eq!(reset.json()["reason"], json!("evicted"));
}
both_drivers!(resume_from_the_log_then_trimmed);

/// A stalled Redis (DEBUG SLEEP) makes publishes fail with 503 within the operation timeout.
fn stalled_redis_gets_503(driver: Driver) {
    let redis = RedisServer::start(Persistence::None);
    let a = instance(driver, &redis, &[]);
    publish(a.addr(), &event_json("s", None, &json!("warm")));
    let mut sleeper = redis.sleep(3.0);
    std::thread::sleep(Duration::from_millis(100));
    let resp = request(
        a.addr(),
        &publish_request(&event_json("s", None, &json!("stalled")), false),
    );
    assert_eq!(resp.status, 503, "{}", resp.text());
    let _ = sleeper.wait();
    publish_retrying(a.addr(), "s", json!("after"));
}
both_drivers!(stalled_redis_gets_503);
