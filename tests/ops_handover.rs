//! A hand-over of one address under load, against the real binary over real sockets.
//!
//! - Without Redis: instance A serves subscribers while a paced publisher publishes; B starts on
//!   the same address with `--handover`; A gets SIGTERM: every one of A's subscribers is told
//!   `event: shutdown` with a `retry:` before its stream ends cleanly, a resume on B is told
//!   `reset` (B has no history of A: never a silent gap), and new connections reach B.
//! - With Redis (cluster mode joins the port without `--handover`): subscribers that reconnect
//!   with `Last-Event-ID` after `shutdown` end up with every acknowledged event exactly once, in
//!   order, and no `reset`.

#[macro_use]
mod common;
mod redis_server;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use redis_server::{Persistence, RedisServer};
use serde_json::json;

/// An address nobody listens on right now (bound, then released): both instances use it.
fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    probe.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

/// Listening sockets on `addr`, by `/proc/net/tcp`.
fn listeners_on(addr: SocketAddr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    pushcore::ops::owner::listening_inodes(&table, addr).len()
}

/// After the old process exited, wait until only the new one's listeners are left on `addr`
/// (on io_uring an exited process's listeners linger in the SO_REUSEPORT group for some
/// milliseconds while its rings are torn down; a connection routed there is reset).
fn wait_only(addr: SocketAddr, new: &Server) {
    let only_new = wait_until(IO_TIMEOUT, || listeners_on(addr) == new.workers());
    assert!(
        only_new,
        "{} listeners left on {addr}, {} expected",
        listeners_on(addr),
        new.workers()
    );
}

/// Wait (bounded) until `count()` reaches `n`; false if it did not.
fn wait_count(n: usize, timeout: Duration, count: impl Fn() -> usize) -> bool {
    wait_until(timeout, || count() >= n)
}

const SUBSCRIBERS: usize = 20;

/// One subscriber of A, read on its own thread until its stream ends: the blocks it got.
struct Reader {
    received: Arc<AtomicUsize>,
    handle: JoinHandle<(Vec<Block>, End)>,
}

fn read_until_end(mut s: SseStream) -> Reader {
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut blocks = Vec::new();
        loop {
            match s.next_block(deadline.saturating_duration_since(Instant::now())) {
                Ok(b) if b.is_comment() => {}
                Ok(b) => {
                    if b.id().is_some() {
                        count.fetch_add(1, Ordering::AcqRel);
                    }
                    blocks.push(b);
                }
                Err(end) => return (blocks, end),
            }
        }
    });
    Reader { received, handle }
}

