//! Harness for the black-box server tests (`tests/server_*.rs`): run the real `pushcore` binary
//! on either monoio driver, talk to it over real sockets, read event streams with deadlines.
//!
//! Every wait here is bounded: reads carry a deadline and report [`End::Timeout`] instead of
//! hanging, polling helpers give up after their timeout, and a [`Server`] kills its child on
//! drop. Nothing here sleeps to assert timing; sleeps only pace a polling loop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long any single expected answer may take before a test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Generates one `#[test]` per monoio driver for `fn name(driver: Driver)`, as the module
/// `name` with the tests `name::uring` and `name::epoll` (monoio's `#[test_all]` style).
/// Leading attributes (such as `#[ignore = "bug: …"]`) apply to both; `uring: #[…]` and
/// `epoll: #[…]` after the name apply to one.
macro_rules! both_drivers {
    ($(#[$attr:meta])* $name:ident $(, uring: #[$uring:meta])? $(, epoll: #[$epoll:meta])?) => {
        mod $name {
            $(#[$attr])*
            $(#[$uring])?
            #[test]
            fn uring() {
                super::$name($crate::common::Driver::IoUring)
            }
            $(#[$attr])*
            $(#[$epoll])?
            #[test]
            fn epoll() {
                super::$name($crate::common::Driver::Epoll)
            }
        }
    };
}

// ----- the server process ----------------------------------------------------------------------

/// The monoio driver the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    /// The epoll fallback (`MONOIO_FORCE_LEGACY_DRIVER=1`).
    Epoll,
}

/// A running `pushcore serve` child process; killed (by its pid, only this child) on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    workers: usize,
    driver: Driver,
    stderr: Arc<Mutex<String>>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Start on the io_uring driver.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_driver(Driver::IoUring, args)
    }

    /// Start `pushcore serve` with `args` plus, unless given, `--listen 127.0.0.1:0`,
    /// `--workers 2` and `--max-connections 10000`; always `--no-pin`. Returns once the server
    /// printed its listening line (at most 10 s).
    pub fn start_with_driver(driver: Driver, args: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushcore"));
        cmd.arg("serve");
        let given = |flag: &str| {
            args.iter()
                .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
        };
        if !given("--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !given("--workers") {
            cmd.args(["--workers", "2"]);
        }
        if !given("--max-connections") {
            // Below the machine's open-file limit, so the server has nothing to warn about.
            cmd.args(["--max-connections", "10000"]);
        }
        if !given("--no-pin") {
            cmd.arg("--no-pin");
        }
        cmd.args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PUSHCORE_") {
                cmd.env_remove(key);
            }
        }
        match driver {
            Driver::IoUring => cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER"),
            Driver::Epoll => cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1"),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pushcore");

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("[pushcore stderr] {line}");
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[pushcore stdout] {line}");
                let _ = tx.send(line);
            }
        });
        let line = loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.starts_with("pushcore listening on ") => break line,
                Ok(_) => continue,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("pushcore did not print its listening line within 10 s ({e}); args {args:?}");
                }
            }
        };
        let (addr, workers) = parse_listening_line(&line);
        let server = Server {
            child,
            addr,
            workers,
            driver,
            stderr,
            exit: None,
        };
        server.check_driver();
        server
    }

    /// Fail unless the process really runs on the requested driver: with io_uring every worker
    /// owns a ring (an `anon_inode:[io_uring]` fd), with epoll none does.
    fn check_driver(&self) {
        match self.driver {
            Driver::IoUring => {
                let ok = wait_until(IO_TIMEOUT, || io_uring_fds(self.pid()) >= self.workers);
                assert!(
                    ok,
                    "io_uring driver not in use: {} rings for {} workers (is io_uring allowed here?)",
                    io_uring_fds(self.pid()),
                    self.workers
                );
            }
            Driver::Epoll => {
                // A served request proves at least one worker has built its runtime.
                assert_eq!(get(self.addr, "/healthz").status, 200);
                assert_eq!(
                    io_uring_fds(self.pid()),
                    0,
                    "MONOIO_FORCE_LEGACY_DRIVER=1 but io_uring rings are open"
                );
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Send SIGTERM (start the drain).
    pub fn stop(&self) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some(status);
                    return self.exit;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// The server's `/metrics`, summed over workers.
    pub fn metrics(&self) -> Metrics {
        metrics(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_listening_line(line: &str) -> (SocketAddr, usize) {
    // "pushcore listening on http://127.0.0.1:PORT (N workers)"
    let rest = line.trim_start_matches("pushcore listening on http://");
    let (addr, rest) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("bad listening line {line:?}"));
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
    let workers = rest
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no worker count in {line:?}"));
    (addr, workers)
}

/// io_uring instances the process holds open.
fn io_uring_fds(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:[io_uring]")
        .count()
}

/// Poll `check` (every 20 ms) until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ----- raw HTTP ----------------------------------------------------------------------------------

/// How reading ended when it did not produce what was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed (FIN).
    Eof,
    /// The peer reset the connection.
    Reset,
    /// Nothing (complete) arrived before the deadline.
    Timeout,
    Error(ErrorKind),
}

/// Read once into `buf` before `deadline`. `Ok(n)` with n > 0, or how the stream ended.
fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize, End> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(End::Timeout);
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| End::Error(e.kind()))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(End::Eof),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Err(End::Reset)
            }
            Err(e) => return Err(End::Error(e.kind())),
        }
    }
}

