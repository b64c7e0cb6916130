//! Authorization (JWT) and CORS: the decisions the HTTP edge asks for, with no I/O.
//!
//! [`AuthConfig`] holds the options; [`AuthConfig::build`] checks them and loads the key once,
//! giving an [`Auth`] that every worker reads (it is `Send + Sync` and never changes). Per
//! request the edge:
//! 1. finds the token: [`Auth::token_from_request`] (header, then cookie, then `?token=`);
//! 2. asks for a decision: [`Auth::authorize_subscribe`] or [`Auth::authorize_publish`], which
//!    verify the token ([`Auth::verify`]) and check its channel patterns ([`Claims`]);
//! 3. answers a refusal with [`AuthError::response`] (401 with an RFC 6750 challenge, or 403),
//!    and adds [`Cors`] fields to every response to a browser.
//!
//! With no key configured auth is off: every request is allowed and no token is looked at.
//! With a key, publishing always needs a valid token with a matching `publish` pattern, and
//! subscribing needs one with a matching `subscribe` pattern unless `--anonymous-subscribe` is
//! given and the request carries no token at all (a token that is present is always checked).
//! A subscriber's [`Grant`] says when its token stops being accepted, so the worker can close
//! the stream then.
//!
//! Dependencies: [`crate::http`] (header spans, target, response bytes) only.

pub mod claims;
pub mod config;
pub mod cors;
pub mod error;
pub mod extract;
pub mod jwt;

pub use claims::{Claims, Pattern};
pub use config::AuthConfig;
pub use cors::{Cors, CorsGrant, CorsHeaders, CorsRoute};
pub use error::{Action, AuthError, Rejection};
pub use extract::{Token, TokenSource};
pub use jwt::{LEEWAY_SECS, MAX_TOKEN_BYTES};

use crate::http::parse::Header;
use crate::http::query::Target;

use claims::first_denied;
use jwt::Verifier;

/// The authorization and CORS policy, built once by [`AuthConfig::build`].
#[derive(Debug)]
pub struct Auth {
    verifier: Option<Verifier>,
    cookie: String,
    anonymous_subscribe: bool,
    cors: Cors,
}

/// What a valid token grants a connection beyond the check itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Unix second from which the token is no longer accepted (`exp` + [`LEEWAY_SECS`]); the
    /// stream is closed then (after `event: token-expired`). `None`: the token has no `exp`.
    pub expires_at: Option<u64>,
    /// The token's subject (`sub`), for logs.
    pub subject: Option<String>,
}

impl Default for Auth {
    /// Auth off and no CORS: what `pushcore serve` does without auth flags.
    fn default() -> Self {
        Auth {
            verifier: None,
            cookie: extract::DEFAULT_COOKIE.to_owned(),
            anonymous_subscribe: false,
            cors: Cors::default(),
        }
    }
}

impl Auth {
    /// Whether a key is configured (otherwise every request is allowed and tokens are ignored;
    /// the edge can skip looking for one).
    pub fn is_enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// The CORS policy.
    pub fn cors(&self) -> &Cors {
        &self.cors
    }

