//! Request-head parsing: pushcore's parser against httparse, in ns per head.
//!
//! `cargo bench --bench parse`. Prints figures only; a self-timing loop (no criterion): warm up,
//! then rounds of N parses per head, ours and httparse's interleaved, reporting the best and the
//! median round of each. The ratio is of the best rounds (the least disturbed by other load).

use std::hint::black_box;
use std::time::Instant;

use pushcore::http::parse::{parse_head, HeadLimits, Parsed};

const EVENTSOURCE: &[u8] = b"GET /events/stream?channels=news,alerts HTTP/1.1\r\n\
Host: push.example.com\r\n\
Connection: keep-alive\r\n\
Accept: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Origin: https://app.example.com\r\n\
Sec-Fetch-Site: same-site\r\n\
Sec-Fetch-Mode: cors\r\n\
Referer: https://app.example.com/dashboard\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Last-Event-ID: 1718000000000-42\r\n\r\n";

const PUBLISH: &[u8] = b"POST /events/publish HTTP/1.1\r\n\
Host: push.example.com\r\n\
Connection: keep-alive\r\n\
Content-Type: application/json\r\n\
Content-Length: 71\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwdWIifQ.c2lnbmF0dXJl\r\n\
User-Agent: node\r\n\
Accept: */*\r\n\
Accept-Encoding: gzip, deflate\r\n\r\n";

const CURL: &[u8] = b"GET /events/stream?channels=a HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\r\n";

const ITERATIONS: u32 = 2_000_000;
const ROUNDS: usize = 7;

fn ours(
    head: &[u8],
    headers: &mut Vec<pushcore::http::parse::Header>,
    limits: &HeadLimits,
) -> usize {
    match parse_head(black_box(head), limits, headers) {
        Ok(Parsed::Complete(h)) => h.len + headers.len(),
        _ => 0,
    }
}

fn theirs<'a>(head: &'a [u8], headers: &mut [httparse::Header<'a>; 32]) -> usize {
    let mut req = httparse::Request::new(headers);
    match req.parse(black_box(head)) {
        Ok(httparse::Status::Complete(n)) => n + req.headers.len(),
        _ => 0,
    }
}

/// ns per call of one round of `ITERATIONS` calls.
fn round(f: &mut impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
}

/// (best, median) ns per call of `a` and of `b`, their rounds interleaved so that both see the
/// same machine load.
fn time_pair(
    mut a: impl FnMut() -> usize,
    mut b: impl FnMut() -> usize,
) -> ((f64, f64), (f64, f64)) {
    for _ in 0..ITERATIONS / 4 {
        black_box(a());
        black_box(b());
    }
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ra.push(round(&mut a));
        rb.push(round(&mut b));
    }
    let summary = |mut r: Vec<f64>| {
        r.sort_by(f64::total_cmp);
        (r[0], r[r.len() / 2])
    };
    (summary(ra), summary(rb))
}

fn main() {
    let limits = HeadLimits::default();
    let mut our_headers = Vec::with_capacity(32);
    println!(
        "{:<12} {:>6} {:>5} {:>17} {:>17} {:>7}",
        "head", "bytes", "hdrs", "pushcore ns/head", "httparse ns/head", "ratio"
    );
    for (name, head) in [
        ("eventsource", EVENTSOURCE),
        ("publish", PUBLISH),
        ("curl", CURL),
    ] {
        if ours(head, &mut our_headers, &limits) == 0 {
            println!("{name:<12} does not parse");
            continue;
        }
        let hdrs = our_headers.len();
        let ((our_best, our_median), (their_best, their_median)) = time_pair(
            || ours(head, &mut our_headers, &limits),
            || {
                let mut h = [httparse::EMPTY_HEADER; 32];
                theirs(head, &mut h)
            },
        );
        println!(
            "{name:<12} {:>6} {hdrs:>5} {:>8.1} (med {:>5.1}) {:>6.1} (med {:>5.1}) {:>6.2}x",
            head.len(),
            our_best,
            our_median,
            their_best,
            their_median,
            our_best / their_best
        );
    }
}