/// Without Redis: every subscriber of the old instance is told `shutdown` (with a `retry:`)
/// before its stream ends, and new connections reach the new instance.
fn handover_tells_every_subscriber(driver: Driver) {
    let addr = free_addr();
    let listen = addr.to_string();
    let mut old = Server::start_with_driver(
        driver,
        &[
            "--listen",
            &listen,
            "--retry",
            "1000",
            "--drain-timeout",
            "5",
        ],
    );
    assert_eq!(old.addr(), addr);
    let readers: Vec<Reader> = (0..SUBSCRIBERS)
        .map(|_| read_until_end(subscribe_ready(addr, "/events/stream?channels=ho")))
        .collect();
    let counts: Vec<Arc<AtomicUsize>> = readers.iter().map(|r| Arc::clone(&r.received)).collect();

    // The publisher's keep-alive connection is opened while only A listens: it stays on A.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let publisher = {
        let acked = Arc::clone(&acked);
        let mut conn = Conn::open(addr);
        std::thread::spawn(move || {
            for n in 0u64..10_000 {
                let body = event_json("ho", None, &json!({ "n": n }));
                if conn.try_send(&publish_request(&body, true)).is_err() {
                    return;
                }
                let id = match conn.try_read_response(IO_TIMEOUT) {
                    Ok(resp) if resp.status == 200 => resp.json()["eventId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    _ => return,
                };
                let published = {
                    let Ok(mut a) = acked.lock() else { return };
                    a.push(id);
                    a.len()
                };
                // Paced to the readers: the next event once every subscriber has this one
                // (or its stream has ended).
                wait_count(published, IO_TIMEOUT, || {
                    counts
                        .iter()
                        .map(|c| c.load(Ordering::Acquire))
                        .min()
                        .unwrap_or(0)
                });
            }
        })
    };
    let acked_len = || acked.lock().map(|a| a.len()).unwrap_or(0);
    assert!(
        wait_count(10, Duration::from_secs(10), acked_len),
        "publishing did not start"
    );

    // The new process binds the port at once, and serves once the old one has exited.
    let new = Server::start_bound(driver, &["--listen", &listen, "--handover"]);
    assert_eq!(new.addr(), addr);
    let before = acked_len();
    assert!(
        wait_count(before + 10, Duration::from_secs(10), acked_len),
        "publishing stalled after the new instance joined"
    );

    let acked_before_stop = acked_len();
    old.stop();
    let status = old.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "old instance: {status:?}; {}",
        old.stderr()
    );
    let _ = publisher.join();
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(acked.len() >= acked_before_stop);

    for (i, reader) in readers.into_iter().enumerate() {
        let (blocks, end) = reader
            .handle
            .join()
            .unwrap_or_else(|_| panic!("subscriber {i}: reader panicked"));
        assert_eq!(end, End::Eof, "subscriber {i}: stream not closed cleanly");
        let last = blocks
            .last()
            .unwrap_or_else(|| panic!("subscriber {i}: nothing received"));
        assert_eq!(
            last.event(),
            Some("shutdown"),
            "subscriber {i}: the stream ended without `shutdown`: last {:?}",
            last.raw
        );
        let retry = last
            .retry()
            .unwrap_or_else(|| panic!("subscriber {i}: shutdown without retry: {:?}", last.raw));
        assert!(retry >= 1000, "subscriber {i}: retry {retry}");
        // Everything A acknowledged before the stop reached every one of its subscribers, in
        // order; nothing else came.
        let ids: Vec<String> = blocks
            .iter()
            .filter_map(|b| b.id().map(str::to_string))
            .collect();
        assert!(
            ids.len() >= acked_before_stop,
            "subscriber {i}: {} of the {acked_before_stop} events acknowledged before the stop",
            ids.len()
        );
        assert_eq!(
            ids[..],
            acked[..ids.len()],
            "subscriber {i}: lost, duplicated or reordered"
        );
    }

    // New connections reach the new instance (the old one has exited).
    wait_only(addr, &new);
    for _ in 0..20 {
        assert_eq!(get(addr, "/healthz").status, 200);
    }
    // A subscriber resuming on it is told that its history is gone, never left with a gap.
    let last = acked
        .last()
        .unwrap_or_else(|| panic!("nothing was acknowledged"));
    let mut resumed = SseStream::open(
        connect(addr),
        "/events/stream?channels=ho",
        &[("Last-Event-ID", last.as_str())],
    );
    resumed.handshake();
    let reset = resumed.expect_event("the resume on the new instance");
    assert_eq!(reset.event(), Some("reset"), "{:?}", reset.raw);
    // `previous-run` when the id predates the new process; A kept issuing ids after B had
    // started, and an id newer than anything B issued is `unknown-id`. Both tell the client
    // to refetch.
    let reason = reset.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason == "previous-run" || reason == "unknown-id",
        "{:?}",
        reset.raw
    );
    let id = publish(addr, &event_json("ho", None, &json!("after")));
    let got = resumed.expect_event("live on the new instance");
    assert_eq!(got.id(), Some(id.as_str()));
}
both_drivers!(handover_tells_every_subscriber);

#[derive(Default)]
struct Seen {
    ids: Vec<String>,
    resets: Vec<String>,
    shutdowns: usize,
    connects: usize,
}

