//! `--gzip`: a subscriber that sends `Accept-Encoding: gzip` gets `Content-Encoding: gzip`, each
//! event one segment compressed once and shared: two gzip subscribers receive identical event
//! bytes; every event is decodable as soon as its segment arrives (curl `--compressed` shows it
//! before the next is published); replay and heartbeats work compressed; without the flag, or
//! without the header, the stream is plain.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use flate2::{Decompress, FlushDecompress};
use serde_json::json;

/// A raw gzip subscriber: the response head, then the body bytes as they arrive, inflated.
struct GzipStream {
    tcp: TcpStream,
    head: String,
    body: Vec<u8>,
    inflater: Decompress,
    consumed: usize,
    text: String,
}

impl GzipStream {
    fn open(addr: std::net::SocketAddr, target: &str, accept: &str) -> GzipStream {
        let mut tcp = connect(addr);
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        write!(
            tcp,
            "GET {target} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAccept-Encoding: {accept}\r\n\r\n"
        )
        .expect("send");
        let mut s = GzipStream {
            tcp,
            head: String::new(),
            body: Vec::new(),
            inflater: Decompress::new(false),
            consumed: 0,
            text: String::new(),
        };
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut raw = Vec::new();
        loop {
            s.read_some(&mut raw);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                s.head = String::from_utf8_lossy(&raw[..end]).into_owned();
                s.body = raw[end + 4..].to_vec();
                return s;
            }
            assert!(Instant::now() < deadline, "no response head");
        }
    }

    fn gzip(&self) -> bool {
        self.head
            .to_ascii_lowercase()
            .contains("content-encoding: gzip")
    }

    fn read_some(&mut self, into: &mut Vec<u8>) {
        let mut buf = [0u8; 16 * 1024];
        match self.tcp.read(&mut buf) {
            Ok(0) => panic!("the server closed the stream"),
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Inflate what has arrived (after the 10-byte gzip header) into `text`.
    fn inflate(&mut self) {
        if self.consumed == 0 {
            if self.body.len() < 10 {
                return;
            }
            assert_eq!(&self.body[..3], &[0x1f, 0x8b, 0x08], "not a gzip header");
            self.consumed = 10;
        }
        let mut out = vec![0u8; 256 * 1024];
        let before_in = self.inflater.total_in();
        let before_out = self.inflater.total_out();
        self.inflater
            .decompress(&self.body[self.consumed..], &mut out, FlushDecompress::Sync)
            .expect("a valid deflate stream");
        self.consumed += (self.inflater.total_in() - before_in) as usize;
        let produced = (self.inflater.total_out() - before_out) as usize;
        self.text
            .push_str(&String::from_utf8_lossy(&out[..produced]));
    }

    /// Read until the decoded text contains `needle` (bounded).
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            self.inflate();
            if self.text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not in {:?}",
                self.text
            );
            let mut more = Vec::new();
            self.read_some(&mut more);
            self.body.extend_from_slice(&more);
        }
    }

    /// The body after this stream's own first segment (the stored block with retry+connected).
    fn event_bytes(&self) -> &[u8] {
        assert_eq!(self.body[10], 0x00, "the first segment is a stored block");
        let len = u16::from_le_bytes([self.body[11], self.body[12]]) as usize;
        &self.body[10 + 5 + len..]
    }
}

fn big(n: usize) -> serde_json::Value {
    json!({ "n": n, "text": "pushcore event ".repeat(80) })
}

fn two_subscribers_share_compressed_events(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--gzip", "--workers", "2"]);
    let addr = server.addr();
    let mut a = GzipStream::open(addr, "/events/stream?channels=z", "gzip, deflate, br");
    let mut b = GzipStream::open(addr, "/events/stream?channels=z", "gzip");
    assert!(a.gzip() && b.gzip(), "{}\n{}", a.head, b.head);
    assert!(a.head.contains("Vary: Accept-Encoding"));
    a.wait_for("event: connected");
    b.wait_for("event: connected");
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(publish(addr, &event_json("z", None, &big(n))));
        // Decodable as soon as it arrives, before the next one is published.
        a.wait_for(&format!("id: {}", ids[n]));
        b.wait_for(&format!("id: {}", ids[n]));
    }
    assert_eq!(
        a.event_bytes(),
        b.event_bytes(),
        "gzip subscribers got different event bytes"
    );
    // Compressed for real: the events' bytes are well under their text.
    let plain: usize = a
        .text
        .split("\n\n")
        .filter(|b| b.starts_with("id:"))
        .map(|b| b.len() + 2)
        .sum();
    assert!(
        a.event_bytes().len() * 2 < plain,
        "{} compressed vs {plain} plain",
        a.event_bytes().len()
    );
    assert_eq!(server.metrics().get("pushcore_gzip_streams_total"), 2);
}
both_drivers!(two_subscribers_share_compressed_events);

fn replay_and_heartbeats_compressed(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--gzip", "--heartbeat", "1"]);
    let addr = server.addr();
    let ids: Vec<String> = (0..3)
        .map(|n| publish(addr, &event_json("r", None, &big(n))))
        .collect();
    let target = format!("/events/stream?channels=r&lastEventId={}", ids[0]);
    let mut s = GzipStream::open(addr, &target, "gzip");
    assert!(s.gzip());
    s.wait_for(&format!("id: {}", ids[2]));
    assert!(s.text.contains(&format!("id: {}", ids[1])));
    assert!(
        !s.text.contains(&format!("id: {}\n", ids[0])),
        "replayed the resume id itself"
    );
    s.wait_for(": heartbeat");
    // Reset events are compressed too.
    let mut bad = GzipStream::open(addr, "/events/stream?channels=r&lastEventId=junk", "gzip");
    bad.wait_for("event: reset");
}
both_drivers!(replay_and_heartbeats_compressed);

fn plain_without_the_flag_or_the_header(driver: Driver) {
    let off = Server::start_with_driver(driver, &[]);
    let s = GzipStream::open(off.addr(), "/events/stream?channels=p", "gzip");
    assert!(!s.gzip(), "gzip without --gzip: {}", s.head);
    let on = Server::start_with_driver(driver, &["--gzip"]);
    for accept in ["identity", "gzip;q=0", "br"] {
        let s = GzipStream::open(on.addr(), "/events/stream?channels=p", accept);
        assert!(!s.gzip(), "gzip for Accept-Encoding {accept:?}");
    }
}
both_drivers!(plain_without_the_flag_or_the_header);

/// curl's own decoder shows each event as soon as its segment arrives.
#[test]
fn curl_compressed_sees_every_event_promptly() {
    let server = Server::start(&["--gzip"]);
    let addr = server.addr();
    let url = format!("http://{addr}/events/stream?channels=c");
    let mut curl = Command::new("curl")
        .args(["-sN", "--compressed", "-D", "-", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl (installed by .ci/deps)");
    let out = curl.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut saw_gzip = false;
    let next_line = |what: &str| -> String {
        rx.recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("curl printed nothing for {what}"))
    };
    loop {
        let line = next_line("the connected event");
        saw_gzip |= line
            .to_ascii_lowercase()
            .starts_with("content-encoding: gzip");
        if line.starts_with("event: connected") {
            break;
        }
    }
    assert!(saw_gzip, "curl did not get a gzip stream");
    for n in 0..5 {
        let id = publish(addr, &event_json("c", None, &big(n)));
        loop {
            if next_line(&format!("event {n}")) == format!("id: {id}") {
                break;
            }
        }
    }
    let _ = curl.kill();
    let _ = curl.wait();
}
