//! The admin listener and the access log, over real sockets against the real binary.
//!
//! - With `--admin-listen ADDR --dashboard`, the operations paths (`/metrics`, `/healthz`,
//!   `/readyz`, `/dashboard`, `/dashboard/events`) are served there only, the API only on the
//!   public port; at capacity the public port refuses while the admin port still answers.
//! - Without `--admin-listen`, `/metrics`, `/healthz` and `/readyz` stay on the public port.
//! - `--access-log --log-format json`: one JSON line per publish (target `pushcore::access`) with
//!   the client, the status and the event id, refusals included.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// An address nobody listens on right now (bound, then released).
fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    probe.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

const OPS_PATHS: [&str; 5] = [
    "/metrics",
    "/healthz",
    "/readyz",
    "/dashboard",
    "/dashboard/events",
];

/// Read blocks from `s` until one is `event: stats` (bounded); that block.
fn next_stats(s: &mut SseStream) -> Block {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match s.next_block(left) {
            Ok(b) if b.event() == Some("stats") => return b,
            Ok(_) => continue,
            Err(end) => panic!("no `event: stats` on /dashboard/events ({end:?})"),
        }
    }
}

/// Each side serves its own paths; the other side's paths are 404 there.
fn admin_listener_separates_the_paths(driver: Driver) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let server = Server::start_with_driver(driver, &["--admin-listen", &admin_arg, "--dashboard"]);
    let public = server.addr();
    assert_ne!(public, admin);

    // The public port: the API and the browser module, no operations paths.
    for path in OPS_PATHS {
        let resp = get(public, path);
        assert_eq!(resp.status, 404, "public {path}: {}", resp.text());
    }
    let js = get(public, "/pushcore.js");
    assert_eq!(js.status, 200, "public /pushcore.js");
    assert!(!js.body.is_empty(), "empty /pushcore.js");
    let mut sub = subscribe_ready(public, "/events/stream?channels=ops");
    let id = publish(public, &event_json("ops", None, &json!({"n": 1})));
    let got = sub.expect_event("the event published on the public port");
    assert_eq!(got.id(), Some(id.as_str()));
    assert_eq!(got.json(), json!({"n": 1}));

    // The admin port: the operations paths.
    let m = get(admin, "/metrics");
    assert_eq!(m.status, 200, "admin /metrics");
    assert!(
        m.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain")),
        "{:?}",
        m.headers
    );
    let text = m.text();
    let metrics = parse_metrics(&text);
    assert!(
        metrics.0.contains_key("pushcore_log_lines_dropped_total"),
        "no pushcore_log_lines_dropped_total in {text}"
    );
    assert!(
        text.contains("# TYPE pushcore_log_lines_dropped_total counter"),
        "no TYPE line for the dropped-lines counter"
    );
    assert_eq!(metrics.get("pushcore_events_published_total"), 1, "{text}");
    let health = get(admin, "/healthz");
    assert_eq!(health.status, 200, "admin /healthz: {}", health.text());
    let ready = get(admin, "/readyz");
    assert_eq!(ready.status, 200, "admin /readyz: {}", ready.text());
    assert_eq!(ready.json(), json!({"status": "ready"}));
    let dash = get(admin, "/dashboard");
    assert_eq!(dash.status, 200, "admin /dashboard");
    assert!(
        dash.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/html")),
        "{:?}",
        dash.headers
    );
    // The dashboard imports the browser module from its own origin.
    assert_eq!(get(admin, "/pushcore.js").status, 200, "admin /pushcore.js");
    let mut stats = SseStream::open(connect(admin), "/dashboard/events", &[]);
    assert!(
        stats
            .head
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/event-stream")),
        "{:?}",
        stats.head.headers
    );
    let block = next_stats(&mut stats);
    assert!(
        block.json().is_object(),
        "stats data is not an object: {}",
        block.raw
    );
    drop(stats);

    // The API is not served on the admin port.
    let resp = get(admin, "/events/stream?channels=ops");
    assert_eq!(resp.status, 404, "admin /events/stream: {}", resp.text());
    let resp = request(
        admin,
        &publish_request(&event_json("ops", None, &json!(2)), false),
    );
    assert_eq!(resp.status, 404, "admin /events/publish: {}", resp.text());
    // Nothing was published through the admin port.
    assert_eq!(
        common::metrics(admin).get("pushcore_events_published_total"),
        1
    );
    assert!(
        matches!(
            sub.next_event(Duration::from_millis(200)),
            Err(End::Timeout)
        ),
        "an event arrived from the admin port"
    );
}
both_drivers!(admin_listener_separates_the_paths);

/// At capacity the public port refuses (503) while the admin port still answers.
fn admin_answers_at_capacity(driver: Driver) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let server = Server::start_with_driver(
        driver,
        &["--admin-listen", &admin_arg, "--max-connections", "1"],
    );
    let public = server.addr();
    let _held = subscribe_when_free(public, "/events/stream?channels=full");
    let refused = get(public, "/events/stream?channels=full");
    assert_eq!(
        refused.status,
        503,
        "public at capacity: {}",
        refused.text()
    );
    assert!(
        refused.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    let m = get(admin, "/metrics");
    assert_eq!(m.status, 200, "admin /metrics at capacity: {}", m.text());
    let metrics = parse_metrics(&m.text());
    assert!(
        metrics.get("pushcore_connections_rejected_total") >= 1,
        "the 503 was not counted"
    );
    assert_eq!(
        get(admin, "/healthz").status,
        200,
        "admin /healthz at capacity"
    );
}
both_drivers!(admin_answers_at_capacity);

