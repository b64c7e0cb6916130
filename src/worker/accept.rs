//! Accepting connections: the capacity and per-address checks, then a connection task
//! ([`super::routes`]). Refused connections are answered and closed gracefully. The admin
//! listener (`--admin-listen`, on worker 0) is accepted here too, without those checks, so that
//! a server at capacity can still be watched.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use monoio::net::TcpStream;

use super::conn::Conn;
use super::{routes, Worker};
use crate::api::ApiError;
use crate::per_ip;

/// How long a refused connection may take to send its request head before it is answered.
const REJECT_READ: Duration = Duration::from_millis(500);

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// The public port: the API (and, without `--admin-listen`, the operations paths too).
    Public,
    /// `--admin-listen`: `/metrics`, `/healthz`, `/readyz`, the dashboard.
    Admin,
}

/// The client of a connection: its address (after `--trusted-proxy` resolution, once known) and
/// the key it is counted under for `--max-connections-per-ip` ([`per_ip::UNCOUNTED`]: not).
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    pub(super) ip: IpAddr,
    pub(super) key: u64,
}

impl Worker {
    pub(super) async fn accept_loop(
        self: Rc<Self>,
        listener: monoio::net::TcpListener,
        side: Side,
    ) {
        loop {
            let accepted = monoio::select! {
                r = listener.accept() => Some(r),
                _ = self.drain_signal.wait() => None,
            };
            let Some(accepted) = accepted else { break };
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer.ip(), side),
                Err(e) => {
                    self.metrics.accept_errors_total.inc();
                    crate::ops::failures::note_accept_error(&e);
                    // EMFILE/ENFILE/ENOBUFS/ENOMEM: back off instead of spinning on a full table.
                    let pause = match e.raw_os_error() {
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                            Duration::from_millis(100)
                        }
                        _ => Duration::from_millis(5),
                    };
                    monoio::select! {
                        _ = monoio::time::sleep(pause) => {},
                        _ = self.drain_signal.wait() => break,
                    }
                }
            }
        }
    }

    /// Count a new connection in, or refuse it (503 at capacity, 429 over the per-address limit).
    /// A trusted proxy's connection is counted per address once its request names the client.
    fn admit(self: &Rc<Self>, stream: TcpStream, peer: IpAddr, side: Side) {
        self.metrics.connections_accepted_total.inc();
        if side == Side::Admin {
            // Not counted against --max-connections or per address (see per_ip::ADMIN).
            self.metrics.connections.inc();
            let peer = Peer {
                ip: peer,
                key: per_ip::ADMIN,
            };
            monoio::spawn(routes::serve_connection(
                Rc::clone(self),
                stream,
                peer,
                side,
            ));
            return;
        }
        let open = self.shared.open_connections.fetch_add(1, Ordering::Relaxed);
        let peer_key = if self.shared.proxies.contains(peer) {
            per_ip::UNCOUNTED
        } else {
            per_ip::key(peer)
        };
        let refusal = if open >= self.limits().max_connections {
            self.metrics.connections_rejected_total.inc();
            Some(ApiError::AT_CAPACITY)
        } else if !self.shared.per_ip.acquire(peer_key) {
            self.metrics.connections_rejected_per_ip_total.inc();
            Some(ApiError::TooManyFromAddress)
        } else {
            None
        };
        match refusal {
            Some(why) => {
                self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
                monoio::spawn(Rc::clone(self).reject(stream, why));
            }
            None => {
                self.metrics.connections.inc();
                monoio::spawn(routes::serve_connection(
                    Rc::clone(self),
                    stream,
                    Peer {
                        ip: peer,
                        key: peer_key,
                    },
                    side,
                ));
            }
        }
    }

    /// A connection (of any kind) ended; `peer_key` as it was counted.
    pub(super) fn connection_closed(&self, peer_key: u64) {
        self.metrics.connections.dec();
        if peer_key == per_ip::ADMIN {
            return;
        }
        self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        self.shared.per_ip.release(peer_key);
    }
}

impl Worker {
    /// Answer a refused connection: read its request head first (within a short bound), so an
    /// allowed browser origin gets its CORS fields on the 503/429 too, then close gracefully.
    /// A client that sends nothing is answered when the bound passes.
    async fn reject(self: Rc<Self>, stream: TcpStream, why: ApiError) {
        let peer = Peer {
            ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            key: per_ip::UNCOUNTED,
        };
        let mut conn = Conn::new(stream, peer, Side::Public);
        let limits = self.limits().head;
        let head = monoio::time::timeout(REJECT_READ, conn.read_head(&limits)).await;
        let cors = self.shared.auth.cors();
        let grant = match head {
            Ok(Ok(_)) => cors.response_headers(conn.header("origin")),
            _ => cors.response_headers(None),
        };
        if conn.send(why.response(grant.as_slice(), false)).await {
            conn.linger_close().await;
        }
    }
}
