//! The load generator's verdicts can be trusted: `pushcore bench` (the real binary) runs
//! against a scripted SSE server written here, which answers publishes with 200 and streams
//! the published payloads back in a crafted order, framing and line ending. Each row states
//! the exact counts the JSON line must carry.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Which events a subscribe request gets, and when.
#[derive(Clone, Debug)]
enum Order {
    /// These sequence numbers, each sent as soon as it has been published.
    Seqs(Vec<u64>),
    /// Every published event from the resume point on (Last-Event-ID header or `lastEventId`
    /// query parameter, ids `e<seq>`), as the replay check expects from a server.
    Live(Resume),
}

/// How a server answers a resume.
#[derive(Clone, Copy, Debug)]
enum Resume {
    Honest,
    /// Leaves this event out.
    Skip(u64),
    /// Sends `event: reset` first (history lost), then the events.
    Reset,
    /// Ignores the id and starts from the first event.
    FromStart,
}

/// How the scripted server answers a subscribe request.
#[derive(Clone, Debug)]
struct Script {
    status: u16,
    /// Transfer-Encoding: chunked with chunks of this many body bytes.
    chunked: Option<usize>,
    line_end: &'static str,
    /// Bytes per write (head included), each flushed alone on a no-delay socket.
    piece: usize,
    /// Sent before the events (written with "\n", sent with `line_end`).
    preamble: &'static str,
    order: Order,
    /// Close the stream after this many events (otherwise it stays open after the last).
    close_after: Option<usize>,
}

const PREAMBLE: &str = ": hello\n\nretry: 2000\n\nevent: connected\ndata: {}\n\n";

fn script(order: Order) -> Script {
    Script {
        status: 200,
        chunked: None,
        line_end: "\n",
        piece: usize::MAX,
        preamble: PREAMBLE,
        order,
        close_after: None,
    }
}

fn seqs(s: &[u64]) -> Order {
    Order::Seqs(s.to_vec())
}

/// What the server has seen.
#[derive(Debug, Default)]
struct Seen {
    /// Published payloads by sequence number.
    published: HashMap<u64, String>,
    /// Resume ids received: ("header" | "query", id).
    resumes: Vec<(String, String)>,
}

struct Shared {
    seen: Mutex<Seen>,
    published: Condvar,
    stop: AtomicBool,
}

/// A scripted SSE server on 127.0.0.1:0; it stops when dropped.
struct Server {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    /// Connections this server accepted (subscribers and publishers).
    accepted: Arc<std::sync::atomic::AtomicU64>,
}

impl Server {
    fn start(script: Script) -> Server {
        Server::start_with(
            script,
            Arc::new(Shared {
                seen: Mutex::new(Seen::default()),
                published: Condvar::new(),
                stop: AtomicBool::new(false),
            }),
        )
    }