/// A client of `addr` that reconnects with its last id whenever its stream ends (at once: a
/// test client need not wait its `retry:`), retrying connections that are refused or reset
/// while an instance goes away, until `stop`.
fn follow(addr: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            let last = seen.lock().ok().and_then(|s| s.ids.last().cloned());
            let Ok(tcp) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let headers: Vec<(&str, &str)> = match &last {
                Some(id) => vec![("Last-Event-ID", id.as_str())],
                None => vec![],
            };
            // A connection the kernel gave to an instance that is going away may be reset or
            // refused (503): try again.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SseStream::try_open(tcp, "/events/stream?channels=cl", &headers)
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
                        let Ok(mut g) = seen.lock() else { return };
                        match block.event() {
                            Some("reset") => g.resets.push(block.raw.clone()),
                            Some("shutdown") => g.shutdowns += 1,
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

/// Whether the follower has received `id` or a later event.
fn reached(seen: &Mutex<Seen>, id: &str) -> bool {
    seen.lock()
        .ok()
        .and_then(|g| g.ids.last().map(|last| parse_id(last) >= parse_id(id)))
        .unwrap_or(false)
}

/// Start a cluster instance on `listen` with an admin port of its own (to ask it, and only
/// it, whether it is ready); returns once `/readyz` says so.
fn cluster_instance(driver: Driver, redis: &RedisServer, listen: &str) -> (Server, SocketAddr) {
    let url = redis.url();
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let server = Server::start_with_driver(
        driver,
        &[
            "--listen",
            listen,
            "--admin-listen",
            &admin_arg,
            "--redis-url",
            &url,
            "--redis-stream",
            "pushcore:handover",
            "--redis-timeout",
            "500",
            "--retry",
            "1000",
            "--drain-timeout",
            "5",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(admin, "/readyz").status
            == 200),
        "instance not ready: {}",
        server.stderr()
    );
    (server, admin)
}

const FOLLOWERS: usize = 10;

/// With Redis: the old instance's subscribers reconnect with `Last-Event-ID` after `shutdown`,
/// land on the new one, and end up with every acknowledged event exactly once, in order.
fn cluster_handover_loses_nothing(driver: Driver) {
    let redis = RedisServer::start(Persistence::None);
    let addr = free_addr();
    let listen = addr.to_string();
    let (mut old, _) = cluster_instance(driver, &redis, &listen);
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..FOLLOWERS)
        .map(|_| Arc::new(Mutex::new(Seen::default())))
        .collect();
    let followers: Vec<JoinHandle<()>> = seen
        .iter()
        .map(|s| follow(addr, Arc::clone(&stop), Arc::clone(s)))
        .collect();
    let connects = |s: &Arc<Mutex<Seen>>| s.lock().map(|g| g.connects).unwrap_or(0);
    assert!(
        wait_until(IO_TIMEOUT, || seen.iter().all(|s| connects(s) >= 1)),
        "the followers did not connect"
    );

    // A paced publisher: a new connection per event (so, once B has joined, the kernel spreads
    // them over both instances), retried while the answer is not a 200; the next event once
    // every follower has this one (bounded: a follower may be reconnecting).
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let acked = Arc::clone(&acked);
        let publishing = Arc::clone(&publishing);
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while publishing.load(Ordering::Acquire) {
                let body = event_json("cl", None, &json!({ "n": n }));
                n += 1;
                let Ok(mut tcp) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
                if std::io::Write::write_all(&mut tcp, &publish_request(&body, false)).is_err() {
                    continue;
                }
                let mut conn = Conn::from_stream(tcp);
                let id = match conn.try_read_response(IO_TIMEOUT) {
                    Ok(resp) if resp.status == 200 => resp.json()["eventId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    _ => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                if let Ok(mut a) = acked.lock() {
                    a.push(id.clone());
                }
                wait_until(IO_TIMEOUT, || seen.iter().all(|s| reached(s, &id)));
            }
        })
    };
    let acked_len = || acked.lock().map(|a| a.len()).unwrap_or(0);
    let more = |k: usize, what: &str| {
        let start = acked_len();
        assert!(
            wait_count(start + k, Duration::from_secs(15), acked_len),
            "publishing stalled {what}"
        );
    };
    more(10, "on the first instance");

    // B joins the port (cluster mode needs no --handover) and catches up from the log.
    let (new, _) = cluster_instance(driver, &redis, &listen);
    assert_eq!(new.addr(), addr);
    more(10, "with both instances on the port");

    // A goes: its subscribers are told `shutdown` and resume on B.
    old.stop();
    let status = old.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "old instance: {status:?}; {}",
        old.stderr()
    );
    wait_only(addr, &new);
    more(10, "after the old instance exited");

    publishing.store(false, Ordering::Release);
    let _ = publisher.join();
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let last = acked
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("nothing was acknowledged"));
    let complete = wait_until(Duration::from_secs(10), || {
        seen.iter().all(|s| reached(s, &last))
    });
    stop.store(true, Ordering::Release);
    for f in followers {
        let _ = f.join();
    }
    for (i, s) in seen.iter().enumerate() {
        let g = s.lock().unwrap_or_else(|e| panic!("follower {i}: {e}"));
        assert!(
            g.resets.is_empty(),
            "follower {i}: reset during the hand-over: {:?}",
            g.resets
        );
        assert!(
            g.shutdowns >= 1 && g.connects >= 2,
            "follower {i} was never moved: {} shutdowns, {} connects",
            g.shutdowns,
            g.connects
        );
        // Exactly once and in order: strictly increasing ids.
        assert_increasing(&g.ids);
        let missing: Vec<&String> = acked.iter().filter(|id| !g.ids.contains(id)).collect();
        assert!(
            complete && missing.is_empty(),
            "follower {i}: {} acknowledged events missing: {missing:?}",
            missing.len()
        );
    }
}
both_drivers!(cluster_handover_loses_nothing);

