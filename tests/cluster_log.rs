//! The Redis side of cluster mode against a real `redis-server` (one per test): appends,
//! tailing, backfill, outages, a Redis that comes back empty, trimming, stalls.

mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver};
use pushcore::bus::NewEvent;
use pushcore::cluster::{
    resume_from, AppendError, AppenderHandle, Cluster, ClusterConfig, ClusterSettings,
    ReaderHandle, RedisLog, Resume, TailEvent, TailerHandle,
};
use pushcore::sse::id::EventId;
use redis_server::{Persistence, RedisServer};

/// Longest a test waits for something that should happen promptly.
const PATIENCE: Duration = Duration::from_secs(20);

fn settings(redis: &RedisServer, timeout_ms: u64) -> ClusterSettings {
    let config = ClusterConfig {
        redis_url: Some(redis.url()),
        redis_startup_wait_secs: 5,
        redis_timeout_ms: timeout_ms,
        ..ClusterConfig::default()
    };
    config
        .validate()
        .expect("valid settings")
        .expect("cluster mode on")
}

fn ev(channel: &str, n: usize) -> NewEvent {
    NewEvent {
        channels: vec![channel.to_owned()],
        event_type: "update".into(),
        data: format!("{{\"n\":{n}}}"),
    }
}

/// A started cluster whose tailer reports into a channel.
struct Node {
    appender: AppenderHandle,
    reader: ReaderHandle,
    tailer: Option<TailerHandle>,
    events: Receiver<TailEvent>,
}

impl Node {
    fn start(settings: &ClusterSettings, floor: EventId) -> Node {
        let (tx, rx) = channel::unbounded();
        let sink = Box::new(move |e: TailEvent| {
            let _ = tx.send(e);
        });
        let bridges =
            Cluster::start(settings, floor, EventId::ZERO, sink, None).expect("cluster starts");
        Node {
            appender: bridges.appender,
            reader: bridges.reader,
            tailer: Some(bridges.tailer),
            events: rx,
        }
    }

    /// Next report from the tailer (panics after [`PATIENCE`]).
    fn next(&self) -> TailEvent {
        self.events
            .recv_timeout(PATIENCE)
            .expect("the tailer reports within the patience")
    }

    /// Reports until one matches; returns the event ids delivered meanwhile and the match.
    fn until(&self, mut want: impl FnMut(&TailEvent) -> bool) -> (Vec<EventId>, TailEvent) {
        let mut ids = Vec::new();
        loop {
            let e = self.next();
            if want(&e) {
                return (ids, e);
            }
            if let TailEvent::Events(batch) = &e {
                ids.extend(batch.iter().map(|x| x.id));
            }
        }
    }

    /// Collects delivered ids until `n` have arrived.
    fn ids(&self, n: usize) -> Vec<EventId> {
        let mut ids = Vec::new();
        while ids.len() < n {
            if let TailEvent::Events(batch) = self.next() {
                ids.extend(batch.iter().map(|x| x.id));
            }
        }
        ids
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(t) = self.tailer.take() {
            t.stop();
        }
    }
}

