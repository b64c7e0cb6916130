//! The generator's HTTP side: connect from a chosen loopback source address, open an event
//! stream and read it (close-delimited or chunked), publish over a keep-alive connection.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::sse::{SseEvent, SseReader};
use super::target::HttpUrl;
use crate::http::ChunkedDecoder;

/// Source address for connection `i`: 127.0.0.2, 127.0.0.3, … cycling through `spread`
/// addresses, so many connections do not exhaust one address's ephemeral ports.
pub fn source_addr(i: usize, spread: usize, target: &SocketAddr) -> Option<IpAddr> {
    if spread == 0 || !target.ip().is_loopback() || !target.is_ipv4() {
        return None;
    }
    let k = (i % spread) as u32;
    Some(IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(127, 0, 0, 2)) + k,
    )))
}

/// A blocking TCP connection bound to `source` (if given), with Nagle off.
pub fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&target.into(), timeout)?;
    socket.set_nodelay(true)?;
    Ok(socket.into())
}

static ACCEPT_GZIP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make every subscribe request of this process ask for gzip (`--gzip`).
pub fn accept_gzip(on: bool) {
    ACCEPT_GZIP.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The request that opens an event stream.
pub fn subscribe_request(url: &HttpUrl, last_event_id: Option<&str>) -> Vec<u8> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        url.path, url.host
    );
    if ACCEPT_GZIP.load(std::sync::atomic::Ordering::Relaxed) {
        req.push_str("Accept-Encoding: gzip\r\n");
    }
    if let Some(id) = last_event_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Turns response bytes into body bytes: the head is checked (status 200), then the body is
/// passed through or de-chunked, and inflated when it is gzip-encoded.
#[derive(Debug, Default)]
pub struct ResponseBody {
    head: Vec<u8>,
    head_done: bool,
    chunked: Option<ChunkedDecoder>,
    pending: Vec<u8>,
    gzip: Option<Inflate>,
    pub status: Option<u16>,
}

/// A gzip stream inflated as it arrives (the 10-byte header, then raw deflate; no trailer
/// needed).
struct Inflate {
    header_left: usize,
    state: flate2::Decompress,
    pending: Vec<u8>,
}

impl std::fmt::Debug for Inflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflate").finish_non_exhaustive()
    }
}

impl Inflate {
    fn new() -> Inflate {
        Inflate {
            header_left: 10,
            state: flate2::Decompress::new(false),
            pending: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let skip = self.header_left.min(bytes.len());
        self.header_left -= skip;
        self.pending
            .extend_from_slice(bytes.get(skip..).unwrap_or_default());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (in0, out0) = (self.state.total_in(), self.state.total_out());
            self.state
                .decompress(&self.pending, &mut buf, flate2::FlushDecompress::Sync)
                .map_err(|e| format!("gzip: {e}"))?;
            let used = (self.state.total_in() - in0) as usize;
            let made = (self.state.total_out() - out0) as usize;
            self.pending.drain(..used.min(self.pending.len()));
            out.extend_from_slice(buf.get(..made).unwrap_or_default());
            // The inflater may stop at a flush point with input left: go on until a call
            // neither takes input nor gives output.
            if used == 0 && made == 0 {
                return Ok(());
            }
        }
    }
}

impl ResponseBody {
    /// Feed bytes from the socket; body bytes are appended to `out`. Errors end the stream.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if !self.head_done {
            self.head.extend_from_slice(bytes);
            let Some(end) = memchr::memmem::find(&self.head, b"\r\n\r\n") else {
                if self.head.len() > 64 * 1024 {
                    return Err("response head too large".into());
                }
                return Ok(());
            };
            self.head_done = true;
            let head =
                String::from_utf8_lossy(self.head.get(..end).unwrap_or_default()).into_owned();
            let status_line = head.lines().next().unwrap_or_default();
            self.status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok());
            if self.status != Some(200) {
                return Err(format!("status line: {status_line}"));
            }
            let chunked = head.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("transfer-encoding:") && l.contains("chunked")
            });
            if chunked {
                self.chunked = Some(ChunkedDecoder::new(usize::MAX));
            }
            let gzip = head.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("content-encoding:") && l.contains("gzip")
            });
            if gzip {
                self.gzip = Some(Inflate::new());
            }
            let rest = self.head.split_off(end + 4);
            return self.body(&rest, out);
        }
        self.body(bytes, out)
    }

    fn body(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut dechunked = Vec::new();
        let plain = match self.chunked.as_mut() {
            None => bytes,
            Some(decoder) => {
                self.pending.extend_from_slice(bytes);
                let step = decoder
                    .decode(&self.pending, &mut dechunked)
                    .map_err(|e| e.to_string())?;
                self.pending.drain(..step.consumed.min(self.pending.len()));
                &dechunked
            }
        };
        match self.gzip.as_mut() {
            None => out.extend_from_slice(plain),
            Some(inflate) => inflate.feed(plain, out)?,
        }
        Ok(())
    }
}

