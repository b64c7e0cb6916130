//! One connection from accept until it becomes a subscriber or closes: read a request head,
//! route it, answer (keep-alive and pipelining for publishers), repeat.

use std::cell::Cell;
use std::rc::Rc;

use monoio::net::TcpStream;

use super::conn::{Conn, ReadFail};
use super::handshakes::Entry;
use super::stream::NewSubscriber;
use super::Worker;
use crate::api::ApiError;
use crate::auth::CorsRoute;
use crate::http::parse::{BodyKind, Method};
use crate::http::response::response;
use crate::http::{parse_target, HttpError};
use crate::metrics::WorkerMetrics;
use crate::web::DASHBOARD_EVENTS_PATH;

/// How a request ended for its connection.
pub(super) enum Next {
    /// Read the next request (keep-alive).
    KeepAlive,
    Close,
    /// The stream's response head is written: the connection becomes a subscriber slot.
    Subscribe(NewSubscriber),
}

impl Next {
    /// After writing an answer: keep the connection if it asked to and the write went through.
    pub(super) fn after(sent: bool, keep_alive: bool) -> Next {
        if sent && keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

pub(super) async fn serve_connection(worker: Rc<Worker>, stream: TcpStream, peer_key: u64) {
    // TCP_NODELAY and the send buffer cap come from the listener.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let mut conn = Conn::new(stream);
    loop {
        conn.timed_out = Rc::new(Cell::new(false));
        let hs = worker.state.borrow_mut().handshakes.begin(Entry {
            fd,
            since_ms: worker.now_ms(),
            timed_out: Rc::clone(&conn.timed_out),
            idle_keepalive: !conn.first && conn.buf.is_empty(),
        });
        let next = serve_one(&worker, &mut conn).await;
        worker.state.borrow_mut().handshakes.end(hs);
        conn.first = false;
        match next {
            Next::KeepAlive if !worker.is_draining() => continue,
            Next::KeepAlive | Next::Close => break,
            Next::Subscribe(sub) => {
                worker.adopt_subscriber(conn.stream, sub, peer_key);
                return;
            }
        }
    }
    if conn.linger {
        conn.linger_close().await;
    }
    worker.connection_closed(peer_key);
}

/// Read one request and answer it.
async fn serve_one(worker: &Rc<Worker>, conn: &mut Conn) -> Next {
    let head = match conn.read_head(&worker.limits().head).await {
        Ok(head) => head,
        Err(ReadFail::Gone) => return Next::Close,
        Err(ReadFail::Refuse(e)) => return refuse(worker, conn, &e.into(), &[]).await,
    };
    let keep_alive = head.keep_alive && !worker.is_draining();
    let target = match parse_target(head.target.get(&conn.buf)) {
        Ok(t) => t,
        Err(e) => return refuse(worker, conn, &e.into(), &[]).await,
    };
    let route = (target.path.as_str(), head.method);
    // Only publish reads a body; any other request that carries one is answered and closed.
    let has_body = !matches!(head.body, BodyKind::None | BodyKind::Length(0));
    if route.0 != "/events/publish" && has_body {
        let resp = plain_answer(worker, route, false);
        conn.send(resp).await;
        return Next::Close;
    }
    match route {
        ("/events/stream", Method::Get) => worker.open_stream(conn, &target, false).await,
        (DASHBOARD_EVENTS_PATH, Method::Get) if worker.shared.config.dashboard => {
            worker.open_stream(conn, &target, true).await
        }
        ("/events/publish", Method::Post) => worker.publish(conn, &head, &target, keep_alive).await,
        (path @ ("/events/publish" | "/events/stream"), Method::Options) => {
            let route = if path == "/events/publish" {
                CorsRoute::Publish
            } else {
                CorsRoute::Stream
            };
            let grant = worker
                .shared
                .auth
                .cors()
                .preflight_headers(conn.header("origin"), route);
            let resp = response(204, "", grant.as_slice(), b"", keep_alive);
            conn.consume(head.len);
            Next::after(conn.send(resp).await, keep_alive)
        }
        _ => {
            let resp = match crate::web::route(route.0, worker.shared.config.dashboard) {
                Some(asset) => crate::web::respond(
                    asset,
                    head.method,
                    conn.header("if-none-match"),
                    keep_alive,
                ),
                None => plain_answer(worker, route, keep_alive),
            };
            conn.consume(head.len);
            Next::after(conn.send(resp).await, keep_alive)
        }
    }
}

/// Answers that need no body and no state beyond counters: health, metrics, 404, 405.
fn plain_answer(worker: &Worker, route: (&str, Method), keep_alive: bool) -> Vec<u8> {
    let not_allowed = |allow: &'static str| {
        ApiError::Http(HttpError::MethodNotAllowed { allow }).response(&[], keep_alive)
    };
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
            } else if !worker
                .shared
                .ready
                .load(std::sync::atomic::Ordering::Acquire)
            {
                response(
                    503,
                    "application/json",
                    &[("Retry-After", "1")],
                    br#"{"status":"starting"}"#,
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
        _ => ApiError::Http(HttpError::NotFound).response(&[], keep_alive),
    }
}

/// Answer `err` (with `extra` headers, CORS typically), count it, and close.
pub(super) async fn refuse(
    worker: &Worker,
    conn: &mut Conn,
    err: &ApiError,
    extra: &[(&str, &str)],
) -> Next {
    worker.count_refusal(err);
    conn.linger = conn.send(err.response(extra, false)).await;
    Next::Close
}

impl Worker {
    /// Count a refusal in the metric that names its kind.
    pub(super) fn count_refusal(&self, err: &ApiError) {
        let m = &self.metrics;
        match err {
            ApiError::Http(HttpError::HeadTimeout) => m.handshake_timeouts_total.inc(),
            ApiError::Http(HttpError::ServiceUnavailable { .. }) => m.publish_rejected_total.inc(),
            ApiError::Http(_) => m.parse_errors_total.inc(),
            ApiError::Auth(_) => m.auth_refusals_total.inc(),
            ApiError::TooManyFromAddress => m.connections_rejected_per_ip_total.inc(),
        }
    }
}
