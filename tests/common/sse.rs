//! Event streams: blocks as sent, a block parser, subscriptions read with deadlines.
#![allow(dead_code)]

use super::*;

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
