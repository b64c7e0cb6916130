//! The request-target, decoded: path and query parameters.
//!
//! [`parse_target`] takes the target bytes as sent (see [`crate::http::parse::Head::target`])
//! and percent-decodes the path and the query (the query as `application/x-www-form-urlencoded`:
//! `+` is a space). Choices:
//! - Origin-form (`/path?query`), absolute-form (`http://host/path?query`, only the path and query
//!   are kept) and asterisk-form (`*`, path `"*"`) are accepted; anything else is 400.
//! - Empty path (absolute-form `http://host` or `http://host?x`) → `/`.
//! - A `%` not followed by two hex digits → 400 [`HttpError::BadPercentEncoding`]; decoded bytes
//!   that are not UTF-8, or NUL (`%00`) → 400 [`HttpError::BadTargetEncoding`].
//! - A fragment (`#`) or any byte outside visible ASCII → 400 [`HttpError::BadTarget`].
//! - The path is decoded as a whole: `%2F` becomes `/` (routes do not distinguish the two).
//! - Query pairs are split on `&` only; empty pairs (`a=1&&b=2`, a trailing `&`) are skipped;
//!   a pair without `=` has an empty value; repeated names are kept, in order.
//! - More than [`MAX_QUERY_PAIRS`] pairs → 414 [`HttpError::TooManyQueryParams`] (the target is
//!   longer than the server is willing to interpret).

use memchr::{memchr, memchr2};

use super::error::HttpError;
use super::parse::strip_scheme;

/// The most query pairs one target may carry (→ 414).
pub const MAX_QUERY_PAIRS: usize = 256;

/// A decoded request-target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The decoded path; starts with `/` (or is `*` for asterisk-form).
    pub path: String,
    /// The decoded query pairs, in order, repeats kept.
    pub query: Vec<(String, String)>,
}

impl Target {
    /// The value of the first query parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The values of every query parameter named `name`, in order.
    pub fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decode a request-target (the raw bytes from the request line).
pub fn parse_target(raw: &[u8]) -> Result<Target, HttpError> {
    if !raw.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'#') {
        return Err(HttpError::BadTarget);
    }
    let relative = match raw {
        b"*" => {
            return Ok(Target {
                path: "*".to_owned(),
                query: Vec::new(),
            })
        }
        [b'/', ..] => raw,
        _ => {
            let rest = strip_scheme(raw).ok_or(HttpError::BadTarget)?;
            let auth_len = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            let authority = rest.get(..auth_len).unwrap_or(&[]);
            if authority.is_empty() || authority.contains(&b'@') {
                return Err(HttpError::BadTarget);
            }
            rest.get(auth_len..).unwrap_or(&[])
        }
    };

    let (raw_path, raw_query) = match memchr(b'?', relative) {
        Some(q) => (
            relative.get(..q).unwrap_or(&[]),
            relative.get(q + 1..).unwrap_or(&[]),
        ),
        None => (relative, &[][..]),
    };
    let mut path = decode(raw_path, false)?;
    if path.is_empty() {
        path.push('/');
    }

    let mut query = Vec::new();
    for pair in raw_query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if query.len() == MAX_QUERY_PAIRS {
            return Err(HttpError::TooManyQueryParams {
                max: MAX_QUERY_PAIRS,
            });
        }
        let (name, value) = match memchr(b'=', pair) {
            Some(eq) => (
                pair.get(..eq).unwrap_or(&[]),
                pair.get(eq + 1..).unwrap_or(&[]),
            ),
            None => (pair, &[][..]),
        };
        query.push((decode(name, true)?, decode(value, true)?));
    }
    Ok(Target { path, query })
}

/// Percent-decode `raw` (and `+` → space when `plus_is_space`) into UTF-8 without NUL.
fn decode(raw: &[u8], plus_is_space: bool) -> Result<String, HttpError> {
    let needs_work = if plus_is_space {
        memchr2(b'%', b'+', raw).is_some()
    } else {
        memchr(b'%', raw).is_some()
    };
    let bytes = if needs_work {
        let mut out = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let [b, tail @ ..] = rest {
            rest = tail;
            match b {
                b'%' => {
                    let [hi, lo, tail @ ..] = rest else {
                        return Err(HttpError::BadPercentEncoding);
                    };
                    let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) else {
                        return Err(HttpError::BadPercentEncoding);
                    };
                    out.push(hi << 4 | lo);
                    rest = tail;
                }
                b'+' if plus_is_space => out.push(b' '),
                _ => out.push(*b),
            }
        }
        out
    } else {
        raw.to_vec()
    };
    if memchr(0, &bytes).is_some() {
        return Err(HttpError::BadTargetEncoding);
    }
    String::from_utf8(bytes).map_err(|_| HttpError::BadTargetEncoding)
}

/// The value of a hex digit.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
