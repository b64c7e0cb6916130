//! Answers at the edges reach the client: an early refusal (413 from the declared length) is
//! read by a client that has already sent its whole body (lingering close, no reset), and the
//! refusals for load (503 at capacity, 429 per address) carry CORS fields for an allowed origin.

#[macro_use]
mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

const APP: &str = "https://app.example";

/// The client sends its whole over-limit body in one go, and only then reads: it gets the 413,
/// not a reset (the server reads and discards the body it refused before closing).
fn an_early_413_survives_a_client_that_sent_everything(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--max-body-bytes", "1024"]);
    // Larger than what the socket buffers hold: the client is still sending when the server
    // has answered.
    let body = vec![b'x'; 4 * 1024 * 1024];
    for round in 0..3 {
        let mut conn = Conn::open(server.addr());
        let head = format!(
            "POST /events/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut raw = head.into_bytes();
        raw.extend_from_slice(&body);
        conn.stream()
            .try_clone()
            .expect("clone")
            .write_all(&raw)
            .unwrap_or_else(|e| panic!("round {round}: sending the body failed: {e}"));
        let resp = conn
            .try_read_response(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("round {round}: no 413, the read ended with {end:?}"));
        assert_eq!(resp.status, 413, "round {round}");
        assert!(
            resp.error_message().contains("--max-body-bytes"),
            "round {round}: the 413 does not name the flag that raises the limit: {}",
            resp.error_message()
        );
    }
}
both_drivers!(an_early_413_survives_a_client_that_sent_everything);

fn refusals_for_load_carry_cors(driver: Driver) {
    // At capacity: one connection allowed, held open by a subscriber.
    let server = Server::start_with_driver(
        driver,
        &[
            "--max-connections",
            "1",
            "--cors-origin",
            APP,
            "--workers",
            "1",
        ],
    );
    let addr = server.addr();
    let _held = wait_until(IO_TIMEOUT, || {
        server.metrics().get("pushcore_connections") == 0
    });
    let _sub = subscribe_when_free(addr, "/events/stream?channels=a");
    let got = wait_until(IO_TIMEOUT, || {
        let mut c = Conn::open(addr);
        let _ = c.try_send(
            format!("GET /events/stream?channels=b HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\n\r\n")
                .as_bytes(),
        );
        match c.try_read_response(IO_TIMEOUT) {
            Ok(resp) if resp.status == 503 => {
                assert_eq!(resp.header("access-control-allow-origin"), Some(APP), "503");
                assert_eq!(resp.header("retry-after"), Some("5"));
                true
            }
            _ => false,
        }
    });
    assert!(got, "no 503 at capacity");

    // Over the per-address limit.
    let server = Server::start_with_driver(
        driver,
        &[
            "--max-connections-per-ip",
            "1",
            "--cors-origin",
            APP,
            "--workers",
            "1",
        ],
    );
    let addr = server.addr();
    let _sub = subscribe_when_free(addr, "/events/stream?channels=a");
    let mut c = Conn::open(addr);
    c.send(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\n\r\n").as_bytes());
    let resp = c.read_response();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP), "429");
    // Another origin gets the refusal, and no grant.
    let mut c = Conn::open(addr);
    c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n");
    let resp = c.read_response();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    // A client that sends nothing is still answered (after the short read bound).
    let mut c = Conn::open(addr);
    let resp = c
        .try_read_response(Duration::from_secs(3))
        .expect("an answer without a request");
    assert_eq!(resp.status, 429);
}
both_drivers!(refusals_for_load_carry_cors);