/// Connect to `addr` (5 s connect timeout, 5 s write timeout).
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("set_write_timeout");
    stream.set_nodelay(true).expect("set_nodelay");
    stream
}

/// Connect with a socket configured by `setup` before `connect(2)` (buffer sizes, linger).
pub fn connect_with(addr: SocketAddr, setup: impl FnOnce(&socket2::Socket)) -> TcpStream {
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .expect("socket");
    setup(&sock);
    sock.connect_timeout(&addr.into(), IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let stream: TcpStream = sock.into();
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("set_write_timeout");
    stream
}

/// One HTTP response as received.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the only header named `name` (case-insensitive); panics on duplicates.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(
            found.next().is_none(),
            "header {name} appears more than once: {:?}",
            self.headers
        );
        first
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (with the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {:?}", self.status, self.text()))
    }

    /// The `error` string of a JSON error body; panics unless the body is `{"error":"…"}`
    /// served as `application/json`.
    pub fn error_message(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{} error served as {ct:?}",
            self.status
        );
        let json = self.json();
        let msg = json
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or_else(|| panic!("no \"error\" string in {json}"));
        assert!(!msg.is_empty(), "empty error message");
        msg.to_string()
    }
}

/// A client connection that can carry several requests (keep-alive, pipelining).
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::from_stream(connect(addr))
    }

    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream
            .write_all(raw)
            .unwrap_or_else(|e| panic!("write request: {e}"));
    }

    /// Send, but report a failed write instead of panicking (the server may have closed).
    pub fn try_send(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(raw)
    }

    /// The next response (a 1xx counts as one), within `timeout`.
    pub fn try_read_response(&mut self, timeout: Duration) -> Result<Response, End> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((resp, used)) = parse_response(&self.buf) {
                self.buf.drain(..used);
                return Ok(resp);
            }
            read_some(&mut self.stream, &mut self.buf, deadline)?;
        }
    }

    /// The next response; panics if none arrives within [`IO_TIMEOUT`].
    pub fn read_response(&mut self) -> Response {
        let pending = self.buf.len();
        self.try_read_response(IO_TIMEOUT).unwrap_or_else(|end| {
            panic!("no complete response ({end:?}); {pending} bytes were buffered")
        })
    }

    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    /// Publish `json` on this connection and return the response.
    pub fn publish(&mut self, json: &str) -> Response {
        self.request(&publish_request(json, true))
    }

    /// Publish one event; asserts 200 and returns its id.
    pub fn publish_ok(&mut self, json: &str) -> String {
        event_id_of(&self.publish(json))
    }

    /// Read until the peer closes or `timeout`: how it ended and the bytes that came first
    /// (including any already buffered).
    pub fn read_to_end(&mut self, timeout: Duration) -> (End, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Err(end) = read_some(&mut self.stream, &mut self.buf, deadline) {
                return (end, std::mem::take(&mut self.buf));
            }
        }
    }
}

