//! `GET /events/stream`: which channels, may this client follow them, where does its stream
//! start ([`crate::channel::resume`]); then the response head, `retry:`, `connected` (and a
//! `reset` if the resume cannot be exact) are written and the connection becomes a subscriber
//! slot ([`super::slots`]).

use std::os::fd::AsRawFd;
use std::rc::Rc;

use monoio::net::TcpStream;

use super::conn::Conn;
use super::routes::{refuse, Next};
use super::slots::{Control, Pending, Subscriber, Writer};
use super::Worker;
use crate::api::subscribe::parse_subscription;
use crate::api::ApiError;
use crate::auth::now_unix;
use crate::channel::resume::Start;
use crate::channel::ChannelIdx;
use crate::http::encoding::accepts_gzip;
use crate::sse::encode::{self, Frame};
use crate::sse::gzip;
use crate::sse::id::unix_ms_now;

/// Response head of an event stream; the body is close-delimited.
pub const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache, no-transform\r\n\
Connection: keep-alive\r\n\
X-Accel-Buffering: no\r\n\r\n";

/// A stream whose handshake is written, on its way to a slot.
pub(super) struct NewSubscriber {
    channels: Vec<String>,
    start: Start,
    /// Unix second at which the subscriber's token expires.
    expires_at: Option<u64>,
    /// The stream is gzip-encoded.
    gzip: bool,
}

impl Worker {
    pub(super) async fn open_stream(
        self: &Rc<Self>,
        conn: &mut Conn,
        target: &crate::http::query::Target,
        dashboard: bool,
    ) -> Next {
        let auth = &self.shared.auth;
        // The dashboard feed: this instance's internal channel only, same-origin, no token
        // (it is served only with --dashboard, like /metrics).
        let origin = conn.header("origin").filter(|_| !dashboard);
        let cors = auth.cors().response_headers(origin);
        let sub = match parse_subscription(
            target,
            conn.header("last-event-id"),
            self.limits().max_channels,
        ) {
            Ok(mut s) if dashboard => {
                s.channels = vec![self.dashboard_channel()];
                s
            }
            Ok(s) => s,
            Err(msg) => return refuse(self, conn, &ApiError::bad_body(msg), cors.as_slice()).await,
        };
        // The replay histogram's clock runs for resumes only (a clock read less per open).
        let began = sub.last_event_id.is_some().then(std::time::Instant::now);
        let mut expires_at = None;
        if auth.is_enabled() && !dashboard {
            let token = auth
                .token_from_request(&conn.buf, &conn.headers, target)
                .map(|t| t.value);
            match auth.authorize_subscribe(token, &sub.channels, now_unix()) {
                Ok(grant) => expires_at = grant.and_then(|g| g.expires_at),
                Err(e) => return refuse(self, conn, &e.into(), cors.as_slice()).await,
            }
        }
        let (start, from_log) = match self.start_of(&sub).await {
            Ok(s) => s,
            Err(e) => return refuse(self, conn, &e, cors.as_slice()).await,
        };
        let gzip =
            self.shared.config.gzip && conn.header("accept-encoding").is_some_and(accepts_gzip);
        let log_bytes: usize = from_log.iter().map(|s| s.frame.len()).sum();
        let mut out = Vec::with_capacity(STREAM_HEAD.len() + 256 + log_bytes);
        let mut extra: Vec<(&str, &str)> = cors.as_slice().to_vec();
        if gzip {
            extra.push(("Content-Encoding", "gzip"));
            extra.push(("Vary", "Accept-Encoding"));
        }
        stream_head(&extra, &mut out);
        // The stream's own first frames, compressed (stored) as one segment when gzip.
        let mut first = Vec::with_capacity(256);
        first.extend_from_slice(Frame::retry(self.limits().retry_ms).as_bytes());
        first.extend_from_slice(encode::connected(&self.client_id(), unix_ms_now()).as_bytes());
        if let (Some(reason), Some(raw)) = (start.reset, sub.last_event_id.as_deref()) {
            first.extend_from_slice(encode::reset(reason.as_str(), raw).as_bytes());
        }
        if gzip {
            out.extend_from_slice(&gzip::HEADER);
            gzip::stored_into(&first, &mut out);
            self.metrics.gzip_streams_total.inc();
        } else {
            out.extend_from_slice(&first);
        }
        // A resume older than this instance's history, served from the log (cluster mode).
        for seq in &from_log {
            match (gzip, &seq.gzip) {
                (false, _) => out.extend_from_slice(&seq.frame),
                (true, Some(segment)) => out.extend_from_slice(segment),
                (true, None) => gzip::stored_into(&seq.frame, &mut out),
            }
        }
        self.metrics.deliveries_total.add(from_log.len() as u64);
        if !conn.send(out).await {
            return Next::Close;
        }
        if let Some(began) = began {
            self.metrics.replay_first_byte.observe(began.elapsed());
        }
        Next::Subscribe(NewSubscriber {
            channels: sub.channels,
            start,
            expires_at,
            gzip,
        })
    }