/// Without `--admin-listen`, the operations paths are on the public port (the two-command path).
fn without_admin_listen_ops_are_public(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200, "/metrics");
    assert!(
        parse_metrics(&m.text())
            .0
            .contains_key("pushcore_log_lines_dropped_total"),
        "no pushcore_log_lines_dropped_total"
    );
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200, "/healthz: {}", health.text());
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 200, "/readyz: {}", ready.text());
    assert_eq!(ready.json(), json!({"status": "ready"}));
    // The dashboard is off unless asked for.
    assert_eq!(
        get(addr, "/dashboard").status,
        404,
        "/dashboard without --dashboard"
    );
}
both_drivers!(without_admin_listen_ops_are_public);

/// A server started with `--log-format json` (its stdout line is JSON, so not [`Server`]):
/// its address and its stderr lines; killed by its pid on drop.
struct JsonServer {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl JsonServer {
    fn start(driver: Driver, args: &[&str]) -> JsonServer {
        let mut cmd = serve_command(driver, args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn pushcore: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child
            .stderr
            .take()
            .unwrap_or_else(|| panic!("piped stderr"));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[pushcore stderr] {line}");
                if let Ok(mut s) = sink.lock() {
                    s.push(line);
                }
            }
        });
        let out = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("piped stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no listening line within 10 s ({e})");
            }
        };
        let v: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("listening line is not JSON ({e}): {first}"));
        let addr: SocketAddr = v["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no addr in {first}"));
        JsonServer {
            child,
            addr,
            stderr,
        }
    }

    /// The stderr lines parsed as JSON with target `pushcore::access`.
    fn access_lines(&self) -> Vec<Value> {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"))
            })
            .filter(|v| v["target"] == "pushcore::access")
            .collect()
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every answered publish is one JSON access line: client, status, event id.
fn access_log_lines_are_json(driver: Driver) {
    let server = JsonServer::start(driver, &["--access-log", "--log-format", "json"]);
    let addr = server.addr;
    assert!(
        wait_until(IO_TIMEOUT, || get(addr, "/healthz").status == 200),
        "not ready"
    );
    let first = publish(addr, &event_json("log", None, &json!({"n": 1})));
    let second = publish(addr, &event_json("log", Some("tick"), &json!({"n": 2})));
    let bad = request(addr, &publish_request("{not json", false));
    assert_eq!(bad.status, 400, "malformed body: {}", bad.text());

    let complete = wait_until(IO_TIMEOUT, || server.access_lines().len() >= 3);
    let lines = server.access_lines();
    assert!(complete, "{} access lines: {lines:?}", lines.len());
    assert_eq!(lines.len(), 3, "one line per publish: {lines:?}");
    for (line, id) in lines.iter().zip([&first, &second]) {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["event_id"], id.as_str(), "{line}");
        assert_eq!(line["events"], 1, "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
    }
    let refused = &lines[2];
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(refused["client"], "127.0.0.1", "{refused}");
    assert_eq!(refused["events"], 0, "{refused}");
    assert_eq!(refused["event_id"], "", "{refused}");
}
both_drivers!(access_log_lines_are_json);

/// Publishes refused before their body is read (415 wrong type, 413 too large) are publishes
/// too: the access log records them with their status.
fn access_log_records_early_refusals(driver: Driver) {
    let server = JsonServer::start(
        driver,
        &[
            "--access-log",
            "--log-format",
            "json",
            "--max-body-bytes",
            "64",
        ],
    );
    let addr = server.addr;
    assert!(
        wait_until(IO_TIMEOUT, || get(addr, "/healthz").status == 200),
        "not ready"
    );
    let body = r#"{"channel":"log","data":1}"#;
    let wrong_type = request(
        addr,
        format!(
            "POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text());
    let big = event_json("log", None, &json!("x".repeat(200)));
    let too_large = request(addr, &publish_request(&big, false));
    assert_eq!(too_large.status, 413, "{}", too_large.text());
    let complete = wait_until(Duration::from_secs(2), || server.access_lines().len() >= 2);
    let lines = server.access_lines();
    assert!(
        complete,
        "refused publishes not in the access log: {lines:?}"
    );
    let statuses: Vec<u64> = lines.iter().filter_map(|l| l["status"].as_u64()).collect();
    assert_eq!(statuses, [415, 413], "{lines:?}");
}
both_drivers!(access_log_records_early_refusals);

/// Connections to the admin port are not the public port's: an open dashboard stream does
/// not take one of the `--max-connections` slots subscribers get.
fn admin_connections_take_no_public_slot(driver: Driver) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let server = Server::start_with_driver(
        driver,
        &[
            "--admin-listen",
            &admin_arg,
            "--dashboard",
            "--max-connections",
            "1",
        ],
    );
    let mut stats = SseStream::open(connect(admin), "/dashboard/events", &[]);
    next_stats(&mut stats);
    let mut sub =
        match SseStream::try_open(connect(server.addr()), "/events/stream?channels=slot", &[]) {
            Ok(s) => s,
            Err(r) => panic!(
                "the only public subscriber was refused while a dashboard was open: {} {}",
                r.status,
                r.text()
            ),
        };
    sub.handshake();
}
both_drivers!(admin_connections_take_no_public_slot);