/// Parse one complete response from the front of `buf`: the response and the bytes it used.
/// Bodies are delimited by Content-Length (pushcore sends one on every non-stream response).
pub fn parse_response(buf: &[u8]) -> Option<(Response, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(e) => panic!(
            "malformed response ({e}): {:?}",
            String::from_utf8_lossy(buf)
        ),
    };
    let status = parsed.code.unwrap_or(0);
    let reason = parsed.reason.unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut resp = Response {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    let len = if (100..200).contains(&status) || status == 204 || status == 304 {
        0
    } else {
        let cl = resp
            .header("content-length")
            .unwrap_or_else(|| panic!("{status} response without Content-Length"));
        cl.trim()
            .parse::<usize>()
            .unwrap_or_else(|e| panic!("bad Content-Length {cl:?}: {e}"))
    };
    if buf.len() < head_len + len {
        return None;
    }
    resp.body = buf[head_len..head_len + len].to_vec();
    Some((resp, head_len + len))
}

/// Send `raw` on a new connection and read one response.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    Conn::open(addr).request(raw)
}

/// `GET path` on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
    )
}

/// The bytes of `POST /events/publish` with `json` as body.
pub fn publish_request(json: &str, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}

/// Publish `json` on a new connection; asserts 200 and returns the `eventId`.
pub fn publish(addr: SocketAddr, json: &str) -> String {
    event_id_of(&request(addr, &publish_request(json, false)))
}

/// Publish a batch (a JSON array) on a new connection; asserts 200 and returns `eventIds`.
pub fn publish_batch(addr: SocketAddr, json: &str) -> Vec<String> {
    let resp = request(addr, &publish_request(json, false));
    assert_eq!(resp.status, 200, "batch publish refused: {}", resp.text());
    let body = resp.json();
    assert_eq!(body["success"], serde_json::Value::Bool(true), "{body}");
    body["eventIds"]
        .as_array()
        .unwrap_or_else(|| panic!("no eventIds in {body}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("non-string id in {body}"))
                .to_string()
        })
        .collect()
}

fn event_id_of(resp: &Response) -> String {
    assert_eq!(resp.status, 200, "publish refused: {}", resp.text());
    let body = resp.json();
    assert_eq!(body["success"], serde_json::Value::Bool(true), "{body}");
    let id = body["eventId"]
        .as_str()
        .unwrap_or_else(|| panic!("no eventId in {body}"))
        .to_string();
    parse_id(&id);
    id
}

/// `<unix-ms>-<seq>` as a pair that orders like the ids; panics on any other shape.
pub fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("event id {id:?} is not <ms>-<seq>"));
    let num = |s: &str| {
        assert!(
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
            "event id {id:?} is not <ms>-<seq>"
        );
        s.parse::<u64>()
            .unwrap_or_else(|e| panic!("event id {id:?}: {e}"))
    };
    (num(ms), num(seq))
}

