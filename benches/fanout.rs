//! Fanout without I/O: one event appended to a channel, then every subscriber's cursor collects
//! it into a writev list, as a worker does between two writes. Prints ns per subscriber.

use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

use pushcore::channel::{Channels, Entry, Retention};
use pushcore::sse::encode::encode_published;
use pushcore::sse::id::EventId;
use pushcore::sys::FrameVec;

fn run(subscribers: usize, events: u64) -> f64 {
    let retention = Retention {
        max_events: 1000,
        max_bytes: 4 << 20,
        max_age_ms: 0,
    };
    let mut channels = Channels::new(retention, EventId::ZERO);
    let ch = channels.find_or_create("bench");
    let list = [ch];
    let mut cursors = vec![EventId::ZERO; subscribers];
    let mut batch = FrameVec::new();
    let mut delivered = 0u64;
    let start = Instant::now();
    for n in 1..=events {
        let id = EventId::new(1_700_000_000_000 + n, 0);
        let frame =
            match encode_published(id, "update", r#"{"seq":1,"payload":"0123456789abcdef"}"#) {
                Ok(f) => f,
                Err(e) => panic!("{e}"),
            };
        channels.append(
            ch,
            Entry {
                id,
                frame: Rc::new(frame.into_bytes()),
                gzip: None,
                at_ms: 0,
            },
        );
        for cursor in cursors.iter_mut() {
            batch.clear();
            let mut last = *cursor;
            let got = channels.collect_after(&list, *cursor, 256, 256 * 1024, |e| {
                batch.push_shared(Rc::clone(&e.frame));
                last = e.id;
            });
            *cursor = last;
            delivered += got.frames as u64;
            black_box(&batch);
        }
    }
    assert_eq!(delivered, events * subscribers as u64);
    start.elapsed().as_nanos() as f64 / delivered as f64
}

fn main() {
    for (subs, events) in [(10_000, 200), (100_000, 30)] {
        let _ = run(subs, 5);
        let best = (0..3).map(|_| run(subs, events)).fold(f64::MAX, f64::min);
        println!(
            "fanout to {subs:>6} in-memory subscribers: {best:6.1} ns per subscriber per event"
        );
    }
}