fn assert_strictly_increasing(ids: &[EventId]) {
    for pair in ids.windows(2) {
        assert!(
            pair[0] < pair[1],
            "ids out of order: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn append_then_tail_gives_identical_ordered_ids() {
    let redis = RedisServer::start(Persistence::None);
    let node = Node::start(&settings(&redis, 2000), EventId::ZERO);
    let (_, ready) = node.until(|e| matches!(e, TailEvent::Ready { .. }));
    assert!(matches!(ready, TailEvent::Ready { .. }));

    let mut acked = Vec::new();
    for n in 0..50 {
        let ids = node.appender.append(vec![ev("a", n)]).expect("append");
        assert_eq!(ids.len(), 1);
        acked.extend(ids);
    }
    assert_strictly_increasing(&acked);
    let mut got = Vec::new();
    let mut bodies = Vec::new();
    while got.len() < acked.len() {
        if let TailEvent::Events(batch) = node.next() {
            for e in batch {
                got.push(e.id);
                bodies.push(e.event);
            }
        }
    }
    assert_eq!(got, acked);
    assert_eq!(bodies.first(), Some(&ev("a", 0)));
    assert_eq!(bodies.last(), Some(&ev("a", 49)));
    // The entries are what Redis holds, one per event, fields by name.
    let first = redis.cli(&[
        "XRANGE",
        "pushcore:events",
        &acked[0].to_string(),
        &acked[0].to_string(),
    ]);
    assert!(
        first.contains("channels") && first.contains("{\"n\":0}"),
        "{first}"
    );
}

#[test]
fn a_batch_is_appended_together_in_order() {
    let redis = RedisServer::start(Persistence::None);
    let node = Node::start(&settings(&redis, 2000), EventId::ZERO);
    let batch: Vec<NewEvent> = (0..100)
        .map(|n| NewEvent {
            channels: vec!["a".into(), "b".into()],
            event_type: "t".into(),
            data: n.to_string(),
        })
        .collect();
    let ids = node.appender.append(batch.clone()).expect("append a batch");
    assert_eq!(ids.len(), 100);
    assert_strictly_increasing(&ids);
    let mut got = Vec::new();
    while got.len() < 100 {
        if let TailEvent::Events(b) = node.next() {
            got.extend(b);
        }
    }
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(got.into_iter().map(|e| e.event).collect::<Vec<_>>(), batch);
    assert_eq!(redis.cli(&["XLEN", "pushcore:events"]), "101"); // + the creation marker
}

#[test]
fn backfill_then_live_has_no_gap_and_no_duplicate_under_load() {
    let redis = RedisServer::start(Persistence::None);
    let settings = settings(&redis, 2000);
    let writer = Node::start(&settings, EventId::ZERO);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let total = 3000;
    let publisher = {
        let appender = writer.appender.clone();
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for n in 0..total {
                let ids = appender
                    .append(vec![ev("load", n)])
                    .expect("append under load");
                acked.lock().expect("lock").extend(ids);
                if n % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    // A late instance joins while the publisher is busy.
    let deadline = Instant::now() + PATIENCE;
    while acked.lock().expect("lock").len() < total / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let late = Node::start(&settings, EventId::ZERO);
    let (backfilled, _) = late.until(|e| matches!(e, TailEvent::Ready { .. }));
    assert!(
        !backfilled.is_empty(),
        "the late instance backfilled nothing"
    );
    publisher.join().expect("publisher");
    let acked = acked.lock().expect("lock").clone();
    let mut got = backfilled;
    while got.len() < acked.len() {
        got.extend(late.ids(1));
    }
    assert_eq!(got.len(), acked.len());
    assert_eq!(
        got, acked,
        "backfill + live differs from what was acknowledged"
    );
}

#[test]
fn redis_restarted_with_aof_loses_nothing_and_tailing_resumes() {
    let mut redis = RedisServer::start(Persistence::Aof);
    let node = Node::start(&settings(&redis, 500), EventId::ZERO);
    node.until(|e| matches!(e, TailEvent::Ready { .. }));
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.extend(node.appender.append(vec![ev("a", n)]).expect("append"));
    }
    let mut got = node.ids(20);

    redis.stop();
    let (more, _) = node.until(|e| matches!(e, TailEvent::Down { .. }));
    got.extend(more);
    // While Redis is away, publishes fail (never a success for an unstored event).
    let refused = node.appender.append(vec![ev("a", 999)]);
    assert!(
        refused.is_err(),
        "append succeeded with Redis down: {refused:?}"
    );

    redis.start_again();
    let (more, up) = node.until(|e| matches!(e, TailEvent::Up { .. } | TailEvent::Lost { .. }));
    got.extend(more);
    assert!(
        matches!(up, TailEvent::Up { .. }),
        "after an AOF restart: {up:?}"
    );
    // The appender reconnects by itself.
    let deadline = Instant::now() + PATIENCE;
    let mut n = 20;
    while acked.len() < 40 {
        match node.appender.append(vec![ev("a", n)]) {
            Ok(ids) => {
                acked.extend(ids);
                n += 1;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "appender did not come back: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    while got.len() < acked.len() {
        got.extend(node.ids(1));
    }
    assert_eq!(got, acked);
    let len: usize = redis
        .cli(&["XLEN", "pushcore:events"])
        .parse()
        .expect("XLEN");
    assert_eq!(
        len, 41,
        "every acknowledged event (and the marker) is in the log"
    );
}

#[test]
fn redis_restarted_empty_is_reported_lost_and_ids_never_repeat() {
    let mut redis = RedisServer::start(Persistence::None);
    let node = Node::start(&settings(&redis, 500), EventId::ZERO);
    node.until(|e| matches!(e, TailEvent::Ready { .. }));
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.extend(node.appender.append(vec![ev("a", n)]).expect("append"));
    }
    let mut got = node.ids(20);
    let before_loss = *acked.last().expect("acked");

    redis.restart(false);
    let (more, lost) = node.until(|e| matches!(e, TailEvent::Lost { .. }));
    got.extend(more);
    let TailEvent::Lost { floor, .. } = lost else {
        unreachable!()
    };
    assert!(
        floor >= before_loss,
        "floor {floor} below the last id {before_loss}"
    );

    let deadline = Instant::now() + PATIENCE;
    let mut after = Vec::new();
    let mut n = 100;
    while after.len() < 10 {
        match node.appender.append(vec![ev("a", n)]) {
            Ok(ids) => {
                after.extend(ids);
                n += 1;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "appender did not come back: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert!(
        after.iter().all(|id| *id > before_loss),
        "an id at or below one delivered: {after:?}"
    );
    acked.extend(after.iter().copied());
    while got.len() < acked.len() {
        got.extend(node.ids(1));
    }
    assert_eq!(got, acked);
    assert_strictly_increasing(&got);
    // The re-created log says ids up to the floor cannot be served exactly.
    let mut log = RedisLog::new(&settings(&redis, 500)).expect("client");
    let state = log.state().expect("state").expect("stream exists");
    assert_eq!(resume_from(Some(&state), acked[5]), Resume::Inexact);
    assert_eq!(resume_from(Some(&state), after[5]), Resume::Exact);
}

#[test]
fn a_log_trimmed_below_a_position_is_not_exact() {
    let redis = RedisServer::start(Persistence::None);
    let settings = settings(&redis, 2000);
    let node = Node::start(&settings, EventId::ZERO);
    let ids = node
        .appender
        .append((0..100).map(|n| ev("a", n)).collect())
        .expect("append");
    let mut log = RedisLog::new(&settings).expect("client");
    let state = log.state().expect("state").expect("stream");
    assert_eq!(resume_from(Some(&state), ids[5]), Resume::Exact);
    assert_eq!(
        redis.cli(&["XTRIM", "pushcore:events", "MAXLEN", "=", "10"]),
        "91"
    );
    let state = log.state().expect("state").expect("stream");
    assert_eq!(
        resume_from(Some(&state), ids[5]),
        Resume::Inexact,
        "trimmed: reset evicted"
    );
    // Redis 7.0 does not record what a trim removed, only the new first entry: the id just
    // before it cannot be told from one further back, so it is inexact too.
    assert_eq!(resume_from(Some(&state), ids[89]), Resume::Inexact);
    assert_eq!(resume_from(Some(&state), ids[90]), Resume::Exact);
    assert_eq!(resume_from(Some(&state), ids[99]), Resume::Exact);
    let ahead = ids[99].successor();
    assert_eq!(resume_from(Some(&state), ahead), Resume::Ahead);
    // A resume older than local history but in the log: served from it, in order.
    let page = log.range(ids[89], EventId::MAX, 100).expect("range");
    let got: Vec<EventId> = page.iter().map(|d| d.id()).collect();
    assert_eq!(got, ids[90..].to_vec());
    let replay = node.reader.read(ids[90], ids[95], 100).expect("read");
    assert_eq!(replay.resume, Resume::Exact);
    assert!(replay.complete);
    let got: Vec<EventId> = replay.events.iter().map(|e| e.id).collect();
    assert_eq!(got, ids[91..=95].to_vec());
    let cut = node.reader.read(ids[90], EventId::MAX, 3).expect("read");
    assert_eq!(cut.events.len(), 3);
    assert!(!cut.complete);
    let evicted = node.reader.read(ids[5], EventId::MAX, 100).expect("read");
    assert_eq!(evicted.resume, Resume::Inexact);
    assert!(evicted.events.is_empty());
}

#[test]
fn a_stalled_redis_fails_appends_quickly() {
    let redis = RedisServer::start(Persistence::None);
    let node = Node::start(&settings(&redis, 300), EventId::ZERO);
    node.appender
        .append(vec![ev("a", 0)])
        .expect("append before the stall");
    let mut sleeper = redis.sleep(4.0);
    let started = Instant::now();
    let got = node.appender.append(vec![ev("a", 1)]);
    let took = started.elapsed();
    assert!(
        matches!(got, Err(AppendError::Timeout | AppendError::Down(_))),
        "{got:?}"
    );
    // Bounded by the operation timeout, not by the stall (4 s): a hung publisher would wait it out.
    assert!(
        took < Duration::from_secs(3),
        "append took {took:?} during a stall"
    );
    let second = node.appender.append(vec![ev("a", 2)]);
    assert!(second.is_err(), "success during a stall: {second:?}");
    let _ = sleeper.wait();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match node.appender.append(vec![ev("a", 3)]) {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no recovery after the stall: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn start_fails_with_one_line_when_redis_is_unreachable() {
    let redis = RedisServer::start(Persistence::None);
    let mut settings = settings(&redis, 200);
    drop(redis);
    settings.startup_wait = Duration::from_millis(500);
    let sink = Box::new(|_e: TailEvent| {});
    let err = Cluster::start(&settings, EventId::ZERO, EventId::ZERO, sink, None)
        .expect_err("no Redis: start fails");
    let text = err.to_string();
    assert!(text.starts_with("--redis-url redis://127.0.0.1:"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn start_refuses_a_key_that_is_not_a_stream() {
    let redis = RedisServer::start(Persistence::None);
    assert_eq!(redis.cli(&["SET", "pushcore:events", "x"]), "OK");
    let sink = Box::new(|_e: TailEvent| {});
    let err = Cluster::start(
        &settings(&redis, 500),
        EventId::ZERO,
        EventId::ZERO,
        sink,
        None,
    )
    .expect_err("a string key: start fails");
    assert!(err.to_string().contains("not a stream"), "{err}");
}

#[test]
fn a_log_below_the_floor_is_raised_above_it() {
    let redis = RedisServer::start(Persistence::None);
    let floor = EventId::new(4_000_000_000_000, 7); // far in the future
    let node = Node::start(&settings(&redis, 2000), floor);
    let ids = node.appender.append(vec![ev("a", 0)]).expect("append");
    assert!(ids[0] > floor, "{} not above the floor {floor}", ids[0]);
}

#[test]
fn token_batches_are_answered_through_the_replier_and_bad_ones_alone() {
    let redis = RedisServer::start(Persistence::None);
    let (tx, rx) = channel::unbounded();
    let replier = Box::new(move |token: u64, r: pushcore::cluster::AppendResult| {
        let _ = tx.send((token, r));
    });
    let sink = Box::new(|_e: TailEvent| {});
    let bridges = Cluster::start(
        &settings(&redis, 2000),
        EventId::ZERO,
        EventId::ZERO,
        sink,
        Some(replier),
    )
    .expect("cluster starts");
    let bad = NewEvent {
        channels: vec!["no spaces".into()],
        event_type: "t".into(),
        data: "1".into(),
    };
    for token in 0..20u64 {
        let events = if token == 7 {
            vec![bad.clone()]
        } else {
            vec![ev("a", 0), ev("b", 1)]
        };
        bridges
            .appender
            .submit_token(token, events)
            .expect("queued");
    }
    let mut answers: Vec<(u64, pushcore::cluster::AppendResult)> = (0..20)
        .map(|_| rx.recv_timeout(PATIENCE).expect("an answer per token"))
        .collect();
    answers.sort_by_key(|(t, _)| *t);
    let mut all = Vec::new();
    for (token, result) in answers {
        if token == 7 {
            assert!(matches!(result, Err(AppendError::Failed(_))), "{result:?}");
        } else {
            let ids = result.expect("a good batch is stored");
            assert_eq!(ids.len(), 2);
            all.extend(ids);
        }
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 38, "every good event got its own id");
    bridges.tailer.stop();
}

#[test]
fn a_log_lost_while_publishing_goes_on_is_reported_lost_and_ids_never_repeat() {
    let mut redis = RedisServer::start(Persistence::None);
    let node = Node::start(&settings(&redis, 500), EventId::ZERO);
    node.until(|e| matches!(e, TailEvent::Ready { .. }));
    let mut acked = Vec::new();
    for n in 0..10 {
        acked.extend(node.appender.append(vec![ev("a", n)]).expect("append"));
    }
    let before_loss = *acked.last().expect("acked");
    redis.restart(false);
    // Publish at once: the appender finds no stream and re-creates it (before the tailer
    // looks, usually); either way the tailer must report the loss.
    let deadline = Instant::now() + PATIENCE;
    let mut after = Vec::new();
    while after.len() < 10 {
        match node.appender.append(vec![ev("a", 100 + after.len())]) {
            Ok(ids) => after.extend(ids),
            Err(e) => {
                assert!(Instant::now() < deadline, "appender did not come back: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert!(
        after.iter().all(|id| *id > before_loss),
        "{after:?} vs {before_loss}"
    );
    let (mut got, lost) = node.until(|e| matches!(e, TailEvent::Lost { .. }));
    let TailEvent::Lost { floor, .. } = lost else {
        unreachable!()
    };
    assert!(floor >= before_loss && floor < after[0], "floor {floor}");
    let mut reports = 1;
    while got.len() < acked.len() + after.len() {
        match node.next() {
            TailEvent::Events(batch) => got.extend(batch.iter().map(|x| x.id)),
            TailEvent::Lost { .. } => reports += 1,
            _ => {}
        }
    }
    acked.extend(after);
    assert_eq!(got, acked);
    assert_eq!(reports, 1, "one loss reported once");
}