/// Without Redis, two processes must never issue ids at the same time (a subscriber of one would
/// never get the other's events, and could resume on it past them). So a `--handover` process
/// binds the port (connections wait in its backlog: none is refused) but serves only once the
/// old one has exited, with ids above every id the old one issued; a client resuming there with
/// an id of the old process is told with `reset: previous-run`, never silently skipped.
fn handover_overlap_is_never_a_silent_gap(driver: Driver) {
    let addr = free_addr();
    let listen = addr.to_string();
    let mut old = Server::start_with_driver(driver, &["--listen", &listen]);
    let mut sub = subscribe_ready(addr, "/events/stream?channels=gap");
    let mut on_old = Conn::open(addr);
    let new = Server::start_bound(driver, &["--listen", &listen, "--handover"]);
    // During the overlap the old process alone sequences (its publisher's connection is its).
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(on_old.publish_ok(&event_json("gap", None, &json!({ "n": n }))));
        assert_eq!(
            sub.expect_event("an event of the old process").id(),
            Some(sent[n].as_str())
        );
    }
    // Connections opened now may land on either process. Those in the new process's backlog are
    // answered once the old one has gone; those still in the old one's accept queue when it
    // closes its listener are reset by the kernel unless net.ipv4.tcp_migrate_req = 1 (the
    // README's deploy guide sets it): each ends, none hangs.
    let waiting: Vec<std::thread::JoinHandle<u16>> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                c.try_read_response(Duration::from_secs(20))
                    .map_or(0, |r| r.status)
            })
        })
        .collect();
    old.stop();
    assert_eq!(sub.expect_event("shutdown").event(), Some("shutdown"));
    assert!(
        old.wait_exit(Duration::from_secs(10)).is_some(),
        "old did not exit"
    );
    wait_only(addr, &new);
    new.check_driver();
    let statuses: Vec<u16> = waiting.into_iter().map(|w| w.join().unwrap_or(0)).collect();
    assert!(
        statuses.iter().all(|s| matches!(s, 0 | 200 | 503)),
        "connections made during the hand-over: {statuses:?}"
    );
    let last = sent.last().cloned().unwrap_or_default();
    let mut resumed = SseStream::open(
        connect(addr),
        "/events/stream?channels=gap",
        &[("Last-Event-ID", last.as_str())],
    );
    resumed.handshake();
    let first = resumed.expect_event("after the resume on the new process");
    assert_eq!(
        first.event(),
        Some("reset"),
        "resumed without a reset: {:?}",
        first.raw
    );
    assert_eq!(first.json()["reason"], json!("previous-run"));
    let after = publish(addr, &event_json("gap", None, &json!("after")));
    assert!(
        parse_id(&after) > parse_id(&last),
        "{after} is not above {last}"
    );
}
both_drivers!(handover_overlap_is_never_a_silent_gap);
