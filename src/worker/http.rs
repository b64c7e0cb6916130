//! One connection from accept until it becomes a subscriber slot or closes: read request heads,
//! route, answer publishers (keep-alive, pipelining), write the subscribe handshake.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::publish::parse_publish;
use super::subscribe::parse_subscription;
use super::{Resume, Worker};
use crate::auth::{now_unix, CorsRoute};
use crate::http::parse::{
    find_header, BodyKind, Head, HeadLimits, Header, Method, Parsed, DEFAULT_MAX_URI_BYTES,
};
use crate::http::query::Target;
use crate::http::response::{http_error, http_error_with, json_error, response, CONTINUE};
use crate::http::{check_length, parse_head, parse_target, ChunkedDecoder, HttpError};
use crate::metrics::WorkerMetrics;
use crate::sse::encode::{self, Frame};
use crate::sse::id::{unix_ms_now, EventId};
use crate::sys;
use crate::web::DASHBOARD_EVENTS_PATH;

/// Response head of an event stream; the body is close-delimited.
pub const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache, no-transform\r\n\
Connection: keep-alive\r\n\
X-Accel-Buffering: no\r\n\r\n";

/// The event-stream response head with `extra` headers (CORS) before its blank line.
fn stream_head(extra: &[(&str, &str)], out: &mut Vec<u8>) {
    let Some(without_blank) = STREAM_HEAD.strip_suffix(b"\r\n") else {
        return;
    };
    out.extend_from_slice(without_blank);
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;
/// How long a refused connection may take to finish sending its request before we close.
const REJECT_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a connection is refused before its request is read.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    /// `--max-connections` (503).
    AtCapacity,
    /// `--max-connections-per-ip` (429).
    TooManyFromAddress,
}

pub(super) async fn reject(mut stream: TcpStream, why: Refusal) {
    let body = match why {
        Refusal::AtCapacity => http_error(
            &HttpError::ServiceUnavailable {
                message: "Server at capacity",
                retry_after_secs: RETRY_AFTER_SECS,
            },
            false,
        ),
        Refusal::TooManyFromAddress => {
            let retry = RETRY_AFTER_SECS.to_string();
            json_error(
                429,
                "Too many connections from this address",
                &[("Retry-After", &retry)],
                false,
            )
        }
    };
    if let (Ok(_), _) = stream.write_all(body).await {
        // Close with FIN, not RST: send our FIN, then take what the client sent (its request)
        // before closing. A client that keeps sending is cut off after a short wait.
        sys::shutdown(stream.as_raw_fd(), false, true);
        let drain = async {
            let mut buf = vec![0u8; 2048];
            for _ in 0..8 {
                let (res, b) = stream.read(buf).await;
                buf = b;
                if !matches!(res, Ok(n) if n > 0) {
                    break;
                }
            }
        };
        let _ = monoio::time::timeout(REJECT_LINGER, drain).await;
    }
}

/// How a request ended for its connection.
enum Next {
    /// Read the next request (keep-alive).
    KeepAlive,
    Close,
    Subscribe {
        channels: Vec<String>,
        resume: Resume,
        /// Unix second at which the subscriber's token expires.
        expires_at: Option<u64>,
    },
}

/// Why reading a request stopped.
enum ReadFail {
    /// The peer left (or a timeout ended a request that had not begun): close quietly.
    Gone,
    /// Answer with this error, then close.
    Refuse(HttpError),
}