/// Panics unless `ids` are strictly increasing.
pub fn assert_increasing(ids: &[String]) {
    for pair in ids.windows(2) {
        assert!(
            parse_id(&pair[0]) < parse_id(&pair[1]),
            "ids not strictly increasing: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

// ----- metrics -----------------------------------------------------------------------------------

/// `/metrics` with each metric summed over its label sets (gauges are per worker).
#[derive(Clone, Debug)]
pub struct Metrics(pub HashMap<String, u64>);

impl Metrics {
    /// A metric's value; panics if the server does not export it.
    pub fn get(&self, name: &str) -> u64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("/metrics has no {name}"))
    }
}

pub fn metrics(addr: SocketAddr) -> Metrics {
    let resp = get(addr, "/metrics");
    assert_eq!(resp.status, 200, "/metrics: {}", resp.text());
    parse_metrics(&resp.text())
}

/// Values per label set, e.g. `pushcore_subscribers{worker="0"}` → 3.
pub fn metrics_raw(addr: SocketAddr) -> HashMap<String, u64> {
    let resp = get(addr, "/metrics");
    assert_eq!(resp.status, 200, "/metrics: {}", resp.text());
    resp.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse::<u64>().ok()?)))
        .collect()
}

pub fn parse_metrics(text: &str) -> Metrics {
    let mut out: HashMap<String, u64> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let name = key.split('{').next().unwrap_or(key);
        let value: u64 = value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad metrics value in {line:?}: {e}"));
        *out.entry(name.to_string()).or_default() += value;
    }
    Metrics(out)
}

/// Poll `/metrics` until `metric` satisfies `check` (bounded by `timeout`); the last value seen.
pub fn wait_metric(
    addr: SocketAddr,
    metric: &str,
    timeout: Duration,
    check: impl Fn(u64) -> bool,
) -> Result<u64, u64> {
    let mut last = 0;
    let ok = wait_until(timeout, || {
        last = metrics(addr).get(metric);
        check(last)
    });
    if ok {
        Ok(last)
    } else {
        Err(last)
    }
}

// ----- event streams -----------------------------------------------------------------------------

/// One block of an event stream (the lines up to a blank line), as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The exact text of the block, blank line included.
    pub raw: String,
    /// `(field, value)` per line in order; a comment is `("", text)`.
    pub fields: Vec<(String, String)>,
}

impl Block {
    fn parse(raw: String) -> Block {
        let mut fields = Vec::new();
        for line in raw.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            fields.push((name.to_string(), value.to_string()));
        }
        Block { raw, fields }
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn id(&self) -> Option<&str> {
        self.field("id")
    }

    pub fn event(&self) -> Option<&str> {
        self.field("event")
    }

    /// The event type a browser would dispatch (`message` when there is no `event:` line).
    pub fn event_type(&self) -> &str {
        self.event().unwrap_or("message")
    }

