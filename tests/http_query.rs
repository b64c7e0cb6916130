//! Table-driven tests of request-target decoding.

use pushcore::http::query::{parse_target, Target, MAX_QUERY_PAIRS};
use pushcore::http::HttpError::{self, *};

/// (raw target, decoded path, decoded query pairs)
type Row = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[rustfmt::skip]
const GOOD: &[Row] = &[
    // raw target                                         path                 query pairs
    ("/",                                                 "/",                 &[]),
    ("/events/stream",                                    "/events/stream",    &[]),
    ("/events/stream?channels=a,b",                       "/events/stream",    &[("channels", "a,b")]),
    ("/events/stream?channels=a%2Cb&lastEventId=17-3",    "/events/stream",    &[("channels", "a,b"), ("lastEventId", "17-3")]),
    ("/s?channels=a&channels=b",                          "/s",                &[("channels", "a"), ("channels", "b")]),
    ("/s?q=hello+world",                                  "/s",                &[("q", "hello world")]),
    ("/s?q=a%2Bb",                                        "/s",                &[("q", "a+b")]),
    ("/a+b",                                              "/a+b",              &[]),
    ("/caf%C3%A9?n=%c3%a9",                               "/café",             &[("n", "é")]),
    ("/a%20b",                                            "/a b",              &[]),
    ("/a%2Fb",                                            "/a/b",              &[]),
    ("/s?flag",                                           "/s",                &[("flag", "")]),
    ("/s?a=&b=",                                          "/s",                &[("a", ""), ("b", "")]),
    ("/s?=v",                                             "/s",                &[("", "v")]),
    ("/s?a=1&&b=2&",                                      "/s",                &[("a", "1"), ("b", "2")]),
    ("/s?",                                               "/s",                &[]),
    ("/s?a=b=c",                                          "/s",                &[("a", "b=c")]),
    ("/s?a=1;b=2",                                        "/s",                &[("a", "1;b=2")]),
    ("/s?k=%F0%9F%98%80",                                 "/s",                &[("k", "😀")]),
    ("/s?a=%3F%26%3D",                                    "/s",                &[("a", "?&=")]),
    ("/s?x=?y",                                           "/s",                &[("x", "?y")]),
    ("*",                                                 "*",                 &[]),
    ("http://push.example.com/events/stream?channels=a",  "/events/stream",    &[("channels", "a")]),
    ("HTTPS://push.example.com:8443/x",                   "/x",                &[]),
    ("http://push.example.com",                           "/",                 &[]),
    ("http://push.example.com?x=1",                       "/",                 &[("x", "1")]),
    ("http://[::1]:8080/x",                               "/x",                &[]),
];

#[rustfmt::skip]
const BAD: &[(&[u8], HttpError)] = &[
    // raw target                 error
    (b"",                         BadTarget),
    (b"events",                   BadTarget),
    (b"a.example:443",            BadTarget),
    (b"**",                       BadTarget),
    (b"ftp://a/x",                BadTarget),
    (b"http://",                  BadTarget),
    (b"http:///x",                BadTarget),
    (b"http://u@a/x",             BadTarget),
    (b"/a#frag",                  BadTarget),
    (b"/s?a=1#frag",              BadTarget),
    (b"/a b",                     BadTarget),
    (b"/a\x00",                   BadTarget),
    (b"/caf\xc3\xa9",             BadTarget),
    (b"/a%",                      BadPercentEncoding),
    (b"/a%4",                     BadPercentEncoding),
    (b"/a%zz",                    BadPercentEncoding),
    (b"/a%4g",                    BadPercentEncoding),
    (b"/a%%41",                   BadPercentEncoding),
    (b"/s?x=%",                   BadPercentEncoding),
    (b"/s?x=%e",                  BadPercentEncoding),
    (b"/s?%zz=1",                 BadPercentEncoding),
    (b"/s?x=%+1",                 BadPercentEncoding),
    (b"/a%00b",                   BadTargetEncoding),
    (b"/s?x=%00",                 BadTargetEncoding),
    (b"/a%ff",                    BadTargetEncoding),
    (b"/s?x=%C3",                 BadTargetEncoding),
    (b"/s?x=%C3%28",              BadTargetEncoding),
    (b"/s?x=%ED%A0%80",           BadTargetEncoding),
];

fn pairs(t: &Target) -> Vec<(&str, &str)> {
    t.query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn good_targets_decode() {
    for (raw, path, query) in GOOD {
        let target = parse_target(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(target.path, *path, "{raw}");
        assert_eq!(pairs(&target), *query, "{raw}");
    }
}

#[test]
fn bad_targets_fail() {
    for (raw, expected) in BAD {
        assert_eq!(
            parse_target(raw),
            Err(expected.clone()),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(expected.status(), 400);
    }
}

#[test]
fn rows_outnumber() {
    assert!(BAD.len() >= GOOD.len());
}

#[test]
fn param_lookup_first_and_all() {
    let t = parse_target(b"/events/stream?channels=a&lastEventId=5&channels=b&channels=").unwrap();
    assert_eq!(t.param("channels"), Some("a"));
    assert_eq!(t.params("channels").collect::<Vec<_>>(), vec!["a", "b", ""]);
    assert_eq!(t.param("lastEventId"), Some("5"));
    assert_eq!(t.param("lasteventid"), None, "names are case-sensitive");
    assert_eq!(t.params("missing").count(), 0);
}

#[test]
fn query_pair_limit_is_inclusive() {
    let target = |n: usize| {
        let mut s = String::from("/s?");
        for i in 0..n {
            s.push_str(&format!("k{i}=v&"));
        }
        s
    };
    assert_eq!(
        parse_target(target(MAX_QUERY_PAIRS).as_bytes())
            .unwrap()
            .query
            .len(),
        MAX_QUERY_PAIRS
    );
    let err = parse_target(target(MAX_QUERY_PAIRS + 1).as_bytes()).unwrap_err();
    assert_eq!(
        err,
        TooManyQueryParams {
            max: MAX_QUERY_PAIRS
        }
    );
    assert_eq!(err.status(), 414);
}