pub(super) async fn serve_connection(worker: Rc<Worker>, mut stream: TcpStream, peer_key: u64) {
    // TCP_NODELAY and the send buffer cap come from the listener.
    let fd = stream.as_raw_fd();
    let limits = HeadLimits {
        max_head_bytes: usize::try_from(worker.config().max_head_bytes).unwrap_or(usize::MAX),
        max_headers: usize::try_from(worker.config().max_headers).unwrap_or(usize::MAX),
        max_uri_bytes: DEFAULT_MAX_URI_BYTES,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut headers: Vec<Header> = Vec::new();
    let mut first = true;
    loop {
        let (hs, timed_out) = worker.handshake_begin(fd, !first && buf.is_empty());
        let next = serve_one(
            &worker,
            &mut stream,
            &mut buf,
            &mut headers,
            &limits,
            &timed_out,
            first,
        )
        .await;
        worker.handshake_end(hs);
        first = false;
        match next {
            Next::KeepAlive if !worker.is_draining() => continue,
            Next::KeepAlive | Next::Close => break,
            Next::Subscribe {
                channels,
                resume,
                expires_at,
            } => {
                worker.adopt_subscriber(stream, &channels, resume, peer_key, expires_at);
                return;
            }
        }
    }
    drop(stream);
    worker.connection_closed(peer_key);
}

/// Read one request and answer it.
async fn serve_one(
    worker: &Rc<Worker>,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    headers: &mut Vec<Header>,
    limits: &HeadLimits,
    timed_out: &std::cell::Cell<bool>,
    first: bool,
) -> Next {
    let metrics = &worker.metrics;
    let head = match read_head(stream, buf, headers, limits, timed_out, first).await {
        Ok(head) => head,
        Err(fail) => return refuse(stream, metrics, fail).await,
    };
    let keep_alive = head.keep_alive && !worker.is_draining();
    let target = match parse_target(head.target.get(buf)) {
        Ok(t) => t,
        Err(e) => return refuse(stream, metrics, ReadFail::Refuse(e)).await,
    };
    let route = (target.path.as_str(), head.method);
    // Only publish reads a body; any other request that carries one is answered and closed.
    let has_body = !matches!(head.body, BodyKind::None | BodyKind::Length(0));
    if route.0 != "/events/publish" && has_body {
        let resp = route_without_body(worker, route, false);
        let _ = stream.write_all(resp).await;
        return Next::Close;
    }
    match route {
        (path @ ("/events/stream" | DASHBOARD_EVENTS_PATH), Method::Get)
            if path == "/events/stream" || worker.config().dashboard =>
        {
            // The dashboard feed: the internal channel only, same-origin, no token.
            let internal = path == DASHBOARD_EVENTS_PATH;
            let auth = &worker.shared.auth;
            let origin = find_header(buf, headers, "origin").filter(|_| !internal);
            let cors = auth.cors().response_headers(origin);
            let last_event_id = find_header(buf, headers, "last-event-id");
            let max_channels = usize::try_from(worker.config().max_channels).unwrap_or(usize::MAX);
            let sub = match parse_subscription(&target, last_event_id, max_channels) {
                Ok(mut s) if internal => {
                    s.channels = vec![crate::web::DASHBOARD_CHANNEL.to_string()];
                    s
                }
                Ok(s) => s,
                Err(msg) => {
                    metrics.parse_errors_total.inc();
                    let _ = stream
                        .write_all(json_error(400, &msg, cors.as_slice(), false))
                        .await;
                    return Next::Close;
                }
            };
            let mut expires_at = None;
            if auth.is_enabled() && !internal {
                let token = auth
                    .token_from_request(buf, headers, &target)
                    .map(|t| t.value);
                match auth.authorize_subscribe(token, &sub.channels, now_unix()) {
                    Ok(grant) => expires_at = grant.and_then(|g| g.expires_at),
                    Err(e) => {
                        metrics.auth_refusals_total.inc();
                        let _ = stream.write_all(e.response(cors.as_slice(), false)).await;
                        return Next::Close;
                    }
                }
            }
            // Take in-flight events first, so the resume decision sees every id issued so far.
            worker.pump_bus();
            let (resume, reset) = worker.plan_subscription(&sub);
            let mut out = Vec::with_capacity(STREAM_HEAD.len() + 256);
            stream_head(cors.as_slice(), &mut out);
            out.extend_from_slice(Frame::retry(worker.config().retry_ms).as_bytes());
            out.extend_from_slice(encode::connected(&worker.client_id(), unix_ms_now()).as_bytes());
            if let Some(reset) = reset {
                out.extend_from_slice(reset.as_bytes());
            }
            match stream.write_all(out).await {
                (Ok(_), _) => Next::Subscribe {
                    channels: sub.channels,
                    resume,
                    expires_at,
                },
                (Err(_), _) => Next::Close,
            }
        }
        (path @ ("/events/publish" | "/events/stream"), Method::Options) => {
            let route = if path == "/events/publish" {
                CorsRoute::Publish
            } else {
                CorsRoute::Stream
            };
            let origin = find_header(buf, headers, "origin");
            let grant = worker.shared.auth.cors().preflight_headers(origin, route);
            let resp = response(204, "", grant.as_slice(), b"", keep_alive);
            buf.drain(..head.len.min(buf.len()));
            match stream.write_all(resp).await {
                (Ok(_), _) if keep_alive => Next::KeepAlive,
                _ => Next::Close,
            }
        }
        ("/events/publish", Method::Post) => {
            publish(
                worker, stream, buf, headers, &head, &target, keep_alive, timed_out,
            )
            .await
        }
        _ => {
            let resp = match crate::web::route(route.0, worker.config().dashboard) {
                Some(asset) => {
                    let etags = find_header(buf, headers, "if-none-match");
                    crate::web::respond(asset, head.method, etags, keep_alive)
                }
                None => route_without_body(worker, route, keep_alive),
            };
            buf.drain(..head.len.min(buf.len()));
            match stream.write_all(resp).await {
                (Ok(_), _) if keep_alive => Next::KeepAlive,
                _ => Next::Close,
            }
        }
    }
}

/// Answers that need no body: health, metrics, 404, 405.
fn route_without_body(worker: &Worker, route: (&str, Method), keep_alive: bool) -> Vec<u8> {
    let not_allowed =
        |allow: &'static str| http_error(&HttpError::MethodNotAllowed { allow }, keep_alive);
    match route {
        ("/healthz", Method::Get | Method::Head) => {
            if worker.is_draining() {
                response(
                    503,
                    "application/json",
                    &[("Retry-After", "5")],
                    br#"{"status":"draining"}"#,
                    keep_alive,
                )
            } else {
                response(
                    200,
                    "application/json",
                    &[],
                    br#"{"status":"ok"}"#,
                    keep_alive,
                )
            }
        }
        ("/healthz", _) => not_allowed("GET, HEAD"),
        ("/metrics", Method::Get | Method::Head) => {
            let text = WorkerMetrics::render(&worker.shared.metrics);
            response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &[],
                text.as_bytes(),
                keep_alive,
            )
        }
        ("/metrics", _) => not_allowed("GET, HEAD"),
        ("/events/stream", _) => not_allowed("GET"),
        ("/events/publish", _) => not_allowed("POST"),
        _ => http_error(&HttpError::NotFound, keep_alive),
    }
}

