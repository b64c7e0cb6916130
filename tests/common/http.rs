//! Raw HTTP over real sockets: connections, requests, responses, publishing.
#![allow(dead_code)]

use super::*;

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
pub fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, End> {
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
    pub(super) stream: TcpStream,
    pub(super) buf: Vec<u8>,
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
