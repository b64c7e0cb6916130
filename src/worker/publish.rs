//! `POST /events/publish`: the publisher's token is checked before its body is read, the body
//! is validated ([`crate::api::publish`]), the events are submitted to the bus, and the answer
//! waits for their ids — this is where a publish waits for the sequencer.

use std::rc::Rc;

use super::conn::{Conn, ReadFail};
use super::routes::{refuse, Next};
use super::Worker;
use crate::api::publish::{answer_body, parse_publish};
use crate::api::ApiError;
use crate::auth::{now_unix, Action};
use crate::bus::{Answer, Busy};
use crate::http::parse::Head;
use crate::http::query::Target;
use crate::http::response::response;
use crate::http::HttpError;
use crate::ops::access;
use crate::sse::id::unix_ms_now;

impl Worker {
    pub(super) async fn publish(
        self: &Rc<Self>,
        conn: &mut Conn,
        head: &Head,
        target: &Target,
        keep_alive: bool,
    ) -> Next {
        let began = std::time::Instant::now();
        let auth = &self.shared.auth;
        let cors = auth.cors().response_headers(conn.header("origin"));
        let cors = cors.as_slice();
        // The token is verified once, before the body is read: an anonymous or invalid
        // publisher is answered 401 without the server taking its body. Its channel rights
        // are checked against the same claims once the body names the channels.
        let token = auth
            .token_from_request(&conn.buf, &conn.headers, target)
            .map(|t| t.value.to_string());
        // A refusal before the body is read: answered, logged, and the connection closed.
        let early = |err: ApiError, conn: &Conn| {
            log_access(conn, err.status(), 0, None, 0, began);
            err
        };
        let claims = match auth.admit(Action::Publish, token.as_deref(), now_unix()) {
            Ok(c) => c,
            Err(e) => return refuse(self, conn, &early(e.into(), conn), cors).await,
        };
        if !is_json(conn.header("content-type")) {
            let err = HttpError::UnsupportedMediaType {
                expected: "application/json",
            };
            return refuse(self, conn, &early(err.into(), conn), cors).await;
        }
        let (body, consumed) = match conn.read_body(head, self.limits().max_body_bytes).await {
            Ok(b) => b,
            Err(ReadFail::Gone) => return Next::Close,
            Err(ReadFail::Refuse(e)) => {
                return refuse(self, conn, &early(e.into(), conn), cors).await
            }
        };
        conn.consume(consumed);
        // From here the request was read whole: errors are answered on a kept-alive connection.
        let outcome = self.sequence(&body, claims.as_ref()).await;
        let (resp, status, events, first) = match outcome {
            Ok((ids, batch)) => {
                self.metrics.publish_requests_total.inc();
                let answer = answer_body(&ids, batch);
                let resp = response(200, "application/json", cors, answer.as_bytes(), keep_alive);
                (resp, 200, ids.len(), ids.first().map(|id| id.to_string()))
            }
            Err(err) => {
                self.count_refusal(&err);
                (err.response(cors, keep_alive), err.status(), 0, None)
            }
        };
        log_access(conn, status, events, first.as_deref(), body.len(), began);
        Next::after(conn.send(resp).await, keep_alive)
    }

    /// Validate `body`, check the channels against the publisher's claims, and wait for the
    /// sequencer's ids. Returns the ids and whether the body was a batch.
    async fn sequence(
        self: &Rc<Self>,
        body: &[u8],
        claims: Option<&crate::auth::Claims>,
    ) -> Result<(Vec<crate::sse::id::EventId>, bool), ApiError> {
        let published = parse_publish(body).map_err(ApiError::bad_body)?;
        self.shared
            .auth
            .grant(Action::Publish, claims, &published.channels())?;
        let n = published.events.len() as u64;
        let submitted = std::time::Instant::now();
        let ticket = self
            .bus
            .borrow_mut()
            .submit(published.events, unix_ms_now());
        // Events sequenced in place (on the worker hosting the sequencer) are recorded now and
        // written to subscribers right after this answer.
        self.pump_bus_then_write();
        match ticket.await {
            Ok(Answer::Ids(ids)) => {
                self.metrics.events_published_total.add(n);
                self.metrics.publish_sequenced.observe(submitted.elapsed());
                Ok((ids, published.batch))
            }
            Ok(_) | Err(Busy) if self.shared.cluster => Err(ApiError::LOG_UNAVAILABLE),
            Ok(_) | Err(Busy) => Err(ApiError::BUSY),
        }
    }
}

/// One access-log line for a publish request (when `--access-log` is on).
fn log_access(
    conn: &Conn,
    status: u16,
    events: usize,
    first_event_id: Option<&str>,
    body_bytes: usize,
    began: std::time::Instant,
) {
    if access::enabled() {
        access::publish(&access::PublishRecord {
            client: conn.peer.ip,
            status,
            events,
            first_event_id,
            body_bytes: body_bytes as u64,
            micros: u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
        });
    }
}

fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let media = value.split(|&b| b == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(b"application/json")
}