    /// When a new stream ends (unix seconds, 0: never) and whether that is its token's expiry:
    /// the earlier of the token's expiry and the stream's lifetime (`--max-stream-lifetime`,
    /// jittered down by up to a quarter per stream, so a fleet does not reconnect in lockstep).
    fn stream_end(&self, key: super::slots::SlotKey, token_expires_at: Option<u64>) -> (u32, bool) {
        let lifetime = self.limits().max_stream_lifetime_secs.map(|secs| {
            let now = crate::auth::now_unix();
            let spread = secs / 4;
            let seed = key.token() ^ unix_ms_now();
            let jitter = if spread == 0 {
                0
            } else {
                (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % (spread + 1)
            };
            // The sweep compares whole unix seconds: one more keeps a stream from ending up to
            // a second early.
            now.saturating_add(secs - jitter).saturating_add(1)
        });
        // An expiry past 2106 is treated as never.
        let fits = |t: u64| u32::try_from(t).ok();
        match (token_expires_at.and_then(fits), lifetime.and_then(fits)) {
            (Some(t), Some(l)) if l < t => (l, false),
            (Some(t), _) => (t, true),
            (None, Some(l)) => (l, false),
            (None, None) => (0, false),
        }
    }

    fn client_id(&self) -> String {
        let n = self.next_client.get();
        self.next_client.set(n + 1);
        format!("{:x}-{}-{}", self.shared.boot.ms, self.index, n)
    }

    /// Make `stream` (whose response head is written) a subscriber slot.
    pub(super) fn adopt_subscriber(
        self: &Rc<Self>,
        stream: TcpStream,
        new: NewSubscriber,
        peer_key: u64,
    ) {
        let fd = stream.as_raw_fd();
        let key = {
            let mut st = self.state.borrow_mut();
            let super::State {
                subscribers,
                channels,
                draining,
                ..
            } = &mut *st;
            // Resolved again here, not when the stream was planned: the sweep may have
            // collected a channel that was still empty while the handshake was being written.
            let chans: Box<[ChannelIdx]> = new
                .channels
                .iter()
                .map(|n| channels.find_or_create(n))
                .collect();
            let key = subscribers.insert(Subscriber {
                writer: Writer::Idle(stream),
                fd,
                pending: {
                    let mut p = Pending::default();
                    if *draining {
                        p.set(Control::Shutdown);
                    }
                    p
                },
                lagging: false,
                last_write_secs: self.now_secs(),
                channels: chans.clone(),
                cursor: new.start.cursor,
                joined: new.start.joined,
                acknowledged_floor: new.start.acknowledged_floor,
                peer_key,
                ends_at: 0,
                ends_with_token: false,
                gzip: new.gzip,
            });
            for c in chans.iter() {
                if let Some(ch) = channels.get_mut(*c) {
                    ch.subscribers.push(key.index);
                }
            }
            if let Some(sub) = subscribers.get_mut(key) {
                let (ends_at, by_token) = self.stream_end(key, new.expires_at);
                sub.ends_at = ends_at;
                sub.ends_with_token = by_token;
            }
            key
        };
        self.metrics.subscribers.inc();
        if self.epoll.add(fd, key.token()).is_err() {
            self.close_subscriber(key);
            return;
        }
        // Replay (or a drain that began meanwhile) may already be due; a live-only stream has
        // nothing to send yet and needs no writer.
        let due = {
            let st = self.state.borrow();
            st.subscribers
                .get(key)
                .is_some_and(|s| s.pending.any() || st.channels.lag(&s.channels, s.cursor) > 0)
        };
        if due {
            self.start_writer(key);
        }
    }
}

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
