//! Why a request was refused, as a status, an RFC 6750 challenge and a JSON message.
//!
//! Messages tell the client what to do next and never repeat the token (nor anything read from
//! it other than what the client asked for: the channel it was refused).

use std::fmt;

use crate::http::response::json_error;

use super::jwt::MAX_TOKEN_BYTES;

/// The realm in every `WWW-Authenticate` challenge.
pub const REALM: &str = "pushcore";

/// What the client tried to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a stream (`GET /events/stream`).
    Subscribe,
    /// Publish (`POST /events/publish`).
    Publish,
}

/// Why a token (or its absence) was refused: each is a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No token in the request, and anonymous access is not allowed for this action.
    Missing,
    /// The server has no key configured, so it cannot verify any token.
    NoKey,
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Not three base64url parts with a JSON header naming an algorithm.
    Malformed,
    /// `alg: none`.
    Unsigned,
    /// Signed with an algorithm other than the one this server's key is for.
    WrongAlgorithm {
        /// The algorithm the server accepts (`HS256`, `RS256` or `ES256`).
        accepted: &'static str,
    },
    /// The signature does not verify with the server's key.
    BadSignature,
    /// The signature verifies but a claim has the wrong type.
    BadClaims,
    /// `iss` missing or not the configured issuer.
    WrongIssuer,
    /// `aud` missing or not containing the configured audience.
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    NotYetValid,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Missing => f.write_str(
                "missing token: send it as `Authorization: Bearer <token>`, in the auth cookie \
                 or as the `token` query parameter",
            ),
            Rejection::NoKey => f.write_str("this server has no key to verify tokens with"),
            Rejection::TooLong => write!(f, "token is longer than {MAX_TOKEN_BYTES} bytes"),
            Rejection::Malformed => f.write_str(
                "malformed token: expected a JWT, three base64url parts separated by dots",
            ),
            Rejection::Unsigned => f.write_str("unsigned token (alg \"none\") refused"),
            Rejection::WrongAlgorithm { accepted } => write!(
                f,
                "token algorithm refused: this server accepts only {accepted} tokens"
            ),
            Rejection::BadSignature => f.write_str(
                "token signature does not verify: it was not signed with this server's key",
            ),
            Rejection::BadClaims => f.write_str(
                "token claims are malformed: subscribe and publish must be lists of channel \
                 patterns, exp and nbf numbers, iss a string, aud a string or list of strings",
            ),
            Rejection::WrongIssuer => f.write_str("token issuer (iss) is missing or not accepted"),
            Rejection::WrongAudience => {
                f.write_str("token audience (aud) is missing or does not name this server")
            }
            Rejection::Expired => f.write_str("token expired: get a fresh token and reconnect"),
            Rejection::NotYetValid => f.write_str(
                "token is not valid yet (nbf is in the future): check the issuer's clock",
            ),
        }
    }
}

/// A refused request: 401 (no usable token) or 403 (a valid token without the right).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// 401: the token is missing or invalid.
    Unauthorized(Rejection),
    /// 403: the token is valid but does not allow `action` on `channel`.
    Forbidden {
        /// What was refused.
        action: Action,
        /// The first requested channel the token does not cover (empty if none was named).
        channel: String,
    },
}

impl AuthError {
    /// The status to answer with: 401 or 403.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Unauthorized(_) => 401,
            AuthError::Forbidden { .. } => 403,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3): a bare challenge when no token was sent,
    /// `invalid_token` for a refused token, `insufficient_scope` for a 403.
    pub fn www_authenticate(&self) -> &'static str {
        macro_rules! invalid {
            ($d:literal) => {
                concat!(
                    "Bearer realm=\"pushcore\", error=\"invalid_token\", error_description=\"",
                    $d,
                    "\""
                )
            };
        }
        match self {
            AuthError::Unauthorized(r) => match r {
                Rejection::Missing => "Bearer realm=\"pushcore\"",
                Rejection::NoKey => invalid!("The server has no key configured"),
                Rejection::TooLong => invalid!("The token is too long"),
                Rejection::Malformed => invalid!("The token is malformed"),
                Rejection::Unsigned => invalid!("Unsigned tokens are refused"),
                Rejection::WrongAlgorithm { .. } => invalid!("The token algorithm is not accepted"),
                Rejection::BadSignature => invalid!("The token signature is invalid"),
                Rejection::BadClaims => invalid!("The token claims are malformed"),
                Rejection::WrongIssuer => invalid!("The token issuer is not accepted"),
                Rejection::WrongAudience => invalid!("The token audience is not accepted"),
                Rejection::Expired => invalid!("The token expired"),
                Rejection::NotYetValid => invalid!("The token is not valid yet"),
            },
            AuthError::Forbidden { .. } => {
                "Bearer realm=\"pushcore\", error=\"insufficient_scope\""
            }
        }
    }

    /// The whole response: status, `WWW-Authenticate`, then `extra_headers` (CORS, typically),
    /// and `{"error":"<message>"}`.
    pub fn response(&self, extra_headers: &[(&str, &str)], keep_alive: bool) -> Vec<u8> {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra_headers.len() + 1);
        headers.push(("WWW-Authenticate", self.www_authenticate()));
        headers.extend_from_slice(extra_headers);
        json_error(self.status(), &self.to_string(), &headers, keep_alive)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Unauthorized(rejection) => rejection.fmt(f),
            AuthError::Forbidden { action, channel } => {
                let verb = match action {
                    Action::Subscribe => "subscribing to",
                    Action::Publish => "publishing to",
                };
                if channel.is_empty() {
                    write!(f, "forbidden: no channel named")
                } else {
                    write!(
                        f,
                        "forbidden: the token does not allow {verb} channel {channel:?}"
                    )
                }
            }
        }
    }
}

impl std::error::Error for AuthError {}