    /// The `data:` lines joined by `\n`; `None` without any.
    pub fn data(&self) -> Option<String> {
        let lines: Vec<&str> = self
            .fields
            .iter()
            .filter(|(n, _)| n == "data")
            .map(|(_, v)| v.as_str())
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    pub fn data_lines(&self) -> usize {
        self.fields.iter().filter(|(n, _)| n == "data").count()
    }

    /// The data parsed as JSON; panics if it is missing or not JSON.
    pub fn json(&self) -> serde_json::Value {
        let data = self
            .data()
            .unwrap_or_else(|| panic!("block without data: {:?}", self.raw));
        serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {:?}", self.raw))
    }

    pub fn retry(&self) -> Option<u64> {
        self.field("retry")
            .map(|v| v.parse().unwrap_or_else(|e| panic!("bad retry {v:?}: {e}")))
    }

    pub fn comments(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Only comments (a heartbeat is one).
    pub fn is_comment(&self) -> bool {
        !self.fields.is_empty() && self.fields.iter().all(|(n, _)| n.is_empty())
    }
}

/// Splits an event stream into [`Block`]s as bytes arrive.
#[derive(Debug, Default)]
pub struct BlockParser {
    buf: Vec<u8>,
}

impl BlockParser {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete block, if one is buffered.
    pub fn next_block(&mut self) -> Option<Block> {
        let mut start = 0;
        while let Some(nl) = memchr_nl(&self.buf[start..]) {
            let line = &self.buf[start..start + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            start += nl + 1;
            if line.is_empty() {
                let raw: Vec<u8> = self.buf.drain(..start).collect();
                let raw = String::from_utf8(raw)
                    .unwrap_or_else(|e| panic!("event stream is not UTF-8: {e}"));
                return Some(Block::parse(raw));
            }
        }
        None
    }

    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

fn memchr_nl(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// What a subscriber saw first: the `retry:` hint and the `connected` event.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub retry: Option<u64>,
    pub client_id: String,
    pub timestamp: u64,
    /// The blocks it came in (retry, connected).
    pub blocks: Vec<Block>,
}

/// The channels a subscribe target names (`default` when none).
pub fn channels_of(target: &str) -> Vec<String> {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut out: Vec<String> = Vec::new();
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("channels=") {
            for name in v.split(',').filter(|n| !n.is_empty()) {
                if !out.iter().any(|o| o == name) {
                    out.push(name.to_string());
                }
            }
        }
    }
    if out.is_empty() {
        out.push("default".to_string());
    }
    out
}

/// A subscriber connection reading its event stream.
#[derive(Debug)]
pub struct SseStream {
    stream: TcpStream,
    /// The response head (status and headers, body empty).
    pub head: Response,
    parser: BlockParser,
}

/// Open `GET target` as a subscriber; panics unless the answer is 200.
pub fn subscribe(addr: SocketAddr, target: &str) -> SseStream {
    SseStream::open(connect(addr), target, &[])
}

/// Subscribe, retrying (for up to [`IO_TIMEOUT`]) while the server answers 503 because
/// connections that just closed are not yet counted out; reads the handshake.
pub fn subscribe_when_free(addr: SocketAddr, target: &str) -> SseStream {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match SseStream::try_open(connect(addr), target, &[]) {
            Ok(mut s) => {
                s.handshake();
                return s;
            }
            Err(resp) if resp.status == 503 && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(resp) => panic!("subscribe {target}: {} {}", resp.status, resp.text()),
        }
    }
}

/// Subscribe and read the handshake (retry + connected).
pub fn subscribe_ready(addr: SocketAddr, target: &str) -> SseStream {
    let mut s = subscribe(addr, target);
    s.handshake();
    s
}

impl SseStream {
    /// Send `GET target` with `headers` on `stream` and read the 200 response head.
    pub fn open(stream: TcpStream, target: &str, headers: &[(&str, &str)]) -> SseStream {
        SseStream::try_open(stream, target, headers)
            .unwrap_or_else(|resp| panic!("subscribe {target}: {} {}", resp.status, resp.text()))
    }

    /// Like [`SseStream::open`], but a non-200 answer is returned (complete, with its body).
    pub fn try_open(
        stream: TcpStream,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<SseStream, Response> {
        SseStream::try_open_with(stream, target, headers, Duration::ZERO)
    }

    /// Open, waiting `pause` after the request before reading anything (a slow client).
    pub fn open_paused(
        stream: TcpStream,
        target: &str,
        headers: &[(&str, &str)],
        pause: Duration,
    ) -> SseStream {
        SseStream::try_open_with(stream, target, headers, pause)
            .unwrap_or_else(|resp| panic!("subscribe {target}: {} {}", resp.status, resp.text()))
    }

    fn try_open_with(
        mut stream: TcpStream,
        target: &str,
        headers: &[(&str, &str)],
        pause: Duration,
    ) -> Result<SseStream, Response> {
        let mut req =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .unwrap_or_else(|e| panic!("write subscribe request: {e}"));
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if let Err(end) = read_some(&mut stream, &mut buf, deadline) {
                panic!(
                    "subscribe {target}: no response head ({end:?}): {:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
        };
        if !buf.starts_with(b"HTTP/1.1 200 ") {
            let mut conn = Conn { stream, buf };
            return Err(conn.read_response());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf[..head_end]) {
            Ok(httparse::Status::Complete(_)) => {}
            other => panic!(
                "subscribe {target}: bad response head {other:?}: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
        let head = Response {
            status: parsed.code.unwrap_or(0),
            reason: parsed.reason.unwrap_or_default().to_string(),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
        };
        let mut parser = BlockParser::default();
        parser.feed(&buf[head_end..]);
        Ok(SseStream {
            stream,
            head,
            parser,
        })
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    pub fn into_tcp(self) -> TcpStream {
        self.stream
    }

    /// The next block (comments included) within `timeout`.
    pub fn next_block(&mut self, timeout: Duration) -> Result<Block, End> {
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        loop {
            if let Some(block) = self.parser.next_block() {
                return Ok(block);
            }
            buf.clear();
            read_some(&mut self.stream, &mut buf, deadline)?;
            self.parser.feed(&buf);
        }
    }

    /// The next block that is not only comments (heartbeats are skipped).
    pub fn next_event(&mut self, timeout: Duration) -> Result<Block, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let block = self.next_block(deadline.saturating_duration_since(Instant::now()))?;
            if !block.is_comment() {
                return Ok(block);
            }
        }
    }

    /// The next event; panics with `what` if none arrives within [`IO_TIMEOUT`].
    pub fn expect_event(&mut self, what: &str) -> Block {
        self.next_event(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("{what}: no event ({end:?})"))
    }

    /// `n` events, each within [`IO_TIMEOUT`] of the previous one.
    pub fn events(&mut self, n: usize) -> Vec<Block> {
        (0..n)
            .map(|i| {
                self.next_event(IO_TIMEOUT)
                    .unwrap_or_else(|end| panic!("event {} of {n}: {end:?}", i + 1))
            })
            .collect()
    }

    /// Read the `retry:` hint and the `connected` event that open every stream, checking their
    /// shape: no `id:` line, data `{"clientId":"…","timestamp":<ms>}`.
    pub fn handshake(&mut self) -> Handshake {
        let mut blocks = Vec::new();
        let mut retry = None;
        loop {
            let block = self
                .next_block(IO_TIMEOUT)
                .unwrap_or_else(|end| panic!("handshake: {end:?} after {blocks:?}"));
            blocks.push(block.clone());
            if block.event() == Some("connected") {
                assert_eq!(
                    block.id(),
                    None,
                    "connected event carries an id: {:?}",
                    block.raw
                );
                let data = block.json();
                let client_id = data["clientId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no clientId: {data}"))
                    .to_string();
                assert!(!client_id.is_empty(), "empty clientId");
                let timestamp = data["timestamp"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no numeric timestamp: {data}"));
                assert_eq!(
                    data.as_object().map(|o| o.len()),
                    Some(2),
                    "unexpected fields in {data}"
                );
                retry = block.retry().or(retry);
                return Handshake {
                    retry,
                    client_id,
                    timestamp,
                    blocks,
                };
            }
            assert!(
                block.fields.iter().all(|(n, _)| n == "retry"),
                "before `connected` only a retry hint is expected, got {:?}",
                block.raw
            );
            retry = block.retry().or(retry);
        }
    }

    /// Read everything until the server closes (or `timeout`): the blocks and how it ended.
    pub fn read_to_end(&mut self, timeout: Duration) -> (Vec<Block>, End) {
        let deadline = Instant::now() + timeout;
        let mut blocks = Vec::new();
        loop {
            match self.next_block(deadline.saturating_duration_since(Instant::now())) {
                Ok(b) => blocks.push(b),
                Err(end) => return (blocks, end),
            }
        }
    }

    /// Bytes received after the last complete block.
    pub fn pending(&self) -> &[u8] {
        self.parser.pending()
    }
}

/// The JSON body of a publish of one event.
pub fn event_json(channel: &str, event_type: Option<&str>, data: &serde_json::Value) -> String {
    let mut obj = serde_json::json!({ "channel": channel, "data": data });
    if let Some(t) = event_type {
        obj["eventType"] = serde_json::Value::String(t.to_string());
    }
    obj.to_string()
}