/// Read an event stream on a monoio socket until `on_event` returns false, the stream ends or
/// fails; `on_comments` hears of comment lines (heartbeats) as they arrive. Returns the reader
/// (comment count, retry) and why it stopped.
pub async fn read_events(
    stream: &mut monoio::net::TcpStream,
    request: Vec<u8>,
    on_open: impl FnOnce(),
    mut on_event: impl FnMut(&SseEvent) -> bool,
    mut on_comments: impl FnMut(u64),
) -> (SseReader, Result<(), String>) {
    let mut on_open = Some(on_open);
    let mut reader = SseReader::new();
    if let (Err(e), _) = stream.write_all(request).await {
        return (reader, Err(format!("write: {e}")));
    }
    let mut body = ResponseBody::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut bytes = Vec::new();
    let mut events = Vec::new();
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) => return (reader, Err("stream closed".into())),
            Ok(n) => n,
            Err(e) => return (reader, Err(format!("read: {e}"))),
        };
        bytes.clear();
        if let Err(e) = body.feed(buf.get(..n).unwrap_or_default(), &mut bytes) {
            return (reader, Err(e));
        }
        if body.status.is_some() {
            if let Some(open) = on_open.take() {
                open();
            }
        }
        events.clear();
        let comments = reader.comments;
        reader.feed(&bytes, &mut events);
        if reader.comments > comments {
            on_comments(reader.comments - comments);
        }
        for ev in &events {
            if !on_event(ev) {
                return (reader, Ok(()));
            }
        }
    }
}

/// Send a subscribe request and read until the response head has arrived: one "open" of the
/// churn scenario. Servers differ in what they send first, so the head is the common mark.
pub async fn open_stream(
    stream: &mut monoio::net::TcpStream,
    request: Vec<u8>,
) -> Result<(), String> {
    if let (Err(e), _) = stream.write_all(request).await {
        return Err(format!("write: {e}"));
    }
    let mut body = ResponseBody::default();
    let mut buf = vec![0u8; 4096];
    let mut sink = Vec::new();
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) => return Err("closed before the response head".into()),
            Ok(n) => body.feed(buf.get(..n).unwrap_or_default(), &mut sink)?,
            Err(e) => return Err(format!("read: {e}")),
        }
        if body.status.is_some() {
            return Ok(());
        }
    }
}

/// A keep-alive publisher on a blocking socket.
#[derive(Debug)]
pub struct Publisher {
    stream: TcpStream,
    url: HttpUrl,
    content_type: String,
    buf: Vec<u8>,
}

impl Publisher {
    pub fn connect(url: &HttpUrl, content_type: &str) -> std::io::Result<Publisher> {
        let stream = connect(url.addr, None, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Publisher {
            stream,
            url: url.clone(),
            content_type: content_type.to_string(),
            buf: Vec::new(),
        })
    }

    /// POST one body; returns the status and the response body.
    pub fn post(&mut self, body: &str) -> std::io::Result<(u16, String)> {
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{}",
            self.url.path,
            self.url.host,
            self.content_type,
            body.len(),
            body
        );
        self.stream.write_all(req.as_bytes())?;
        loop {
            if let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(self.buf.get(..end).unwrap_or_default())
                    .to_ascii_lowercase();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(
                        self.buf.get(end + 4..end + 4 + len).unwrap_or_default(),
                    )
                    .into_owned();
                    self.buf.drain(..end + 4 + len);
                    return Ok((status, body));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "publisher connection closed",
                ));
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_delimited_and_chunked_bodies() {
        let mut out = Vec::new();
        let mut r = ResponseBody::default();
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\n";
        for b in resp.chunks(3) {
            assert!(r.feed(b, &mut out).is_ok());
        }
        assert_eq!(out, b"data: a\n\n");
        let mut out = Vec::new();
        let mut r = ResponseBody::default();
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n3\r\nid:\r\n";
        for b in resp.chunks(2) {
            assert!(r.feed(b, &mut out).is_ok());
        }
        assert_eq!(out, b"data: a\n\nid:");
        let mut r = ResponseBody::default();
        assert!(r
            .feed(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", &mut Vec::new())
            .is_err());
        assert_eq!(r.status, Some(503));
    }

    #[test]
    fn source_addresses_cycle_over_loopback() {
        let t: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 80));
        assert_eq!(source_addr(0, 3, &t), Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(source_addr(4, 3, &t), Some(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(source_addr(4, 0, &t), None);
    }
}