async fn refuse(stream: &mut TcpStream, metrics: &WorkerMetrics, fail: ReadFail) -> Next {
    refuse_with(stream, metrics, fail, &[]).await
}

async fn refuse_with(
    stream: &mut TcpStream,
    metrics: &WorkerMetrics,
    fail: ReadFail,
    extra: &[(&str, &str)],
) -> Next {
    if let ReadFail::Refuse(err) = fail {
        if matches!(err, HttpError::HeadTimeout) {
            metrics.handshake_timeouts_total.inc();
        } else {
            metrics.parse_errors_total.inc();
        }
        let _ = stream.write_all(http_error_with(&err, extra, false)).await;
    }
    Next::Close
}

/// Read more bytes onto the end of `buf`; Ok(0) means end of stream.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(want.clamp(1024, 64 * 1024));
    }
    let mut owned = std::mem::take(buf);
    let len = owned.len();
    let end = owned.bytes_total();
    let (res, slice) = stream.read(owned.slice_mut(len..end)).await;
    *buf = slice.into_inner();
    res
}

async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    headers: &mut Vec<Header>,
    limits: &HeadLimits,
    timed_out: &std::cell::Cell<bool>,
    first: bool,
) -> Result<Head, ReadFail> {
    loop {
        match parse_head(buf, limits, headers) {
            Ok(Parsed::Complete(head)) => return Ok(head),
            Ok(Parsed::Partial) => {}
            Err(e) => return Err(ReadFail::Refuse(e)),
        }
        match read_more(stream, buf, buf.capacity()).await {
            Ok(n) if n > 0 => {}
            _ => {
                // A timeout on a request that has begun (or on a new connection) gets 408.
                let begun = first || !buf.is_empty();
                return Err(if timed_out.get() && begun {
                    ReadFail::Refuse(HttpError::HeadTimeout)
                } else {
                    ReadFail::Gone
                });
            }
        }
    }
}

fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let media = value.split(|&b| b == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(b"application/json")
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    worker: &Rc<Worker>,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    headers: &[Header],
    head: &Head,
    target: &Target,
    keep_alive: bool,
    timed_out: &std::cell::Cell<bool>,
) -> Next {
    let metrics = &worker.metrics;
    let auth = &worker.shared.auth;
    let cors = auth
        .cors()
        .response_headers(find_header(buf, headers, "origin"));
    let cors = cors.as_slice();
    let max_body = usize::try_from(worker.config().max_body_bytes).unwrap_or(usize::MAX);
    // The token is checked before the body is read: an anonymous or invalid publisher is
    // answered 401 without the server taking its body. Channel rights are checked after.
    let token: Option<String> = auth
        .token_from_request(buf, headers, target)
        .map(|t| t.value.to_string());
    if auth.is_enabled() {
        let early = match token.as_deref() {
            None => auth.authorize_publish(None, &[], now_unix()).map(|_| ()),
            Some(t) => auth.verify(t, now_unix()).map(|_| ()),
        };
        if let Err(e) = early {
            metrics.auth_refusals_total.inc();
            let _ = stream.write_all(e.response(cors, false)).await;
            return Next::Close;
        }
    }
    if !is_json(find_header(buf, headers, "content-type")) {
        let err = HttpError::UnsupportedMediaType {
            expected: "application/json",
        };
        return refuse_with(stream, metrics, ReadFail::Refuse(err), cors).await;
    }
    let expects_continue = find_header(buf, headers, "expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    let (body, consumed) =
        match read_body(stream, buf, head, max_body, expects_continue, timed_out).await {
            Ok(b) => b,
            Err(fail) => return refuse_with(stream, metrics, fail, cors).await,
        };
    buf.drain(..consumed.min(buf.len()));
    let answer = |resp: Vec<u8>| async move {
        match stream.write_all(resp).await {
            (Ok(_), _) if keep_alive => Next::KeepAlive,
            _ => Next::Close,
        }
    };
    let published = match parse_publish(&body) {
        Ok(p) => p,
        Err(msg) => {
            metrics.parse_errors_total.inc();
            return answer(json_error(400, &msg, cors, keep_alive)).await;
        }
    };
    if auth.is_enabled() {
        let mut channels: Vec<String> = published
            .events
            .iter()
            .flat_map(|e| e.channels.iter().cloned())
            .collect();
        channels.sort_unstable();
        channels.dedup();
        if let Err(e) = auth.authorize_publish(token.as_deref(), &channels, now_unix()) {
            metrics.auth_refusals_total.inc();
            return answer(e.response(cors, keep_alive)).await;
        }
    }
    let batch = published.batch;
    let resp = match worker.publish(published.events).await {
        Some(ids) => {
            metrics.publish_requests_total.inc();
            let body = publish_answer(&ids, batch);
            response(200, "application/json", cors, body.as_bytes(), keep_alive)
        }
        None => {
            metrics.publish_rejected_total.inc();
            let err = HttpError::ServiceUnavailable {
                message: "Server busy: event queues are full",
                retry_after_secs: 1,
            };
            http_error_with(&err, cors, keep_alive)
        }
    };
    answer(resp).await
}

fn publish_answer(ids: &[EventId], batch: bool) -> String {
    if batch {
        let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        serde_json::json!({ "success": true, "eventIds": list }).to_string()
    } else {
        let id = ids.first().map(|id| id.to_string()).unwrap_or_default();
        serde_json::json!({ "success": true, "eventId": id }).to_string()
    }
}

/// Read the body that follows `head` in `buf`; returns it and how many bytes of `buf` the
/// request used (head + body), so pipelined bytes after it are kept.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &Head,
    max_body: usize,
    expects_continue: bool,
    timed_out: &std::cell::Cell<bool>,
) -> Result<(Vec<u8>, usize), ReadFail> {
    let start = head.len;
    // The sweep ends a stalled read (EOF); a body cut short by it is answered 408.
    let ended = || {
        if timed_out.get() {
            ReadFail::Refuse(HttpError::HeadTimeout)
        } else {
            ReadFail::Gone
        }
    };
    match head.body {
        BodyKind::None => Err(ReadFail::Refuse(HttpError::LengthRequired)),
        BodyKind::Length(n) => {
            let n = check_length(n, max_body).map_err(ReadFail::Refuse)?;
            let end = start + n;
            if expects_continue && buf.len() < end {
                let _ = stream.write_all(CONTINUE).await;
            }
            while buf.len() < end {
                match read_more(stream, buf, end - buf.len()).await {
                    Ok(k) if k > 0 => {}
                    _ => return Err(ended()),
                }
            }
            Ok((buf.get(start..end).unwrap_or_default().to_vec(), end))
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new(max_body);
            let mut body = Vec::new();
            let mut pos = start;
            if expects_continue && buf.len() <= start {
                let _ = stream.write_all(CONTINUE).await;
            }
            loop {
                let input = buf.get(pos..).unwrap_or_default();
                let step = decoder.decode(input, &mut body).map_err(ReadFail::Refuse)?;
                pos += step.consumed;
                if step.done {
                    return Ok((body, pos));
                }
                match read_more(stream, buf, 4096).await {
                    Ok(k) if k > 0 => {}
                    _ => return Err(ended()),
                }
            }
        }
    }
}