    /// Another instance of `other`'s cluster: it streams what was published on either.
    fn joining(script: Script, other: &Server) -> Server {
        Server::start_with(script, Arc::clone(&other.shared))
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn start_with(script: Script, shared: Arc<Shared>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"))
            .port();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let s = Arc::clone(&shared);
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = Arc::clone(&accepted);
        let acceptor = std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let (s, script) = (Arc::clone(&s), script.clone());
                        std::thread::spawn(move || serve(conn, &script, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            shared,
            acceptor: Some(acceptor),
            accepted,
        }
    }

    fn resumes(&self) -> Vec<(String, String)> {
        self.shared
            .seen
            .lock()
            .map(|s| s.resumes.clone())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.published.notify_all();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// A request head, header names lower-cased.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

/// Read one request head; the bytes after it stay in `buf`.
fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = head.lines();
            let mut first = lines.next()?.split_whitespace();
            let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            return Some(Head {
                method,
                target,
                headers,
            });
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn serve(mut conn: TcpStream, script: &Script, shared: &Shared) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    while let Some(Head {
        method,
        target,
        headers,
    }) = read_head(&mut conn, &mut buf)
    {
        if method == "POST" {
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                let mut chunk = [0u8; 4096];
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body: Vec<u8> = buf.drain(..len).collect();
            let payload = String::from_utf8_lossy(&body).into_owned();
            if let Some(seq) = field(&payload, "seq") {
                if let Ok(mut seen) = shared.seen.lock() {
                    seen.published.insert(seq, payload);
                }
                shared.published.notify_all();
            }
            let ok =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
            if conn.write_all(ok).is_err() {
                return;
            }
            continue;
        }
        let header_id = headers
            .iter()
            .find(|(k, _)| k == "last-event-id")
            .map(|(_, v)| ("header".to_string(), v.clone()));
        let query_id = target.split_once("lastEventId=").map(|(_, v)| {
            (
                "query".to_string(),
                v.split('&').next().unwrap_or("").to_string(),
            )
        });
        let resume = header_id.or(query_id);
        if let (Some(r), Ok(mut seen)) = (&resume, shared.seen.lock()) {
            seen.resumes.push(r.clone());
        }
        let resume_seq = resume.and_then(|(_, id)| id.strip_prefix('e')?.parse::<u64>().ok());
        stream(&mut conn, script, shared, resume_seq);
        return;
    }
}

/// `"key":<digits>` in a JSON text.
fn field(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let rest = &text[text.find(&pat)? + pat.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Answer a subscribe request per the script.
fn stream(conn: &mut TcpStream, script: &Script, shared: &Shared, resume_seq: Option<u64>) {
    if script.status != 200 {
        let head = format!(
            "HTTP/1.1 {} Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            script.status
        );
        let _ = conn.write_all(head.as_bytes());
        return;
    }
    let mut out = Writer {
        conn,
        script,
        head: Some(if script.chunked.is_some() {
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        }),
    };
    let mut preamble = script.preamble.to_string();
    let mut order: Box<dyn Iterator<Item = u64>> = match &script.order {
        Order::Seqs(v) => Box::new(v.clone().into_iter()),
        Order::Live(resume) => {
            let from = resume_seq.map_or(0, |s| s + 1);
            match *resume {
                Resume::Honest => Box::new(from..),
                Resume::Skip(skip) => Box::new((from..).filter(move |s| *s != skip)),
                Resume::Reset => {
                    if resume_seq.is_some() {
                        preamble.push_str("event: reset\ndata: {}\n\n");
                    }
                    Box::new(from..)
                }
                Resume::FromStart => Box::new(0..),
            }
        }
    };
    if !out.send(&preamble) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for k in 0.. {
        if script.close_after == Some(k) {
            break;
        }
        let Some(seq) = order.next() else { break };
        let Ok(mut seen) = shared.seen.lock() else {
            return;
        };
        let payload = loop {
            if let Some(p) = seen.published.get(&seq) {
                break p.clone();
            }
            if shared.stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return;
            }
            seen = match shared
                .published
                .wait_timeout(seen, Duration::from_millis(50))
            {
                Ok((s, _)) => s,
                Err(_) => return,
            };
        };
        drop(seen);
        if !out.send(&format!("id: e{seq}\ndata: {payload}\n\n")) {
            return;
        }
    }
    if script.close_after.is_none() {
        // Hold the stream open, as a server would, until the client goes.
        let _ = out.conn.set_read_timeout(Some(Duration::from_millis(50)));
        let mut sink = [0u8; 256];
        while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match out.conn.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }
    out.finish();
}

/// Writes SSE text with the script's line ending, framing and write size.
struct Writer<'a> {
    conn: &'a mut TcpStream,
    script: &'a Script,
    head: Option<&'static str>,
}

impl Writer<'_> {
    fn send(&mut self, sse: &str) -> bool {
        let body = sse.replace('\n', self.script.line_end);
        let mut wire = self.head.take().unwrap_or_default().as_bytes().to_vec();
        match self.script.chunked {
            Some(size) => {
                for chunk in body.as_bytes().chunks(size) {
                    wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    wire.extend_from_slice(chunk);
                    wire.extend_from_slice(b"\r\n");
                }
            }
            None => wire.extend_from_slice(body.as_bytes()),
        }
        self.write(&wire)
    }

    fn write(&mut self, wire: &[u8]) -> bool {
        for piece in wire.chunks(self.script.piece.max(1)) {
            if self
                .conn
                .write_all(piece)
                .and_then(|_| self.conn.flush())
                .is_err()
            {
                return false;
            }
            if self.script.piece < 64 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    }

    /// End the stream: the last chunk, then close.
    fn finish(&mut self) {
        if self.script.chunked.is_some() {
            self.write(b"0\r\n\r\n");
        }
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
    }
}

/// A finished `pushcore bench` run.
struct Run {
    code: Option<i32>,
    /// The last line of stdout, parsed.
    json: Value,
    last_line: String,
    stderr: String,
}

/// Run `pushcore bench <args>` against `server`; the run must end by itself within 60 s.
fn bench(server: &Server, scenario: &str, args: &[&str]) -> Run {
    bench_on(&[server], server, scenario, args)
}

/// Run `pushcore bench <args>` with one `--sub-url` per server of `subs`, publishing to
/// `publisher`.
fn bench_on(subs: &[&Server], publisher: &Server, scenario: &str, args: &[&str]) -> Run {
    let mut urls = Vec::new();
    for server in subs {
        urls.push("--sub-url".to_string());
        urls.push(format!(
            "http://127.0.0.1:{}/sub?ch={{channel}}",
            server.port
        ));
    }
    let publish = format!("http://127.0.0.1:{}/pub/{{channel}}", publisher.port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushcore"))
        .args(["bench", scenario])
        .args(&urls)
        .args(["--pub-url", &publish])
        .args(["--pub-body", "{payload}", "--channel", "t"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run pushcore: {e}"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pushcore bench {scenario} {args:?} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let last_line = stdout.lines().last().unwrap_or_default().to_string();
    Run {
        code: status.code(),
        json: serde_json::from_str(&last_line).unwrap_or(Value::Null),
        last_line,
        stderr,
    }
}

/// The named fields of a JSON object.
fn pick(v: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), v.get(*k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

const FANOUT: [&str; 10] = [
    "--conns",
    "3",
    "--events",
    "6",
    "--rate",
    "200",
    "--timeout",
    "5",
    "--payload-bytes",
    "80",
];

const VERDICT: [&str; 10] = [
    "expected",
    "delivered",
    "lost",
    "duplicates",
    "out_of_order",
    "unexpected",
    "opened",
    "failed",
    "heartbeats",
    "passed",
];

/// The counts a fanout of 3 subscribers × 6 events must report, in the JSON line's words.
#[derive(Clone, Copy)]
struct Counts {
    delivered: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
    opened: u64,
    failed: u64,
    heartbeats: u64,
}

/// Every event to every subscriber, one heartbeat comment each.
const ALL: Counts = Counts {
    delivered: 18,
    lost: 0,
    duplicates: 0,
    out_of_order: 0,
    unexpected: 0,
    opened: 3,
    failed: 0,
    heartbeats: 3,
};

/// One fanout case: the server's script, extra flags, the verdict, the exit code, and a text
/// the JSON line's errors must contain.
struct Row {
    name: &'static str,
    script: Script,
    flags: &'static [&'static str],
    counts: Counts,
    code: i32,
    error: &'static str,
}

fn row(name: &'static str, script: Script, counts: Counts) -> Row {
    Row {
        name,
        script,
        flags: &[],
        counts,
        code: if counts.pass() { 0 } else { 1 },
        error: "",
    }
}

impl Counts {
    fn pass(&self) -> bool {
        self.delivered == 18 && self.duplicates + self.out_of_order + self.unexpected == 0
    }

    fn json(&self) -> Value {
        json!({
            "expected": 18, "delivered": self.delivered, "lost": self.lost,
            "duplicates": self.duplicates, "out_of_order": self.out_of_order,
            "unexpected": self.unexpected, "opened": self.opened, "failed": self.failed,
            "heartbeats": self.heartbeats, "passed": self.pass(),
        })
    }
}

/// Run rows in parallel (each has its own server) and report every mismatch at once.
fn check_rows(rows: Vec<Row>) {
    let handles: Vec<_> = rows
        .into_iter()
        .map(|row| {
            std::thread::spawn(move || {
                let server = Server::start(row.script);
                let args = [&FANOUT[..], row.flags].concat();
                let run = bench(&server, "fanout", &args);
                let (got, want) = (pick(&run.json, &VERDICT), row.counts.json());
                let errors = run.json["errors"].to_string();
                let mut problems = Vec::new();
                if got != want {
                    problems.push(format!("verdict {got} ≠ {want}"));
                }
                if run.code != Some(row.code) {
                    problems.push(format!("exit {:?} ≠ {}", run.code, row.code));
                }
                if !errors.contains(row.error) {
                    problems.push(format!("errors {errors} lack {:?}", row.error));
                }
                if run.json["publish_errors"] != json!(0) {
                    problems.push(format!("publish errors: {}", run.json["publish_errors"]));
                }
                if run.json["generator_cpu_share"].as_f64().is_none() {
                    problems.push("no generator_cpu_share".into());
                }
                if !problems.is_empty() {
                    problems.push(format!("stderr: {}", run.stderr));
                }
                (row.name, problems)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok((_, p)) if p.is_empty() => {}
            Ok((name, p)) => failures.push(format!("{name}: {}", p.join("; "))),
            Err(_) => failures.push("a row panicked".into()),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn in_order() -> Script {
    script(seqs(&[0, 1, 2, 3, 4, 5]))
}

#[test]
fn fanout_counts_loss_duplicates_and_reordering_exactly() {
    check_rows(vec![
        row("in order", in_order(), ALL),
        row(
            "one missing",
            script(seqs(&[0, 1, 2, 4, 5])),
            Counts {
                delivered: 15,
                lost: 3,
                ..ALL
            },
        ),
        row(
            "one duplicated",
            script(seqs(&[0, 1, 2, 2, 3, 4, 5])),
            Counts {
                duplicates: 3,
                ..ALL
            },
        ),
        row(
            "two swapped",
            script(seqs(&[0, 1, 3, 2, 4, 5])),
            Counts {
                out_of_order: 3,
                ..ALL
            },
        ),
        row(
            "missing, duplicated and swapped",
            script(seqs(&[0, 2, 1, 1, 4, 5])),
            Counts {
                delivered: 15,
                lost: 3,
                duplicates: 3,
                out_of_order: 3,
                ..ALL
            },
        ),
        row(
            "a sequence number never published",
            Script {
                preamble: ": hello\n\ndata: {\"seq\":99,\"ts\":1}\n\n",
                ..in_order()
            },
            Counts {
                unexpected: 3,
                ..ALL
            },
        ),
        Row {
            error: "503",
            ..row(
                "refused with 503",
                Script {
                    status: 503,
                    ..in_order()
                },
                Counts {
                    delivered: 0,
                    lost: 18,
                    opened: 0,
                    failed: 3,
                    heartbeats: 0,
                    ..ALL
                },
            )
        },
        Row {
            error: "stream closed",
            ..row(
                "closed after two events",
                Script {
                    close_after: Some(2),
                    ..in_order()
                },
                Counts {
                    delivered: 6,
                    lost: 12,
                    failed: 3,
                    ..ALL
                },
            )
        },
        Row {
            flags: &["--procs", "2"],
            ..row(
                "split over two processes, one missing",
                script(seqs(&[0, 1, 2, 3, 5])),
                Counts {
                    delivered: 15,
                    lost: 3,
                    ..ALL
                },
            )
        },
    ]);
}

#[test]
fn fanout_reads_every_framing_and_line_ending() {
    check_rows(vec![
        row(
            "chunked, chunks split by writes",
            Script {
                chunked: Some(11),
                piece: 5,
                ..in_order()
            },
            ALL,
        ),
        row(
            "chunked, one chunk per write",
            Script {
                chunked: Some(4096),
                ..in_order()
            },
            ALL,
        ),
        row(
            "CRLF line endings",
            Script {
                line_end: "\r\n",
                piece: 3,
                ..in_order()
            },
            ALL,
        ),
        row(
            "CR line endings",
            Script {
                line_end: "\r",
                piece: 3,
                ..in_order()
            },
            ALL,
        ),
        row(
            "CRLF split between writes and chunks",
            Script {
                line_end: "\r\n",
                piece: 2,
                chunked: Some(7),
                ..in_order()
            },
            ALL,
        ),
        row(
            "one byte per write",
            Script {
                piece: 1,
                ..in_order()
            },
            ALL,
        ),
        Row {
            flags: &["--threads", "2", "--procs", "2"],
            ..row("two threads in each of two processes", in_order(), ALL)
        },
    ]);
}

const REPLAY: [&str; 6] = ["--before", "2", "--events", "3", "--timeout", "4"];

#[test]
fn replay_passes_only_when_exactly_the_missed_events_arrive() {
    // Name, server behaviour, --resume-with, verdict, exit code, how the server saw the id.
    type Case = (&'static str, Resume, &'static str, Value, i32, &'static str);
    let rows: Vec<Case> = vec![
        (
            "honest, Last-Event-ID header",
            Resume::Honest,
            "header",
            json!({"received": [2, 3, 4], "reset": false, "passed": true, "resumed_from": "e1", "error": null}),
            0,
            "header",
        ),
        (
            "honest, lastEventId query parameter",
            Resume::Honest,
            "lastEventId",
            json!({"received": [2, 3, 4], "reset": false, "passed": true, "resumed_from": "e1", "error": null}),
            0,
            "query",
        ),
        (
            "one missed event left out",
            Resume::Skip(3),
            "header",
            json!({"received": [2, 4], "reset": false, "passed": false, "resumed_from": "e1", "error": "timed out"}),
            1,
            "header",
        ),
        (
            "history reset",
            Resume::Reset,
            "header",
            json!({"received": [2, 3, 4], "reset": true, "passed": false, "resumed_from": "e1", "error": null}),
            1,
            "header",
        ),
        (
            "id ignored, replayed from the start",
            Resume::FromStart,
            "header",
            json!({"received": [0, 1, 2], "reset": false, "passed": false, "resumed_from": "e1", "error": null}),
            1,
            "header",
        ),
    ];
    let handles: Vec<_> = rows
        .into_iter()
        .map(|(name, resume, with, want, code, sent_as)| {
            std::thread::spawn(move || {
                let server = Server::start(script(Order::Live(resume)));
                let mut args = REPLAY.to_vec();
                args.extend_from_slice(&["--resume-with", with]);
                let run = bench(&server, "replay", &args);
                let got = pick(
                    &run.json,
                    &["received", "reset", "passed", "resumed_from", "error"],
                );
                let mut problems = Vec::new();
                if got != want {
                    problems.push(format!("verdict {got} ≠ {want}"));
                }
                if run.code != Some(code) {
                    problems.push(format!("exit {:?} ≠ {code}", run.code));
                }
                let resumes = server.resumes();
                if resumes != vec![(sent_as.to_string(), "e1".to_string())] {
                    problems.push(format!("the server saw resumes {resumes:?}"));
                }
                if run.json["generator_cpu_share"].as_f64().is_none() {
                    problems.push("no generator_cpu_share".into());
                }
                if !problems.is_empty() {
                    problems.push(format!("stderr: {}", run.stderr));
                }
                (name, problems)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok((_, p)) if p.is_empty() => {}
            Ok((name, p)) => failures.push(format!("{name}: {}", p.join("; "))),
            Err(_) => failures.push("a row panicked".into()),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const STORM: [&str; 10] = [
    "--conns",
    "4",
    "--before",
    "2",
    "--events",
    "3",
    "--rate",
    "200",
    "--timeout",
    "5",
];

#[test]
fn storm_passes_only_when_every_subscriber_gets_exactly_the_missed_events() {
    // Name, server behaviour, --spread-ms, verdict, exit code.
    type Case = (&'static str, Resume, &'static str, Value, i32);
    let verdict = |resumed: u64, lost: u64, resets: u64, unexpected: u64, passed: bool| {
        json!({"resumed": resumed, "lost": lost, "resets": resets, "unexpected": unexpected,
               "duplicates": 0, "out_of_order": 0, "passed": passed})
    };
    let rows: Vec<Case> = vec![
        (
            "honest, all at once",
            Resume::Honest,
            "0",
            verdict(4, 0, 0, 0, true),
            0,
        ),
        (
            "honest, spread",
            Resume::Honest,
            "300",
            verdict(4, 0, 0, 0, true),
            0,
        ),
        (
            "one missed event left out",
            Resume::Skip(3),
            "0",
            verdict(0, 4, 0, 0, false),
            1,
        ),
        (
            "history reset",
            Resume::Reset,
            "0",
            verdict(4, 0, 4, 0, false),
            1,
        ),
        (
            "id ignored",
            Resume::FromStart,
            "0",
            verdict(4, 0, 0, 8, false),
            1,
        ),
    ];
    let handles: Vec<_> = rows
        .into_iter()
        .map(|(name, resume, spread, want, code)| {
            std::thread::spawn(move || {
                let server = Server::start(script(Order::Live(resume)));
                let mut args = STORM.to_vec();
                args.extend_from_slice(&["--spread-ms", spread]);
                let run = bench(&server, "storm", &args);
                let got = pick(
                    &run.json,
                    &[
                        "resumed",
                        "lost",
                        "resets",
                        "unexpected",
                        "duplicates",
                        "out_of_order",
                        "passed",
                    ],
                );
                let mut problems = Vec::new();
                if got != want {
                    problems.push(format!("verdict {got} ≠ {want}"));
                }
                if run.code != Some(code) {
                    problems.push(format!("exit {:?} ≠ {code}", run.code));
                }
                let resumes = server.resumes();
                if resumes != vec![("header".to_string(), "e1".to_string()); 4] {
                    problems.push(format!("the server saw resumes {resumes:?}"));
                }
                if !problems.is_empty() {
                    problems.push(format!("stderr: {}", run.stderr));
                }
                (name, problems)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok((_, p)) if p.is_empty() => {}
            Ok((name, p)) => failures.push(format!("{name}: {}", p.join("; "))),
            Err(_) => failures.push("a row panicked".into()),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn idle_and_churn_report_opens_and_generator_cpu() {
    let server = Server::start(script(Order::Live(Resume::Honest)));
    for extra in [&["--procs", "1"][..], &["--procs", "2"][..]] {
        let mut args = vec!["--conns", "5", "--hold", "0", "--timeout", "10"];
        args.extend_from_slice(extra);
        let run = bench(&server, "idle", &args);
        assert_eq!(
            pick(&run.json, &["conns", "opened", "failed", "passed"]),
            json!({"conns": 5, "opened": 5, "failed": 0, "passed": true}),
            "{extra:?}: {}",
            run.stderr
        );
        assert!(run.json["generator_cpu_share"].as_f64().is_some());
        assert_eq!(run.code, Some(0));
    }
    // Churn: the server answers the head and hangs up.
    let server = Server::start(Script {
        close_after: Some(0),
        preamble: "",
        ..script(seqs(&[]))
    });
    let run = bench(
        &server,
        "churn",
        &["--concurrency", "2", "--duration", "1", "--timeout", "10"],
    );
    assert_eq!(run.json["errors"], json!(0), "{}", run.stderr);
    assert!(run.json["opens"].as_u64().is_some_and(|n| n > 0));
    assert!(run.json["generator_cpu_share"].as_f64().is_some());
    assert_eq!(run.code, Some(0));
}

#[test]
fn reports_are_svg_html_or_the_json_line() {
    let server = Server::start(script(seqs(&[0, 1, 2, 3, 4, 5])));
    let dir = std::env::temp_dir().join(format!("pushcore-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();

    let run = bench(
        &server,
        "fanout",
        &[&FANOUT[..], &["--report", &path("r.svg")]].concat(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let svg = read("r.svg");
    assert!(svg.starts_with("<svg "), "{svg:.200}");
    assert!(svg.contains("Latency by percentile") && svg.contains("Deliveries per second"));
    assert!(svg.contains("<polyline") && svg.trim_end().ends_with("</svg>"));
    // stderr is not a terminal: no progress bar.
    assert_eq!(run.stderr, "");

    let run = bench(
        &server,
        "fanout",
        &[&FANOUT[..], &["--report", &path("r.html")]].concat(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let html = read("r.html");
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg "));
    assert!(html.contains(&run.last_line.replace('"', "&quot;")));

    let run = bench(
        &server,
        "fanout",
        &[&FANOUT[..], &["--report", &path("r.json")]].concat(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(read("r.json"), format!("{}\n", run.last_line));
    assert_eq!(run.json["scenario"], json!("fanout"));

    let run = bench(
        &server,
        "fanout",
        &[&FANOUT[..], &["--report", &path("r.txt")]].concat(),
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--report"), "{}", run.stderr);
    assert!(!dir.join("r.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn too_many_connections_for_one_process_ask_for_procs() {
    let server = Server::start(script(seqs(&[])));
    let run = bench(&server, "idle", &["--conns", "10000000", "--timeout", "5"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--procs"), "{}", run.stderr);
    let run = bench(&server, "replay", &["--procs", "2", "--timeout", "5"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("--procs applies to idle and fanout"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_cluster_spreads_subscribers_and_keeps_verdicts_across_instances() {
    // Two instances of one cluster: each streams what was published on either, same ids.
    let a = Server::start(script(Order::Live(Resume::Honest)));
    let b = Server::joining(script(Order::Live(Resume::Honest)), &a);
    let fanout = [
        "--conns",
        "6",
        "--events",
        "5",
        "--rate",
        "200",
        "--timeout",
    ];
    let run = bench_on(&[&a, &b], &a, "fanout", &[&fanout[..], &["20"]].concat());
    let verdict = [
        "expected",
        "delivered",
        "lost",
        "duplicates",
        "out_of_order",
        "passed",
    ];
    assert_eq!(
        pick(&run.json, &verdict),
        json!({"expected": 30, "delivered": 30, "lost": 0, "duplicates": 0, "out_of_order": 0, "passed": true}),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, Some(0));
    // Round-robin: three subscribers on each; the publisher's connection on A.
    assert_eq!((a.accepted(), b.accepted()), (4, 3));

    // An instance that drops an event fails the run: its three subscribers lose it.
    let a = Server::start(script(Order::Live(Resume::Honest)));
    let b = Server::joining(script(seqs(&[0, 1, 2, 4])), &a);
    let run = bench_on(&[&a, &b], &a, "fanout", &[&fanout[..], &["4"]].concat());
    assert_eq!(
        pick(&run.json, &verdict),
        json!({"expected": 30, "delivered": 27, "lost": 3, "duplicates": 0, "out_of_order": 0, "passed": false}),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, Some(1));

    // Replay: cut from A, resumed on B.
    let a = Server::start(script(Order::Live(Resume::Honest)));
    let b = Server::joining(script(Order::Live(Resume::Honest)), &a);
    let run = bench_on(&[&a, &b], &a, "replay", &REPLAY);
    assert_eq!(
        pick(&run.json, &["received", "reset", "passed", "resumed_from"]),
        json!({"received": [2, 3, 4], "reset": false, "passed": true, "resumed_from": "e1"}),
        "{}",
        run.stderr
    );
    // A: the first subscription and the publisher; B: the resumed one.
    assert_eq!((a.accepted(), b.accepted()), (2, 1));
}

#[test]
fn publish_counts_acknowledged_events_in_batches() {
    let a = Server::start(script(Order::Live(Resume::Honest)));
    let args = [
        "--concurrency",
        "2",
        "--batch",
        "10",
        "--duration",
        "1",
        "--timeout",
        "10",
    ];
    let run = bench(&a, "publish", &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let events = run.json["events"].as_u64().unwrap_or(0);
    assert!(events > 0 && events.is_multiple_of(10), "{}", run.last_line);
    assert_eq!(
        pick(&run.json, &["errors", "batch", "publishers", "passed"]),
        json!({"errors": 0, "batch": 10, "publishers": 2, "passed": true})
    );
    // Two keep-alive publishers: two connections; every request carried 10 events (the server
    // keeps the first sequence number of each body, so it saw one per 10 acknowledged).
    assert_eq!(a.accepted(), 2);
    let requests = a.shared.seen.lock().map(|s| s.published.len()).unwrap_or(0) as u64;
    assert_eq!(requests * 10, events);
    for bad in [
        &["--batch", "0"][..],
        &["--batch", "1001"][..],
        &["--concurrency", "0"][..],
    ] {
        let run = bench(&a, "publish", bad);
        assert_eq!(run.code, Some(2), "{bad:?}: {}", run.stderr);
    }
}
