//! `parse_head` on any bytes: never panics; a `Complete` head is self-consistent (every span in
//! bounds, in order, within `len`; framing as the header fields say); the parser is a function
//! of the head alone (re-parsing `buf[..len]`, or with other bytes after it, gives the same
//! head); results over growing prefixes go `Partial`* then one `Complete` or one error class;
//! each limit is accepted exactly at its value and refused one under.

use std::mem::discriminant;

use pushcore::http::parse::{
    parse_head, BodyKind, Head, HeadLimits, Header, Method, Parsed, Span, Version,
};
use pushcore::http::HttpError;

use super::esc;

/// Small limits, so that the limit paths are reached by short inputs.
pub const TIGHT: HeadLimits = HeadLimits {
    max_head_bytes: 200,
    max_headers: 3,
    max_uri_bytes: 24,
};

type Outcome = (Result<Parsed, HttpError>, Vec<Header>);

fn run(buf: &[u8], limits: &HeadLimits) -> Outcome {
    let mut headers = Vec::new();
    let result = parse_head(buf, limits, &mut headers);
    (result, headers)
}

pub fn check(data: &[u8]) {
    let limits = HeadLimits::default();
    let (result, headers) = run(data, &limits);
    if let Ok(Parsed::Complete(head)) = &result {
        check_complete(data, &limits, head, &headers);
        check_exact_limits(data, head, &headers);
    }
    check_prefixes(data, &limits, &result);

    let (tight, tight_headers) = run(data, &TIGHT);
    match (&result, &tight) {
        (Ok(Parsed::Complete(head)), _) if fits(head, &headers, &TIGHT) => {
            assert_eq!(
                tight,
                result,
                "tight limits changed a head that fits them: {}",
                esc(data)
            );
            assert_eq!(tight_headers, headers);
        }
        (Ok(Parsed::Complete(_)), _) => assert!(
            matches!(&tight, Err(e) if is_limit_error(e)),
            "a valid head over the tight limits gave {tight:?}: {}",
            esc(data)
        ),
        (_, Ok(Parsed::Complete(_))) => {
            panic!(
                "tight limits accept what the defaults do not ({result:?}): {}",
                esc(data)
            )
        }
        _ => {}
    }
    if let Ok(Parsed::Complete(head)) = &tight {
        check_complete(data, &TIGHT, head, &tight_headers);
    }
    check_prefixes(data, &TIGHT, &tight);
}

fn is_limit_error(e: &HttpError) -> bool {
    matches!(
        e,
        HttpError::HeadTooLarge { .. }
            | HttpError::TooManyHeaders { .. }
            | HttpError::UriTooLong { .. }
    )
}

fn fits(head: &Head, headers: &[Header], limits: &HeadLimits) -> bool {
    head.len <= limits.max_head_bytes
        && headers.len() <= limits.max_headers
        && head.target.len() <= limits.max_uri_bytes
}

