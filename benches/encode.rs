//! Frame encoding: ns per event and MB/s of frame bytes produced.
//!
//! `cargo bench --bench encode`. A self-timing harness: each case is calibrated to run ~200 ms
//! per round, five rounds, and the best round is reported (the least disturbed by the rest of
//! the machine). Allocation goes through mimalloc, as in the server binary.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use pushcore::sse::{encode_into, encode_published, id, Event, EventId, Frame};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const ROUND: Duration = Duration::from_millis(200);
const ROUNDS: usize = 5;

/// Runs `op` in calibrated rounds and prints the best ns/op and the throughput of
/// `bytes_per_op` output bytes.
fn bench(name: &str, bytes_per_op: usize, mut op: impl FnMut()) {
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
        let ns = start.elapsed().as_nanos() as f64 / iters as f64;
        best = best.min(ns);
    }
    let mb_per_s = bytes_per_op as f64 / best * 1e9 / 1e6;
    println!("{name:<44} {best:>10.1} ns/op {mb_per_s:>10.1} MB/s  ({bytes_per_op} B/op)");
}

/// Compact JSON of about `len` bytes on one line.
fn json_of_len(len: usize) -> String {
    let mut json = String::from("{\"items\":[");
    let mut i = 0;
    while json.len() + 40 < len {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item-{i:05}\",\"ok\":true}}"
        ));
        i += 1;
    }
    json.push_str("]}");
    json
}

fn main() {
    let small = r#"{"symbol":"ACME","price":1234.5,"ts":1732406400000,"up":true}"#;
    let large = json_of_len(16 * 1024);
    let multi: String = (0..20)
        .map(|i| format!("line {i:02}: {}\n", "x".repeat(40)))
        .collect();
    let id = EventId::new(1_732_406_400_000, 42);
    let id_text = id.to_string();

    let small_event = Event {
        id: Some(&id_text),
        event: Some("update"),
        data: small,
        retry_ms: None,
    };
    let large_event = Event {
        data: &large,
        ..small_event
    };
    let multi_event = Event {
        data: &multi,
        ..small_event
    };

    println!(
        "pushcore sse encode (data: small {} B, large {} B, multi-line {} B in 20 lines)",
        small.len(),
        large.len(),
        multi.len()
    );
    for (name, event) in [
        ("Frame::encode small", &small_event),
        ("Frame::encode large (16 KiB)", &large_event),
        ("Frame::encode multi-line (1 KiB, 20 lines)", &multi_event),
    ] {
        let len = Frame::encode(event).map_or(0, |f| f.len());
        bench(name, len, || {
            black_box(Frame::encode(black_box(event)).ok());
        });
    }

    let len = encode_published(id, "update", small).map_or(0, |f| f.len());
    bench("encode_published small", len, || {
        black_box(encode_published(black_box(id), black_box("update"), black_box(small)).ok());
    });

    let mut buffer = Vec::with_capacity(64 * 1024);
    bench("encode_into small (reused buffer, no alloc)", len, || {
        buffer.clear();
        black_box(encode_into(black_box(&small_event), &mut buffer).ok());
    });

    let mut out = Vec::with_capacity(64);
    bench("EventId::write_to", id_text.len(), || {
        out.clear();
        black_box(id).write_to(&mut out);
        black_box(&out);
    });

    bench("id::parse", id_text.len(), || {
        black_box(id::parse(black_box(id_text.as_bytes())).ok());
    });

    let frame = encode_published(id, "update", small).ok();
    bench("Frame clone + drop (core-local)", len, || {
        black_box(black_box(&frame).clone());
    });
}
