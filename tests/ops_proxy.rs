//! pushcore behind a real nginx (the Debian package, started by the test on a free loopback
//! port with a configuration made in a temp dir, stopped by its master PID).
//!
//! The `location /events/` block is taken verbatim from the README's deploy guide, so the
//! documented snippet is the one tested: events flow through it unbuffered, and with
//! `--trusted-proxy 127.0.0.1` the per-address limit sees the real client (nginx's
//! `X-Forwarded-For`), not nginx's own 127.0.0.1. Clients get distinct source addresses by
//! binding 127.0.0.2, 127.0.0.3… before they connect.

#[macro_use]
mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// An address nobody listens on right now (bound, then released).
fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    probe.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

/// The nginx binary, if installed (`/usr/sbin` is not on every user's PATH).
fn nginx_binary() -> Option<PathBuf> {
    ["nginx", "/usr/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|bin| {
            Command::new(bin)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The text of the first `{…}` block that starts with `opening` inside the README's nginx
/// snippet, braces balanced, `opening` and the closing brace included.
fn readme_nginx_block(opening: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap_or_else(|e| panic!("read README.md: {e}"));
    let fence = readme
        .find("```nginx\n")
        .unwrap_or_else(|| panic!("README.md has no ```nginx snippet"));
    let snippet = &readme[fence + "```nginx\n".len()..];
    let snippet = &snippet[..snippet
        .find("```")
        .unwrap_or_else(|| panic!("unterminated nginx snippet"))];
    let start = snippet
        .find(opening)
        .unwrap_or_else(|| panic!("the README's nginx snippet has no `{opening}`"));
    let mut depth = 0usize;
    for (i, c) in snippet[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return snippet[start..=start + i].to_string();
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced `{opening}` block in the README's nginx snippet")
}

/// Seconds of an nginx time value such as `1h`, `75s`, `10m` or `60`.
fn nginx_seconds(value: &str) -> u64 {
    let value = value.trim().trim_end_matches(';');
    let (num, unit) =
        value.split_at(value.len() - usize::from(value.ends_with(char::is_alphabetic)));
    let n: u64 = num
        .parse()
        .unwrap_or_else(|e| panic!("nginx time {value:?}: {e}"));
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => panic!("unexpected nginx time unit {other:?} in {value:?}"),
    }
}

/// The value of `directive` in `block` (the first one), without the trailing `;`.
fn directive<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let rest = line.strip_prefix(name)?;
        rest.starts_with(char::is_whitespace)
            .then(|| rest.trim().trim_end_matches(';').trim())
    })
}

/// A subscriber reading through nginx: nginx re-frames the stream for its HTTP/1.1 client with
/// `Transfer-Encoding: chunked`, so the body is de-chunked (as a browser does) before it is
/// split into blocks.
struct ProxiedStream {
    tcp: std::net::TcpStream,
    head: Response,
    chunked: bool,
    /// Raw bytes received and not yet de-chunked.
    raw: Vec<u8>,
    blocks: BlockParser,
}

impl ProxiedStream {
    /// `GET target` on `tcp`; the stream if the answer is 200, else the whole answer.
    fn open(mut tcp: std::net::TcpStream, target: &str) -> Result<ProxiedStream, Response> {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        );
        std::io::Write::write_all(&mut tcp, req.as_bytes())
            .unwrap_or_else(|e| panic!("write subscribe request: {e}"));
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if let Err(end) = read_some(&mut tcp, &mut buf, deadline) {
                panic!("subscribe {target} through nginx: no response head ({end:?})");
            }
        };
        if !buf.starts_with(b"HTTP/1.1 200 ") {
            loop {
                if let Some((resp, _)) = parse_response(&buf) {
                    return Err(resp);
                }
                if let Err(end) = read_some(&mut tcp, &mut buf, deadline) {
                    panic!("subscribe {target} through nginx: incomplete answer ({end:?})");
                }
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        assert!(
            matches!(
                parsed.parse(&buf[..head_end]),
                Ok(httparse::Status::Complete(_))
            ),
            "bad response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
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
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        let mut s = ProxiedStream {
            tcp,
            head,
            chunked,
            raw: buf[head_end..].to_vec(),
            blocks: BlockParser::default(),
        };
        s.dechunk();
        Ok(s)
    }

    /// Move the complete chunks of `raw` into the block parser.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.blocks.feed(&self.raw);
            self.raw.clear();
            return;
        }
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
            let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
            let size = usize::from_str_radix(&size_text, 16)
                .unwrap_or_else(|e| panic!("bad chunk size {size_text:?}: {e}"));
            let need = eol + 2 + size + 2;
            if self.raw.len() < need {
                return;
            }
            assert_eq!(
                &self.raw[need - 2..need],
                b"\r\n",
                "chunk not followed by CRLF"
            );
            let data = self.raw[eol + 2..eol + 2 + size].to_vec();
            self.raw.drain(..need);
            self.blocks.feed(&data);
        }
    }

    /// The next block that is not only comments, within `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Result<Block, End> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(block) = self.blocks.next_block() {
                if !block.is_comment() {
                    return Ok(block);
                }
            }
            read_some(&mut self.tcp, &mut self.raw, deadline)?;
            self.dechunk();
        }
    }

    /// The `retry:` hint and the `connected` event that open every stream.
    fn handshake(&mut self) {
        let connected = self
            .next_event(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("handshake through nginx: {end:?}"));
        let connected = if connected.event() == Some("connected") {
            connected
        } else {
            assert!(
                connected.fields.iter().all(|(n, _)| n == "retry"),
                "before `connected` only a retry hint is expected: {:?}",
                connected.raw
            );
            self.next_event(IO_TIMEOUT)
                .unwrap_or_else(|end| panic!("handshake through nginx: {end:?}"))
        };
        assert_eq!(connected.event(), Some("connected"), "{:?}", connected.raw);
    }
}