fn span_ok(span: Span, bound: usize) -> bool {
    span.start <= span.end && (span.end as usize) <= bound
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn check_complete(buf: &[u8], limits: &HeadLimits, head: &Head, headers: &[Header]) {
    let shown = || esc(buf);
    let len = head.len;
    assert!(
        len <= buf.len(),
        "len {len} > buffer {}: {}",
        buf.len(),
        shown()
    );
    assert!(
        len <= limits.max_head_bytes,
        "len {len} over the limit: {}",
        shown()
    );
    assert!(
        headers.len() <= limits.max_headers,
        "too many headers accepted: {}",
        shown()
    );
    assert!(
        head.target.len() <= limits.max_uri_bytes,
        "target over the limit: {}",
        shown()
    );
    assert!(
        buf[..len].ends_with(b"\r\n\r\n"),
        "head does not end with CRLFCRLF: {}",
        shown()
    );

    // Every span in bounds and within the head, in order, not overlapping.
    let mut spans = vec![head.method_span, head.target];
    for h in headers {
        spans.push(h.name);
        spans.push(h.value);
    }
    let mut prev_end = 0usize;
    for (i, s) in spans.iter().enumerate() {
        assert!(
            span_ok(*s, len),
            "span {i} {s:?} out of 0..{len}: {}",
            shown()
        );
        assert!(
            s.start as usize >= prev_end,
            "span {i} {s:?} overlaps the one before: {}",
            shown()
        );
        assert_eq!(
            s.get(buf).len(),
            s.len(),
            "Span::get disagrees with Span::len"
        );
        prev_end = s.end as usize;
    }

    let method = head.method_span.get(buf);
    assert!(
        !method.is_empty() && method.iter().all(|&b| is_token(b)),
        "bad method bytes: {}",
        shown()
    );
    assert_eq!(
        head.method,
        Method::from_bytes(method),
        "method enum vs bytes: {}",
        shown()
    );
    let target = head.target.get(buf);
    assert!(!target.is_empty(), "empty target: {}", shown());
    assert!(
        target
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'#'),
        "target byte outside visible ASCII or '#': {}",
        shown()
    );
    // The request line is exactly `method SP target SP HTTP/1.x CRLF`.
    let line_end = head.target.end as usize + 11;
    let version: &[u8] = match head.version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    };
    assert_eq!(
        buf.get(head.target.end as usize..line_end),
        Some(version),
        "version: {}",
        shown()
    );
    assert_eq!(buf.get(head.method_span.end as usize), Some(&b' '));
    assert_eq!(
        head.method_span.end + 1,
        head.target.start,
        "one SP after the method: {}",
        shown()
    );
    assert!(
        buf[..head.method_span.start as usize]
            .chunks(2)
            .all(|c| c == b"\r\n"),
        "only empty lines before the request line: {}",
        shown()
    );

    for h in headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        assert!(
            !name.is_empty() && name.iter().all(|&b| is_token(b)),
            "bad header name: {}",
            shown()
        );
        assert_eq!(
            buf.get(h.name.end as usize),
            Some(&b':'),
            "name not followed by ':': {}",
            shown()
        );
        assert!(
            value.iter().all(|&b| is_value_byte(b)),
            "bad value byte: {}",
            shown()
        );
        assert!(
            !value.starts_with(b" ")
                && !value.starts_with(b"\t")
                && !value.ends_with(b" ")
                && !value.ends_with(b"\t"),
            "value not trimmed: {}",
            shown()
        );
    }

    // Framing and keep-alive, recomputed from the fields.
    let (body, keep_alive) = framing(buf, head.version, headers);
    assert_eq!(head.body, body, "body framing: {}", shown());
    assert_eq!(head.keep_alive, keep_alive, "keep-alive: {}", shown());

    // A function of the head alone: the same with nothing after it, or other bytes after it,
    // and with a dirty headers Vec.
    let mut dirty = headers.to_vec();
    dirty.push(Header {
        name: Span { start: 1, end: 0 },
        value: Span::default(),
    });
    let again = parse_head(&buf[..len], limits, &mut dirty);
    assert_eq!(
        again,
        Ok(Parsed::Complete(*head)),
        "re-parse of buf[..len]: {}",
        shown()
    );
    assert_eq!(dirty, headers, "re-parse headers: {}", shown());
    let mut longer = buf[..len].to_vec();
    longer.extend_from_slice(b"\r\n\0GET / HTTP/1.1\r\n\n\xff");
    let mut h2 = Vec::new();
    let again = parse_head(&longer, limits, &mut h2);
    assert_eq!(
        again,
        Ok(Parsed::Complete(*head)),
        "bytes after the head changed it: {}",
        shown()
    );
    assert_eq!(h2, headers);
}

