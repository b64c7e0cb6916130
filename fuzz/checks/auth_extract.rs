//! `auth::extract` on any bytes: never panics, and every token found is a non-empty slice of
//! what it was found in, from the right source in the right order.
//!
//! The input is used three ways: as an `Authorization` value (`bearer_token`), as a `Cookie`
//! value (`cookie_value`, checked against a reference parser written differently), and as a
//! request head (`parse_head` + `parse_target` + `extract_token`: the token must come from the
//! first source holding one). Self-contained (no `super::`), so `tests/auth_fuzz.rs` can include
//! it on its own.

use pushcore::auth::extract::{
    bearer_token, cookie_value, extract_token, TokenSource, DEFAULT_COOKIE, QUERY_PARAM,
};
use pushcore::http::parse::{parse_head, HeadLimits, Parsed};
use pushcore::http::query::parse_target;

fn shown(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Whether `inner` lies inside `outer` (same allocation, in bounds).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr_range(), inner.as_ptr_range());
    i.start >= o.start && i.end <= o.end
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 6265 `cookie-string` read leniently, by index arithmetic rather than slice patterns.
fn reference_cookie<'v>(value: &'v [u8], name: &str) -> Option<&'v str> {
    let mut start = 0;
    while start <= value.len() {
        let end = value[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(value.len(), |p| start + p);
        let piece = &value[start..end];
        if let Some(eq) = piece.iter().position(|&b| b == b'=') {
            let (mut a, mut b) = (0, eq);
            while a < b && is_ows(piece[a]) {
                a += 1;
            }
            while b > a && is_ows(piece[b - 1]) {
                b -= 1;
            }
            if &piece[a..b] == name.as_bytes() {
                let (mut c, mut d) = (eq + 1, piece.len());
                while c < d && is_ows(piece[c]) {
                    c += 1;
                }
                while d > c && is_ows(piece[d - 1]) {
                    d -= 1;
                }
                if d - c >= 2 && piece[c] == b'"' && piece[d - 1] == b'"' {
                    c += 1;
                    d -= 1;
                }
                if c < d {
                    if let Ok(s) = std::str::from_utf8(&piece[c..d]) {
                        return Some(s);
                    }
                }
            }
        }
        start = end + 1;
    }
    None
}

pub fn check(data: &[u8]) {
    // As an Authorization value.
    if let Some(token) = bearer_token(data) {
        assert!(
            within(data, token.as_bytes()),
            "bearer outside input: {}",
            shown(data)
        );
        assert!(!token.is_empty(), "empty bearer: {}", shown(data));
        assert!(
            data.len() > 6 && data[..6].eq_ignore_ascii_case(b"bearer") && is_ows(data[6]),
            "bearer without the scheme: {}",
            shown(data)
        );
        let t = token.as_bytes();
        assert!(
            !is_ows(t[0]) && !is_ows(t[t.len() - 1]),
            "bearer not trimmed: {}",
            shown(data)
        );
    }

    // As a Cookie value.
    for name in [DEFAULT_COOKIE, "a", "jwt"] {
        let got = cookie_value(data, name);
        assert_eq!(
            got,
            reference_cookie(data, name),
            "cookie {name}: {}",
            shown(data)
        );
        if let Some(v) = got {
            assert!(
                within(data, v.as_bytes()),
                "cookie outside input: {}",
                shown(data)
            );
            assert!(
                !v.is_empty() && !v.contains(';'),
                "cookie {v:?}: {}",
                shown(data)
            );
        }
    }

    // As a request head.
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) = parse_head(data, &HeadLimits::default(), &mut headers) else {
        return;
    };
    let Ok(target) = parse_target(head.target.get(data)) else {
        return;
    };
    let field = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.get(data).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(data))
    };
    for cookie in [DEFAULT_COOKIE, "a"] {
        let bearer = field("authorization").find_map(bearer_token);
        let from_cookie = field("cookie").find_map(|v| cookie_value(v, cookie));
        let from_query = target.params(QUERY_PARAM).find(|v| !v.is_empty());
        let token = extract_token(data, &headers, &target, cookie);
        let want = bearer
            .map(|v| (TokenSource::Header, v))
            .or(from_cookie.map(|v| (TokenSource::Cookie, v)))
            .or(from_query.map(|v| (TokenSource::Query, v)));
        assert_eq!(
            token.map(|t| (t.source, t.value)),
            want,
            "precedence: {}",
            shown(data)
        );
        if let Some(t) = token {
            match t.source {
                TokenSource::Header | TokenSource::Cookie => assert!(
                    within(&data[..head.len], t.value.as_bytes()),
                    "token outside the head: {}",
                    shown(data)
                ),
                TokenSource::Query => assert!(
                    target
                        .params(QUERY_PARAM)
                        .any(|v| within(v.as_bytes(), t.value.as_bytes())),
                    "query token not a query value: {}",
                    shown(data)
                ),
            }
        }
    }
}