/// One nginx master (and its worker), killed by the master's PID on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// nginx on a free loopback port proxying to `upstream` with the README's location block.
    fn start(bin: &Path, upstream: SocketAddr) -> Nginx {
        let location = readme_nginx_block("location /events/ {");
        // What the stream needs from the proxy, as the README says: no buffering, HTTP/1.1
        // upstream, the client address passed on, a read timeout above the heartbeat (30 s).
        assert_eq!(directive(&location, "proxy_buffering"), Some("off"));
        assert_eq!(directive(&location, "proxy_http_version"), Some("1.1"));
        assert_eq!(
            directive(&location, "proxy_set_header X-Forwarded-For"),
            Some("$proxy_add_x_forwarded_for")
        );
        let read_timeout = directive(&location, "proxy_read_timeout")
            .unwrap_or_else(|| panic!("no proxy_read_timeout in {location}"));
        assert!(
            nginx_seconds(read_timeout) > 30,
            "proxy_read_timeout {read_timeout} is not above the 30 s heartbeat"
        );
        assert!(
            location.contains("proxy_pass http://pushcore;"),
            "the README's location does not proxy to the `pushcore` upstream: {location}"
        );
        let upstream_block = readme_nginx_block("upstream pushcore {");
        let keepalive = directive(&upstream_block, "keepalive").unwrap_or("16");

        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pushcore-nginx-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
        let d = dir.display();
        let mut last_err = String::new();
        for _ in 0..4 {
            let addr = free_addr();
            let conf = format!(
                "daemon off;\n\
                 master_process on;\n\
                 worker_processes 1;\n\
                 pid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 access_log off;\n\
                 client_body_temp_path {d}/client_body;\n\
                 proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n\
                 scgi_temp_path {d}/scgi;\n\
                 upstream pushcore {{\n    server {upstream};\n    keepalive {keepalive};\n}}\n\
                 server {{\n\
                 listen {addr};\n\
                 {location}\n\
                 }}\n\
                 }}\n"
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("write nginx.conf: {e}"));
            let mut child = Command::new(bin)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn nginx: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!(
                        "nginx exited ({status}): {}",
                        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                return Nginx { child, addr, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start: {last_err}");
    }

    /// Stop the master (SIGQUIT: graceful), by its PID; kill it if it lingers.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection to `addr` from the loopback source address `from`.
fn connect_from(addr: SocketAddr, from: &str) -> std::net::TcpStream {
    let source: SocketAddr = format!("{from}:0")
        .parse()
        .unwrap_or_else(|e| panic!("{from}: {e}"));
    let tcp = connect_with(addr, |sock| {
        sock.bind(&source.into())
            .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    });
    tcp.set_nodelay(true)
        .unwrap_or_else(|e| panic!("set_nodelay: {e}"));
    tcp
}

/// Publish through `addr` from the source address `from`; asserts 200, returns the id.
fn publish_from(addr: SocketAddr, from: &str, channel: &str, n: u64) -> String {
    let mut conn = Conn::from_stream(connect_from(addr, from));
    conn.send(&publish_request(
        &event_json(channel, None, &json!({ "n": n })),
        false,
    ));
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "publish through nginx: {}", resp.text());
    resp.json()["eventId"]
        .as_str()
        .unwrap_or_else(|| panic!("no eventId: {}", resp.text()))
        .to_string()
}

fn pushcore_behind_nginx(driver: Driver) -> Option<(Server, Nginx)> {
    let Some(bin) = nginx_binary() else {
        eprintln!(
            "SKIPPED: nginx is not installed (apt-get install -y nginx-light; .ci/deps does it)"
        );
        return None;
    };
    let server = Server::start_with_driver(
        driver,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--max-connections-per-ip",
            "1",
        ],
    );
    let nginx = Nginx::start(&bin, server.addr());
    Some((server, nginx))
}

/// Events flow through nginx unbuffered, and the per-address limit counts the real clients.
fn through_nginx(driver: Driver) {
    let Some((server, nginx)) = pushcore_behind_nginx(driver) else {
        return;
    };
    let proxy = nginx.addr;
    let target = "/events/stream?channels=px";
    let mut first = ProxiedStream::open(connect_from(proxy, "127.0.0.2"), target)
        .unwrap_or_else(|r| panic!("subscribe through nginx: {} {}", r.status, r.text()));
    assert!(
        first
            .head
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/event-stream")),
        "{:?}",
        first.head.headers
    );
    first.handshake();

    // Unbuffered: each event reaches the subscriber before the next one is published.
    let mut ids = Vec::new();
    for n in 0..5 {
        let id = publish_from(proxy, "127.0.0.9", "px", n);
        let got = first
            .next_event(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("event {n} did not come through nginx: {end:?}"));
        assert_eq!(got.id(), Some(id.as_str()), "event {n}: {:?}", got.raw);
        assert_eq!(got.json(), json!({ "n": n }));
        ids.push(id);
    }
    assert_increasing(&ids);

    // Another client address: allowed, and served live.
    let mut other = ProxiedStream::open(connect_from(proxy, "127.0.0.3"), target)
        .unwrap_or_else(|r| panic!("subscribe from 127.0.0.3: {} {}", r.status, r.text()));
    other.handshake();
    let id = publish_from(proxy, "127.0.0.9", "px", 5);
    for (who, s) in [("127.0.0.2", &mut first), ("127.0.0.3", &mut other)] {
        let got = s
            .next_event(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("{who}: no event ({end:?})"));
        assert_eq!(got.id(), Some(id.as_str()), "{who}: {:?}", got.raw);
    }

    // A second stream from 127.0.0.2: over its limit of one, although nginx connects to
    // pushcore from 127.0.0.1 for every client.
    let refused = ProxiedStream::open(connect_from(proxy, "127.0.0.2"), target)
        .err()
        .unwrap_or_else(|| panic!("a second stream from 127.0.0.2 was accepted"));
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(
        refused.header("retry-after").is_some(),
        "429 without Retry-After: {:?}",
        refused.headers
    );
    assert_eq!(
        server
            .metrics()
            .get("pushcore_connections_rejected_per_ip_total"),
        1
    );
    // The two streams are still served.
    let id = publish_from(proxy, "127.0.0.9", "px", 6);
    for (who, s) in [("127.0.0.2", &mut first), ("127.0.0.3", &mut other)] {
        let got = s
            .next_event(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("{who}: no event after the 429 ({end:?})"));
        assert_eq!(got.id(), Some(id.as_str()), "{who}: {:?}", got.raw);
    }
}
both_drivers!(through_nginx);

/// A proxy keeps idle upstream connections for reuse (nginx `keepalive`): one that last carried
/// a client's publish must not keep counting that client, or the client's own stream, carried
/// on another upstream connection, is refused (429) while it holds no connection at all.
/// (Without nginx: this test plays the proxy, from 127.0.0.1, to control which upstream
/// connection carries which request.)
fn idle_proxy_connection_pins_no_client(driver: Driver) {
    let server = Server::start_with_driver(
        driver,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--max-connections-per-ip",
            "1",
        ],
    );
    let addr = server.addr();
    let body = event_json("pin", None, &json!(1));
    let mut pooled = Conn::open(addr);
    let resp = pooled.request(
        format!(
            "POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             X-Forwarded-For: 127.0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // `pooled` stays open and idle, as in the proxy's pool. The same client now subscribes;
    // the proxy carries it on a new upstream connection.
    let opened = SseStream::try_open(
        connect(addr),
        "/events/stream?channels=pin",
        &[("X-Forwarded-For", "127.0.0.4")],
    );
    match opened {
        Ok(mut s) => {
            s.handshake();
        }
        Err(r) => panic!(
            "127.0.0.4 holds no connection, yet its stream got {} {}",
            r.status,
            r.text()
        ),
    }
    drop(pooled);
}
both_drivers!(idle_proxy_connection_pins_no_client);