/// `(body, keep_alive)` as the module docs define them, for a head already accepted.
pub fn framing(buf: &[u8], version: Version, headers: &[Header]) -> (BodyKind, bool) {
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep = false;
    for h in headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        if name.eq_ignore_ascii_case(b"content-length") {
            let first = value.split(|&b| b == b',').next().unwrap_or_default();
            let text = std::str::from_utf8(first).unwrap_or_default();
            length = text.trim_matches([' ', '\t']).parse::<u64>().ok();
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',') {
                let option = trim(option);
                close |= option.eq_ignore_ascii_case(b"close");
                keep |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let body = match (length, chunked) {
        (Some(n), _) => BodyKind::Length(n),
        (None, true) => BodyKind::Chunked,
        (None, false) => BodyKind::None,
    };
    (body, !close && (version == Version::Http11 || keep))
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Each limit is accepted exactly at its value and refused one under it.
fn check_exact_limits(buf: &[u8], head: &Head, headers: &[Header]) {
    let exact = HeadLimits {
        max_head_bytes: head.len,
        max_headers: headers.len(),
        max_uri_bytes: head.target.len(),
    };
    let (r, h) = run(buf, &exact);
    assert_eq!(
        r,
        Ok(Parsed::Complete(*head)),
        "limits exactly at the head: {}",
        esc(buf)
    );
    assert_eq!(h, headers);

    let (r, _) = run(
        buf,
        &HeadLimits {
            max_head_bytes: head.len - 1,
            ..exact
        },
    );
    assert!(
        matches!(r, Err(HttpError::HeadTooLarge { max_bytes }) if max_bytes == head.len - 1),
        "max_head_bytes one under the head gave {r:?}: {}",
        esc(buf)
    );
    if !headers.is_empty() {
        let (r, _) = run(
            buf,
            &HeadLimits {
                max_headers: headers.len() - 1,
                ..exact
            },
        );
        assert!(
            matches!(r, Err(HttpError::TooManyHeaders { max }) if max == headers.len() - 1),
            "max_headers one under gave {r:?}: {}",
            esc(buf)
        );
    }
    let (r, _) = run(
        buf,
        &HeadLimits {
            max_uri_bytes: head.target.len() - 1,
            ..exact
        },
    );
    assert!(
        matches!(r, Err(HttpError::UriTooLong { max_bytes }) if max_bytes == head.target.len() - 1),
        "max_uri_bytes one under gave {r:?}: {}",
        esc(buf)
    );
}

/// Prefix lengths to try: all for short inputs; for long ones the start, the end, every cut
/// just after a delimiter, and some spread over the rest.
fn prefix_lengths(data: &[u8]) -> Vec<usize> {
    let n = data.len();
    if n <= 160 {
        return (0..=n).collect();
    }
    let mut cuts: Vec<usize> = (0..=64).chain(n - 16..=n).collect();
    let delimiters = (65..n - 16).filter(|&p| matches!(data[p - 1], b'\r' | b'\n' | b' ' | b':'));
    cuts.extend(delimiters.take(192));
    let mut x = n as u64 | 1;
    for _ in 0..48 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cuts.push((x % n as u64) as usize);
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Over growing prefixes: `Partial` until the head is complete or an error is certain; then the
/// same head (with the same fields) or the same error class for every longer prefix.
fn check_prefixes(data: &[u8], limits: &HeadLimits, whole: &Result<Parsed, HttpError>) {
    let mut settled: Option<Outcome> = None;
    for p in prefix_lengths(data) {
        let (r, h) = run(&data[..p], limits);
        let same = |a: &Result<Parsed, HttpError>, b: &Result<Parsed, HttpError>| match (a, b) {
            (Err(x), Err(y)) => discriminant(x) == discriminant(y),
            _ => a == b,
        };
        match (&settled, &r) {
            (None, Ok(Parsed::Partial)) => {}
            (None, _) => {
                assert!(
                    same(&r, whole),
                    "prefix of {p} bytes gave {r:?}, the whole {} bytes {whole:?}: {}",
                    data.len(),
                    esc(data)
                );
                settled = Some((r, h));
            }
            (Some((first, first_headers)), _) => {
                assert!(
                    same(&r, first),
                    "prefix of {p} bytes gave {r:?} after a shorter one gave {first:?}: {}",
                    esc(data)
                );
                if let Ok(Parsed::Complete(_)) = r {
                    assert_eq!(
                        &h,
                        first_headers,
                        "headers changed at prefix {p}: {}",
                        esc(data)
                    );
                }
            }
        }
    }
    if settled.is_none() {
        assert_eq!(
            whole,
            &Ok(Parsed::Partial),
            "every prefix Partial, the whole not: {}",
            esc(data)
        );
    }
}