    /// The name of the cookie a token may travel in.
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// The request's token, from the first source that holds one (see [`extract`]): `buf` is
    /// the read buffer `headers` index, `target` the decoded request-target.
    pub fn token_from_request<'a>(
        &self,
        buf: &'a [u8],
        headers: &[Header],
        target: &'a Target,
    ) -> Option<Token<'a>> {
        extract::extract_token(buf, headers, target, &self.cookie)
    }

    /// Verify `token` at `now_unix` (seconds): signature with the configured key and algorithm,
    /// then `iss`, `aud`, `exp`, `nbf`. Without a key every token is refused
    /// ([`Rejection::NoKey`]).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, AuthError> {
        let verifier = self
            .verifier
            .as_ref()
            .ok_or(AuthError::Unauthorized(Rejection::NoKey))?;
        verifier
            .verify(token, now_unix)
            .map_err(AuthError::Unauthorized)
    }

    /// May this request subscribe to `channels`? `Ok(None)`: yes, without a token (auth off,
    /// or anonymous subscribing allowed and no token sent). `Ok(Some(grant))`: yes, by a valid
    /// token that covers every channel.
    pub fn authorize_subscribe(
        &self,
        token: Option<&str>,
        channels: &[String],
        now_unix: u64,
    ) -> Result<Option<Grant>, AuthError> {
        self.authorize(Action::Subscribe, token, channels, now_unix)
    }

    /// May this request publish to `channels`? As [`Auth::authorize_subscribe`], except that
    /// with a key configured a token is always required.
    pub fn authorize_publish(
        &self,
        token: Option<&str>,
        channels: &[String],
        now_unix: u64,
    ) -> Result<Option<Grant>, AuthError> {
        self.authorize(Action::Publish, token, channels, now_unix)
    }

    fn authorize(
        &self,
        action: Action,
        token: Option<&str>,
        channels: &[String],
        now_unix: u64,
    ) -> Result<Option<Grant>, AuthError> {
        let admitted = self.admit(action, token, now_unix)?;
        self.grant(action, admitted.as_ref(), channels)
    }

    /// The first half of a decision, for a request whose channels are not known yet (a publish
    /// before its body is read): is a token needed, and is the one sent valid? `Ok(None)`: no
    /// token needed (auth off, or an anonymous subscriber). The token is verified here once;
    /// [`Auth::grant`] then checks the channels against its claims.
    pub fn admit(
        &self,
        action: Action,
        token: Option<&str>,
        now_unix: u64,
    ) -> Result<Option<Claims>, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let Some(token) = token else {
            return if action == Action::Subscribe && self.anonymous_subscribe {
                Ok(None)
            } else {
                Err(AuthError::Unauthorized(Rejection::Missing))
            };
        };
        verifier
            .verify(token, now_unix)
            .map(Some)
            .map_err(AuthError::Unauthorized)
    }

    /// The second half: do the admitted `claims` cover every one of `channels`? `claims` is
    /// what [`Auth::admit`] returned (None: admitted without a token).
    pub fn grant(
        &self,
        action: Action,
        claims: Option<&Claims>,
        channels: &[String],
    ) -> Result<Option<Grant>, AuthError> {
        let Some(claims) = claims else {
            return Ok(None);
        };
        let patterns = match action {
            Action::Subscribe => &claims.subscribe,
            Action::Publish => &claims.publish,
        };
        let denied = if channels.is_empty() {
            Some("")
        } else {
            first_denied(patterns, channels)
        };
        if let Some(channel) = denied {
            return Err(AuthError::Forbidden {
                action,
                channel: channel.to_owned(),
            });
        }
        Ok(Some(Grant {
            expires_at: claims.exp.map(|exp| exp.saturating_add(LEEWAY_SECS)),
            subject: claims.sub.clone(),
        }))
    }
}

/// The current unix time in seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn auth_is_shared_read_only_by_workers() {
        assert_send_sync::<Auth>();
    }

    #[test]
    fn default_is_off() {
        let auth = Auth::default();
        assert!(!auth.is_enabled());
        assert!(!auth.cors().is_enabled());
        assert_eq!(auth.authorize_publish(None, &["x".into()], 0), Ok(None));
        assert_eq!(
            auth.verify("a.b.c", 0),
            Err(AuthError::Unauthorized(Rejection::NoKey))
        );
    }

    #[test]
    fn every_challenge_names_the_realm() {
        let errors = [
            AuthError::Unauthorized(Rejection::Missing),
            AuthError::Unauthorized(Rejection::Expired),
            AuthError::Forbidden {
                action: Action::Publish,
                channel: "x".into(),
            },
        ];
        for e in errors {
            let challenge = e.www_authenticate();
            assert!(
                challenge.starts_with(&format!("Bearer realm=\"{}\"", error::REALM)),
                "{challenge}"
            );
        }
    }
}
