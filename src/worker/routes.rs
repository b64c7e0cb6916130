//! One connection from accept until it becomes a subscriber or closes: read a request head,
//! route it, answer (keep-alive and pipelining for publishers), repeat.

use std::cell::Cell;
use std::rc::Rc;

use monoio::net::TcpStream;

use std::net::IpAddr;

use super::accept::{Peer, Side};
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
use crate::per_ip;
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

pub(super) async fn serve_connection(
    worker: Rc<Worker>,
    stream: TcpStream,
    peer: Peer,
    side: Side,
) {
    // TCP_NODELAY and the send buffer cap come from the listener.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let socket_peer = peer.ip;
    let mut conn = Conn::new(stream, peer, side);
    loop {
        conn.timed_out = Rc::new(Cell::new(false));
        let hs = worker.state.borrow_mut().handshakes.begin(Entry {
            fd,
            since_ms: worker.now_ms(),
            timed_out: Rc::clone(&conn.timed_out),
            idle_keepalive: !conn.first && conn.buf.is_empty(),
        });
        let next = serve_one(&worker, &mut conn, socket_peer).await;
        worker.state.borrow_mut().handshakes.end(hs);
        conn.first = false;
        match next {
            Next::KeepAlive if !worker.is_draining() => continue,
            Next::KeepAlive | Next::Close => break,
            Next::Subscribe(sub) => {
                let key = conn.peer.key;
                worker.adopt_subscriber(conn.stream, sub, key);
                return;
            }
        }
    }
    let key = conn.peer.key;
    if conn.linger {
        conn.linger_close().await;
    }
    worker.connection_closed(key);
}

/// Paths of the operations side: on `--admin-listen` only, when it is set.
fn is_admin_path(path: &str) -> bool {
    matches!(
        path,
        "/metrics" | "/healthz" | "/readyz" | "/dashboard" | DASHBOARD_EVENTS_PATH
    )
}

/// The module the dashboard imports is served on both sides.
fn is_shared_path(path: &str) -> bool {
    matches!(path, "/pushcore.js" | "/pushcore.d.ts")
}

/// Read one request and answer it.
async fn serve_one(worker: &Rc<Worker>, conn: &mut Conn, socket_peer: IpAddr) -> Next {
    let head = match conn.read_head(&worker.limits().head).await {
        Ok(head) => head,
        Err(ReadFail::Gone) => return Next::Close,
        Err(ReadFail::Refuse(e)) => return refuse(worker, conn, &e.into(), &[]).await,
    };
    // From a trusted proxy, the client is who its forwarding headers say, for each request (a
    // proxy reuses upstream connections for several clients); it is counted per address only
    // for a stream, the one request that holds a connection (see `open_proxied_stream`).
    let proxied = conn.side == Side::Public && worker.shared.proxies.contains(socket_peer);
    if proxied {
        conn.peer.ip = worker.shared.proxies.client_addr(
            socket_peer,
            &conn.header_values("x-forwarded-for"),
            &conn.header_values("forwarded"),
        );
    }
    let keep_alive = head.keep_alive && !worker.is_draining();
    let target = match parse_target(head.target.get(&conn.buf)) {
        Ok(t) => t,
        Err(e) => return refuse(worker, conn, &e.into(), &[]).await,
    };
    let route = (target.path.as_str(), head.method);
    // With an admin listener, each side serves its own paths; the other side's are unknown.
    let admin_set = worker.shared.config.admin_listen.is_some();
    let foreign = match conn.side {
        Side::Admin => !is_admin_path(route.0) && !is_shared_path(route.0),
        Side::Public => admin_set && is_admin_path(route.0),
    };
    if foreign {
        let resp = ApiError::Http(HttpError::NotFound).response(&[], false);
        conn.send(resp).await;
        return Next::Close;
    }
    // Only publish reads a body; any other request that carries one is answered and closed.
    let has_body = !matches!(head.body, BodyKind::None | BodyKind::Length(0));
    if route.0 != "/events/publish" && has_body {
        let resp = plain_answer(worker, route, false);
        conn.send(resp).await;
        return Next::Close;
    }
    match route {
        ("/events/stream", Method::Get) if proxied => {
            let key = per_ip::key(conn.peer.ip);
            if !worker.shared.per_ip.acquire(key) {
                let cors = worker
                    .shared
                    .auth
                    .cors()
                    .response_headers(conn.header("origin"));
                return refuse(worker, conn, &ApiError::TooManyFromAddress, cors.as_slice()).await;
            }
            conn.peer.key = key;
            let next = worker.open_stream(conn, &target, false).await;
            if !matches!(next, Next::Subscribe(_)) {
                worker.shared.per_ip.release(key);
                conn.peer.key = per_ip::UNCOUNTED;
            }
            next
        }
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
        ("/readyz", Method::Get | Method::Head) => {
            let ready = worker
                .shared
                .ready
                .load(std::sync::atomic::Ordering::Acquire);
            if ready && !worker.is_draining() {
                response(
                    200,
                    "application/json",
                    &[],
                    br#"{"status":"ready"}"#,
                    keep_alive,
                )
            } else {
                let status: &[u8] = if ready {
                    br#"{"status":"draining"}"#
                } else {
                    br#"{"status":"starting"}"#
                };
                response(
                    503,
                    "application/json",
                    &[("Retry-After", "1")],
                    status,
                    keep_alive,
                )
            }
        }
        ("/readyz", _) => not_allowed("GET, HEAD"),
        ("/metrics", Method::Get | Method::Head) => {
            let mut text = WorkerMetrics::render(&worker.shared.metrics);
            crate::ops::log::render_metrics(&mut text);
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
