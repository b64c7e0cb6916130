//! Mesh hand-off: the sequencer thread pushes shared events into an rtrb ring, a worker thread
//! pops them (with the doorbell armed only when the worker would sleep). Prints messages/s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pushcore::bus::{Doorbell, Sequenced};
use pushcore::sse::id::EventId;

const MESSAGES: u64 = 5_000_000;

fn main() {
    for _ in 0..3 {
        let (mut tx, mut rx) = rtrb::RingBuffer::<Arc<Sequenced>>::new(16 * 1024);
        let (bell, _bell_rx) = match Doorbell::new() {
            Ok(b) => b,
            Err(e) => panic!("doorbell: {e}"),
        };
        let bell = Arc::new(bell);
        let done = Arc::new(AtomicBool::new(false));
        let frame = Bytes::from_static(b"id: 1-0\nevent: update\ndata: {}\n\n");
        let consumer = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut got = 0u64;
                let mut bytes = 0usize;
                while got < MESSAGES {
                    match rx.pop() {
                        Ok(seq) => {
                            got += 1;
                            bytes += seq.frame.len();
                        }
                        Err(_) => std::hint::spin_loop(),
                    }
                }
                done.store(true, Ordering::Release);
                bytes
            })
        };
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < MESSAGES {
            let seq = Arc::new(Sequenced {
                id: EventId::new(1, sent),
                channels: Box::new([]),
                frame: frame.clone(),
                gzip: None,
                at_ms: 0,
            });
            if tx.push(seq).is_ok() {
                sent += 1;
                bell.ring();
            } else {
                std::hint::spin_loop();
            }
        }
        let bytes = consumer.join().unwrap_or(0);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "mesh hand-off: {:.2} M messages/s ({:.0} ns each, {} MB of frames seen)",
            MESSAGES as f64 / secs / 1e6,
            secs * 1e9 / MESSAGES as f64,
            bytes / 1_000_000
        );
    }
}
