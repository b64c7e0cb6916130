//! Finding the token in a request, in this order:
//! 1. `Authorization: Bearer <token>` (scheme ASCII case-insensitive, RFC 6750 §2.1);
//! 2. the auth cookie (`--jwt-cookie`, default `pushcore_token`) in any `Cookie` header;
//! 3. the query parameter `token` (EventSource cannot set headers).
//!
//! The first source that *holds* a token wins, even if that token turns out invalid: a request
//! is judged by one token, never by whichever of several happens to verify. A source holds a
//! token when its value is non-empty UTF-8; whether it is a well-formed JWT is for
//! verification to say, so a garbled token is answered "malformed", not "missing".
//!
//! Cookies (RFC 6265 §4.2.1, read leniently as browsers send them): `name=value` pairs
//! separated by `;` and optional whitespace, in one or several `Cookie` headers. Names are
//! case-sensitive; a value in double quotes is taken without them; the first pair with the
//! name and a non-empty value wins (browsers send the most specific path first). A pair
//! without `=` is skipped.
//!
//! Every token returned is a slice of the request: of the read buffer for the header and the
//! cookie, of the decoded query value for the query parameter.

use crate::http::parse::Header;
use crate::http::query::Target;

/// The default `--jwt-cookie`.
pub const DEFAULT_COOKIE: &str = "pushcore_token";

/// The query parameter a token may travel in.
pub const QUERY_PARAM: &str = "token";

/// Where a token was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// The auth cookie.
    Cookie,
    /// The `token` query parameter.
    Query,
}

impl TokenSource {
    /// A short name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Header => "header",
            TokenSource::Cookie => "cookie",
            TokenSource::Query => "query",
        }
    }
}

/// A token as found in a request, borrowing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// Where it was found.
    pub source: TokenSource,
    /// The token text, not yet verified.
    pub value: &'a str,
}

/// The token of a request: `buf` is the read buffer `headers` index, `cookie` the cookie name.
pub fn extract_token<'a>(
    buf: &'a [u8],
    headers: &[Header],
    target: &'a Target,
    cookie: &str,
) -> Option<Token<'a>> {
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| h.value.get(buf))
    };
    if let Some(value) = named("authorization").find_map(bearer_token) {
        return Some(Token {
            source: TokenSource::Header,
            value,
        });
    }
    if let Some(value) = named("cookie").find_map(|v| cookie_value(v, cookie)) {
        return Some(Token {
            source: TokenSource::Cookie,
            value,
        });
    }
    target
        .params(QUERY_PARAM)
        .find(|v| !v.is_empty())
        .map(|value| Token {
            source: TokenSource::Query,
            value,
        })
}

/// The credentials of an `Authorization` value with the `Bearer` scheme: after the scheme and
/// at least one space or tab, up to the end of the value less trailing whitespace.
pub fn bearer_token(value: &[u8]) -> Option<&str> {
    const SCHEME: &[u8] = b"bearer";
    let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || !rest.first().is_some_and(|&b| is_ows(b)) {
        return None;
    }
    non_empty_str(trim_ows(rest))
}

/// The value of the cookie `name` in one `Cookie` header value.
pub fn cookie_value<'v>(header_value: &'v [u8], name: &str) -> Option<&'v str> {
    header_value.split(|&b| b == b';').find_map(|pair| {
        let pair = trim_ows(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (pair_name, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        if trim_ows(pair_name) != name.as_bytes() {
            return None;
        }
        let value = trim_ows(value);
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        };
        non_empty_str(value)
    })
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn non_empty_str(s: &[u8]) -> Option<&str> {
    if s.is_empty() {
        return None;
    }
    std::str::from_utf8(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_table() {
        let rows: &[(&[u8], Option<&str>)] = &[
            (b"Bearer abc", Some("abc")),
            (b"bearer abc", Some("abc")),
            (b"BEARER\tabc", Some("abc")),
            (b"Bearer   a.b.c  ", Some("a.b.c")),
            (b"Bearer", None),
            (b"Bearer ", None),
            (b"Bearerabc", None),
            (b"Basic dXNlcjpwYXNz", None),
            (b"", None),
            (b"Bearer \xff\xfe", None),
        ];
        for (value, want) in rows {
            assert_eq!(bearer_token(value), *want, "{}", value.escape_ascii());
        }
    }
}
