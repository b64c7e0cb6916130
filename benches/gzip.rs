//! gzip compressed once: ns per segment and compression ratio for JSON events of 100 B, 1 KB
//! and 4 KB, at deflate levels 1 and 6, and the stored (uncompressed) path.
//!
//! `cargo bench --bench gzip`. Same self-timing harness as `benches/encode.rs`: calibrated
//! ~200 ms rounds, five rounds, best round reported. The cost is paid once per event (per
//! publish), not per subscriber.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use pushcore::sse::gzip::{stored_into, Compressor, DEFAULT_MIN_DEFLATE_BYTES};
use pushcore::sse::{encode_published, EventId};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const ROUND: Duration = Duration::from_millis(200);
const ROUNDS: usize = 5;

/// Best ns per call of `op` over calibrated rounds.
fn bench(mut op: impl FnMut()) -> f64 {
    let mut iters: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        if start.elapsed() >= ROUND / 10 {
            break;
        }
        iters *= 2;
    }
    iters *= 10;
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

/// A JSON event of about `len` bytes shaped like a market-data update: numbers that change,
/// keys that repeat.
fn json_of_len(len: usize) -> String {
    let mut json = String::from("{\"symbol\":\"ACME\",\"ts\":1732406400000,\"bids\":[");
    let mut i = 0u64;
    while json.len() + 48 < len {
        if i > 0 {
            json.push(',');
        }
        let price = 123_400 + (i * 7919) % 1000;
        let qty = (i * 104_729) % 5000;
        json.push_str(&format!(
            "{{\"px\":{}.{:02},\"qty\":{qty},\"n\":{}}}",
            price / 100,
            price % 100,
            i % 13
        ));
        i += 1;
    }
    json.push_str("]}");
    json
}

fn main() {
    let id = EventId::new(1_732_406_400_000, 42);
    println!("pushcore sse gzip: one independent segment per frame (best of {ROUNDS} rounds)");
    println!(
        "{:<28} {:>8} {:>9} {:>7} {:>12}",
        "case", "frame B", "segment B", "ratio", "ns/segment"
    );
    for len in [100, 1024, 4096] {
        let data = json_of_len(len);
        let Ok(frame) = encode_published(id, "update", &data) else {
            eprintln!("cannot encode a {len} B event");
            continue;
        };
        let frame = frame.as_bytes().to_vec();
        for level in [1, 6] {
            // Threshold 0: measure deflate itself even on the 100 B event.
            let mut c = Compressor::new(level, 0);
            let mut out = Vec::with_capacity(frame.len() * 2);
            c.segment_into(&frame, &mut out);
            let seg = out.len();
            let ns = bench(|| {
                out.clear();
                black_box(c.segment_into(black_box(&frame), &mut out));
            });
            print_row(
                &format!("{len} B json, deflate L{level}"),
                frame.len(),
                seg,
                ns,
            );
        }
        let mut out = Vec::with_capacity(frame.len() * 2);
        stored_into(&frame, &mut out);
        let seg = out.len();
        let ns = bench(|| {
            out.clear();
            stored_into(black_box(&frame), &mut out);
            black_box(&out);
        });
        print_row(&format!("{len} B json, stored"), frame.len(), seg, ns);
        let mut c = Compressor::default();
        let kind = c.segment_into(&frame, &mut Vec::new());
        println!(
            "  default Compressor (L1, stores below {DEFAULT_MIN_DEFLATE_BYTES} B) chooses {kind:?}"
        );
    }
}

fn print_row(name: &str, frame: usize, seg: usize, ns: f64) {
    println!(
        "{name:<28} {frame:>8} {seg:>9} {:>7.3} {ns:>12.0}",
        seg as f64 / frame as f64
    );
}
