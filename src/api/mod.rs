//! The HTTP API's pure half: what a request means and how a refusal is answered, with no I/O.
//! The worker's routes ([`crate::worker`]) read the bytes and call these.
//!
//! - [`subscribe`]: `GET /events/stream` — which channels, and the resume id as sent;
//! - [`publish`]: `POST /events/publish` — the body, validated into events, and the answer;
//! - [`ApiError`]: every refusal at the edge, one enum, each mapped to one status code and one
//!   JSON body `{"error":"…"}` (plus `Allow`, `Retry-After` or `WWW-Authenticate` as fitting).

pub mod publish;
pub mod subscribe;

use std::fmt;

use crate::auth::AuthError;
use crate::http::response::{http_error_with, json_error};
use crate::http::HttpError;

/// Seconds a client is asked to wait after a refusal for load (503 at capacity, 429).
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// Malformed or unacceptable HTTP, a bad body, an unknown route, a full server: the
    /// [`HttpError`] knows its status.
    Http(HttpError),
    /// No token, a bad one, or one without the right (401/403).
    Auth(AuthError),
    /// `--max-connections-per-ip` (429).
    TooManyFromAddress,
}

impl ApiError {
    /// `--max-connections` was reached (503 with `Retry-After`).
    pub const AT_CAPACITY: ApiError = ApiError::Http(HttpError::ServiceUnavailable {
        message: "Server at capacity",
        retry_after_secs: RETRY_AFTER_SECS,
    });

    /// The sequencer cannot take events now (503 with `Retry-After: 1`).
    pub const BUSY: ApiError = ApiError::Http(HttpError::ServiceUnavailable {
        message: "Server busy: event queues are full",
        retry_after_secs: 1,
    });

    /// Cluster mode: the event log (Redis) did not take the events in time (503 with
    /// `Retry-After: 1`); nothing was acknowledged.
    pub const LOG_UNAVAILABLE: ApiError = ApiError::Http(HttpError::ServiceUnavailable {
        message: "Event log unavailable: try again shortly",
        retry_after_secs: 1,
    });

    /// A request body that is not what the route takes (400, naming the reason).
    pub fn bad_body(reason: impl Into<String>) -> ApiError {
        ApiError::Http(HttpError::BadBody(reason.into()))
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Http(e) => e.status(),
            ApiError::Auth(e) => e.status(),
            ApiError::TooManyFromAddress => 429,
        }
    }

    /// The whole response, with `extra_headers` (CORS grants) after the error's own.
    pub fn response(&self, extra_headers: &[(&str, &str)], keep_alive: bool) -> Vec<u8> {
        match self {
            ApiError::Http(e) => http_error_with(e, extra_headers, keep_alive),
            ApiError::Auth(e) => e.response(extra_headers, keep_alive),
            ApiError::TooManyFromAddress => {
                let retry = RETRY_AFTER_SECS.to_string();
                let mut headers = vec![("Retry-After", retry.as_str())];
                headers.extend_from_slice(extra_headers);
                json_error(429, &self.to_string(), &headers, keep_alive)
            }
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Http(e) => e.fmt(f),
            ApiError::Auth(e) => e.fmt(f),
            ApiError::TooManyFromAddress => f.write_str("Too many connections from this address"),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        ApiError::Http(e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Auth(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Rejection;

    fn head(resp: &[u8]) -> String {
        let text = String::from_utf8_lossy(resp);
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn each_error_has_one_status_and_a_json_body() {
        let rows: Vec<(ApiError, u16, &[&str])> = vec![
            (ApiError::AT_CAPACITY, 503, &["Retry-After: 5"]),
            (ApiError::BUSY, 503, &["Retry-After: 1"]),
            (ApiError::TooManyFromAddress, 429, &["Retry-After: 5"]),
            (ApiError::bad_body("no channel"), 400, &[]),
            (ApiError::Http(HttpError::NotFound), 404, &[]),
            (
                ApiError::Http(HttpError::MethodNotAllowed { allow: "GET" }),
                405,
                &["Allow: GET"],
            ),
            (
                ApiError::Auth(AuthError::Unauthorized(Rejection::Missing)),
                401,
                &["WWW-Authenticate: Bearer"],
            ),
        ];
        for (err, status, headers) in rows {
            assert_eq!(err.status(), status, "{err}");
            let resp = err.response(
                &[("Access-Control-Allow-Origin", "https://a.example")],
                false,
            );
            let h = head(&resp);
            assert!(h.starts_with(&format!("HTTP/1.1 {status} ")), "{h}");
            for want in headers {
                assert!(h.contains(want), "{err}: missing {want} in {h}");
            }
            assert!(
                h.contains("Access-Control-Allow-Origin: https://a.example"),
                "{h}"
            );
            let body = String::from_utf8_lossy(&resp);
            let body = body.split("\r\n\r\n").nth(1).unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
            assert_eq!(json["error"].as_str(), Some(err.to_string().as_str()));
        }
    }
}
