//! Finding the token in a real request head (parsed by `http::parse`, target decoded by
//! `http::query`): each source, the precedence order, and the cookie grammar.

use pushcore::auth::extract::{bearer_token, cookie_value, extract_token, DEFAULT_COOKIE};
use pushcore::auth::{AuthConfig, Token, TokenSource};
use pushcore::http::parse::{parse_head, HeadLimits, Header, Parsed};
use pushcore::http::query::parse_target;

/// Parse `GET <target>` with `fields` (each a full `Name: value` line) and extract with `cookie`.
fn extract(target: &str, fields: &[&str], cookie: &str) -> Option<(TokenSource, String)> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: push.example\r\n");
    for f in fields {
        head.push_str(f);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let buf = head.as_bytes();
    let mut headers: Vec<Header> = Vec::new();
    let parsed = parse_head(buf, &HeadLimits::default(), &mut headers);
    let Ok(Parsed::Complete(h)) = parsed else {
        panic!("head did not parse: {parsed:?}: {head:?}");
    };
    let target = parse_target(h.target.get(buf)).expect("target");
    extract_token(buf, &headers, &target, cookie).map(|t: Token<'_>| (t.source, t.value.to_owned()))
}

/// One row: what, target, header fields, cookie name, expected (source, token).
type Row<'a> = (
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a str,
    Option<(TokenSource, &'a str)>,
);

#[test]
fn sources_and_precedence() {
    use TokenSource::*;
    let c = DEFAULT_COOKIE;
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("none", "/events/stream", &[], c, None),
        ("header", "/events/stream", &["Authorization: Bearer h.h.h"], c, Some((Header, "h.h.h"))),
        ("header, scheme in lower case", "/", &["authorization: bearer h.h.h"], c, Some((Header, "h.h.h"))),
        ("header, scheme in upper case", "/", &["AUTHORIZATION: BEARER h.h.h"], c, Some((Header, "h.h.h"))),
        ("header, spaces around", "/", &["Authorization:   Bearer    h.h.h   "], c, Some((Header, "h.h.h"))),
        ("cookie", "/", &["Cookie: pushcore_token=c.c.c"], c, Some((Cookie, "c.c.c"))),
        ("query", "/events/stream?channels=a&token=q.q.q", &[], c, Some((Query, "q.q.q"))),
        ("query, percent-encoded", "/?token=q%2Eq.q", &[], c, Some((Query, "q.q.q"))),
        ("header beats cookie and query", "/?token=q.q.q", &["Cookie: pushcore_token=c.c.c", "Authorization: Bearer h.h.h"], c, Some((Header, "h.h.h"))),
        ("cookie beats query", "/?token=q.q.q", &["Cookie: pushcore_token=c.c.c"], c, Some((Cookie, "c.c.c"))),
        ("a garbled header still wins", "/?token=q.q.q", &["Authorization: Bearer garbage"], c, Some((Header, "garbage"))),
        ("Basic is not a token", "/?token=q.q.q", &["Authorization: Basic dXNlcjpwYXNz"], c, Some((Query, "q.q.q"))),
        ("empty Bearer falls through", "/?token=q.q.q", &["Authorization: Bearer"], c, Some((Query, "q.q.q"))),
        ("Bearer without a space", "/?token=q.q.q", &["Authorization: Bearerh.h.h"], c, Some((Query, "q.q.q"))),
        ("second Authorization field", "/", &["Authorization: Basic x", "Authorization: Bearer h.h.h"], c, Some((Header, "h.h.h"))),
        ("first Bearer of two", "/", &["Authorization: Bearer one", "Authorization: Bearer two"], c, Some((Header, "one"))),
        ("empty cookie falls through", "/?token=q.q.q", &["Cookie: pushcore_token="], c, Some((Query, "q.q.q"))),
        ("other cookie only", "/?token=q.q.q", &["Cookie: session=s"], c, Some((Query, "q.q.q"))),
        ("cookie name is configurable", "/", &["Cookie: pushcore_token=a; jwt=b"], "jwt", Some((Cookie, "b"))),
        ("default cookie ignored when renamed", "/", &["Cookie: pushcore_token=a"], "jwt", None),
        ("cookie in a second Cookie field", "/", &["Cookie: a=1", "Cookie: pushcore_token=c.c.c"], c, Some((Cookie, "c.c.c"))),
        ("empty query token", "/?token=", &[], c, None),
        ("second query token when first empty", "/?token=&token=q.q.q", &[], c, Some((Query, "q.q.q"))),
        ("first of two query tokens", "/?token=one&token=two", &[], c, Some((Query, "one"))),
        ("query name is case-sensitive", "/?Token=q.q.q", &[], c, None),
        ("absolute-form target", "http://push.example/events/stream?token=q.q.q", &[], c, Some((Query, "q.q.q"))),
        ("non-ASCII UTF-8 cookie kept", "/?token=q.q.q", &["Cookie: pushcore_token=\u{e9}t\u{e9}"], c, Some((Cookie, "\u{e9}t\u{e9}"))),
    ];
    for (what, target, fields, cookie, want) in rows {
        let got = extract(target, fields, cookie);
        let want = want.map(|(s, v)| (s, v.to_owned()));
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn non_utf8_values_are_not_tokens() {
    // Header values may carry obs-text (0x80..=0xFF); such a value is no token.
    let buf = b"GET /?token=q.q.q HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer \xff\xfe\r\nCookie: pushcore_token=\xc3\x28\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(h)) = parse_head(buf, &HeadLimits::default(), &mut headers) else {
        panic!("head did not parse");
    };
    let target = parse_target(h.target.get(buf)).expect("target");
    let token = extract_token(buf, &headers, &target, DEFAULT_COOKIE).expect("token");
    assert_eq!((token.source, token.value), (TokenSource::Query, "q.q.q"));
}

#[test]
fn cookie_table() {
    // (Cookie header value, name, expected)
    #[rustfmt::skip]
    let rows: &[(&[u8], &str, Option<&str>)] = &[
        (b"pushcore_token=abc", "pushcore_token", Some("abc")),
        (b"a=1; pushcore_token=abc; b=2", "pushcore_token", Some("abc")),
        (b"a=1;pushcore_token=abc;b=2", "pushcore_token", Some("abc")),
        (b"a=1 ;  pushcore_token = abc  ; b=2", "pushcore_token", Some("abc")),
        (b"pushcore_token=\"abc\"", "pushcore_token", Some("abc")),
        (b"pushcore_token=\"\"", "pushcore_token", None),
        (b"pushcore_token=\"", "pushcore_token", Some("\"")),
        (b"pushcore_token=\"abc", "pushcore_token", Some("\"abc")),
        (b"pushcore_token=a=b", "pushcore_token", Some("a=b")),
        (b"pushcore_token=", "pushcore_token", None),
        (b"pushcore_token=; pushcore_token=second", "pushcore_token", Some("second")),
        (b"pushcore_token=first; pushcore_token=second", "pushcore_token", Some("first")),
        (b"Pushcore_Token=abc", "pushcore_token", None),
        (b"xpushcore_token=abc", "pushcore_token", None),
        (b"pushcore_tokenx=abc", "pushcore_token", None),
        (b"pushcore_token", "pushcore_token", None),
        (b"pushcore_token abc", "pushcore_token", None),
        (b";;; pushcore_token=abc;;", "pushcore_token", Some("abc")),
        (b"", "pushcore_token", None),
        (b";", "pushcore_token", None),
        (b"=abc", "pushcore_token", None),
        (b"\tpushcore_token=abc\t", "pushcore_token", Some("abc")),
        (b"pushcore_token=\xff", "pushcore_token", None),
        (b"pushcore_token=\xff; pushcore_token=ok", "pushcore_token", Some("ok")),
        (b"a=\"x;y\"; pushcore_token=abc", "pushcore_token", Some("abc")),
    ];
    for (value, name, want) in rows {
        assert_eq!(cookie_value(value, name), *want, "{}", value.escape_ascii());
    }
}

#[test]
fn bearer_table() {
    let rows: &[(&[u8], Option<&str>)] = &[
        (b"Bearer eyJ.eyJ.sig", Some("eyJ.eyJ.sig")),
        (b"bEaReR x", Some("x")),
        (b"Bearer\tx", Some("x")),
        (b"Bearer x y", Some("x y")),
        (b"Bearer  ", None),
        (b"Bearer", None),
        (b"Beare x", None),
        (b"Token x", None),
        (b" Bearer x", None),
    ];
    for (value, want) in rows {
        assert_eq!(bearer_token(value), *want, "{}", value.escape_ascii());
    }
}

#[test]
fn auth_uses_its_cookie_name() {
    let config = AuthConfig {
        jwt_cookie: "jwt".into(),
        ..AuthConfig::default()
    };
    let auth = config.build().expect("build");
    assert_eq!(auth.cookie_name(), "jwt");
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: pushcore_token=a; jwt=b\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(h)) = parse_head(buf, &HeadLimits::default(), &mut headers) else {
        panic!("head did not parse");
    };
    let target = parse_target(h.target.get(buf)).expect("target");
    let token = auth
        .token_from_request(buf, &headers, &target)
        .expect("token");
    assert_eq!((token.source, token.value), (TokenSource::Cookie, "b"));
    assert_eq!(token.source.as_str(), "cookie");
}
