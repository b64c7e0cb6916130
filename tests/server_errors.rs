//! Every error status of the contract, over the socket: one row per case, each on a new
//! connection, each answered with the right status and a JSON `{"error":"…"}` body.

#[macro_use]
mod common;

use common::*;

/// One malformed or refused request and the answer it must get.
struct Row {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// The `Allow` header a 405 must carry.
    allow: Option<&'static str>,
}

fn row(name: &'static str, request: impl Into<Vec<u8>>, status: u16) -> Row {
    Row {
        name,
        request: request.into(),
        status,
        allow: None,
    }
}

fn publish_with(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n{body}").into_bytes()
}

fn json_publish(body: &str) -> Vec<u8> {
    publish_with(
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        body,
    )
}

fn get_line(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn rows() -> Vec<Row> {
    let long_uri = format!("/events/stream?channels={}", "a".repeat(9 * 1024));
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let big_body = "x".repeat(200);
    vec![
        // 400
        row("bad JSON", json_publish(r#"{"channel":"a","data":"#), 400),
        row("JSON that is not an event", json_publish(r#""just a string""#), 400),
        row("publish without data", json_publish(r#"{"channel":"a"}"#), 400),
        row("publish: bad channel name", json_publish(r#"{"channel":"a b","data":1}"#), 400),
        row("publish: eventType with a newline", json_publish(r#"{"channel":"a","eventType":"x\ny","data":1}"#), 400),
        row("subscribe: bad channel name", get_line("/events/stream?channels=a%20b"), 400),
        row("subscribe: empty channel name", get_line("/events/stream?channels=a,,b"), 400),
        row("subscribe: channel name over 200 bytes", get_line(&format!("/events/stream?channels={}", "c".repeat(201))), 400),
        row("subscribe: more channels than --max-channels 2", get_line("/events/stream?channels=a,b,c"), 400),
        row(
            "smuggling: Content-Length with Transfer-Encoding",
            publish_with(
                "Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        row(
            "conflicting Content-Length",
            publish_with("Content-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 6\r\n", "{}"),
            400,
        ),
        row(
            "malformed chunk size",
            publish_with("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
            400,
        ),
        row("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n".to_vec(), 400),
        row("garbage request line", b"HELLO\r\n\r\n".to_vec(), 400),
        row("bare LF line endings", b"GET /healthz HTTP/1.1\nHost: x\n\n".to_vec(), 400),
        // 404
        row("unknown path", get_line("/nope"), 404),
        row("unknown path under /events", get_line("/events/other"), 404),
        // 405
        Row { allow: Some("POST"), ..row("GET /events/publish", get_line("/events/publish"), 405) },
        Row {
            allow: Some("POST"),
            ..row("DELETE /events/publish", b"DELETE /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), 405)
        },
        Row {
            allow: Some("GET"),
            ..row("PUT /events/stream", b"PUT /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 405)
        },
        Row {
            allow: Some("GET, HEAD"),
            ..row("POST /metrics", b"POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 405)
        },
        // 411
        row("publish without a length", publish_with("Content-Type: application/json\r\n", ""), 411),
        // 413 (--max-body-bytes 100)
        row(
            "body over --max-body-bytes",
            publish_with(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", big_body.len()), &big_body),
            413,
        ),
        row(
            "chunked body over --max-body-bytes",
            publish_with(
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
                &format!("{:x}\r\n{big_body}\r\n0\r\n\r\n", big_body.len()),
            ),
            413,
        ),
        // 414
        row("9 KiB request target", get_line(&long_uri), 414),
        // 415
        row(
            "text/plain publish",
            publish_with("Content-Type: text/plain\r\nContent-Length: 2\r\n", "{}"),
            415,
        ),
        row("publish without Content-Type", publish_with("Content-Length: 2\r\n", "{}"), 415),
        // 431
        row("20 KiB header", huge_header, 431),
        row("150 header fields", many_headers, 431),
        // 505
        row("HTTP/2.0 request line", b"GET /healthz HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), 505),
    ]
}

fn every_error_status_has_a_json_body(driver: Driver) {
    let server =
        Server::start_with_driver(driver, &["--max-channels", "2", "--max-body-bytes", "100"]);
    let mut failures = Vec::new();
    for r in rows() {
        let mut conn = Conn::open(server.addr());
        // A server may answer before reading all of a refused request.
        let _ = conn.try_send(&r.request);
        let resp = match conn.try_read_response(IO_TIMEOUT) {
            Ok(resp) => resp,
            Err(end) => {
                failures.push(format!("{}: no response ({end:?})", r.name));
                continue;
            }
        };
        if resp.status != r.status {
            failures.push(format!(
                "{}: status {} (expected {}): {}",
                r.name,
                resp.status,
                r.status,
                resp.text()
            ));
            continue;
        }
        let ct = resp.header("content-type").unwrap_or_default();
        let error = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
        let has_error = matches!(error.as_deref(), Some(e) if !e.is_empty());
        if !ct.starts_with("application/json") || !has_error {
            failures.push(format!(
                "{}: body is not a JSON error ({ct}): {:?}",
                r.name,
                resp.text()
            ));
        }
        if let Some(allow) = r.allow {
            if resp.header("allow") != Some(allow) {
                failures.push(format!(
                    "{}: Allow {:?} (expected {allow:?})",
                    r.name,
                    resp.header("allow")
                ));
            }
        }
    }
    // The server is still healthy after all of that.
    assert_eq!(get(server.addr(), "/healthz").status, 200);
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let parse_errors = server.metrics().get("pushcore_parse_errors_total");
    assert!(
        parse_errors >= 20,
        "pushcore_parse_errors_total is {parse_errors}"
    );
}
both_drivers!(every_error_status_has_a_json_body);

/// A 400 for a bad publish body keeps a keep-alive connection usable: the next request on it is
/// served.
fn bad_publish_body_keeps_the_connection(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut conn = Conn::open(server.addr());
    let resp = conn.publish(r#"{"channel":"a","data":"#);
    assert_eq!(resp.status, 400);
    resp.error_message();
    conn.publish_ok(r#"{"channel":"a","data":1}"#);
}
both_drivers!(bad_publish_body_keeps_the_connection);
