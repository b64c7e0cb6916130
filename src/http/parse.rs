//! Incremental, allocation-free HTTP/1.1 request-head parser.
//!
//! [`parse_head`] looks at the bytes read so far and answers [`Parsed::Partial`] (read more),
//! [`Parsed::Complete`] (the head is whole: method, target and version, header fields as
//! [`Span`]s into the buffer, and the message framing already decided) or an [`HttpError`] that
//! maps to the status to answer with. It keeps no state between calls: the caller re-parses
//! the buffer after each read (the head is at most [`HeadLimits::max_head_bytes`], so this
//! stays cheap) and reuses one `Vec<Header>` across requests.
//!
//! A head cut at any byte boundary yields `Partial` as long as the bytes so far can still
//! start a valid head; a byte that no continuation can make valid is reported at once, so a
//! client speaking TLS or garbage at a plain-text port is answered without waiting for a
//! timeout. The first offending byte decides the error, so a prefix of a head yields either
//! `Partial` or the error of the whole head. One deliberate exception: a well-formed version
//! other than 1.0/1.1 (`HTTP/2`, `HTTP/1.2`) stays `Partial` until its `HTTP/d.d` CRLF is
//! complete, so that it is answered 505 rather than 400 (httparse errors at once).
//!
//! The parser makes one pass in byte order. Targets and header values are scanned sixteen
//! bytes per step with word-at-a-time (SWAR) tests that find the first byte needing attention
//! (a delimiter or an invalid byte) and validate everything before it in the same pass; names
//! use a 256-entry class table. This replaced a memchr-per-line design that was 1.6–2× slower
//! than httparse on real heads (`cargo bench --bench parse` prints the comparison).
//!
//! # Limits
//! - [`DEFAULT_MAX_HEAD_BYTES`]: bytes of head including the final CRLFCRLF (and any empty lines
//!   before the request line) → 431, reported as soon as more bytes than that arrive without an
//!   end of head.
//! - [`DEFAULT_MAX_HEADERS`]: header fields → 431.
//! - [`DEFAULT_MAX_URI_BYTES`]: request-target bytes → 414, reported as soon as the target is
//!   longer, even before the request line is complete.
//!
//! Each limit is accepted exactly at its value and refused one byte (or field) over.
//!
//! # Differences from httparse
//! httparse is the oracle of the differential fuzz target. Everything we accept, httparse
//! accepts with the same method, target, version, fields and length (a mutation test in
//! `tests/http_parse.rs` checks this); we are stricter in these ways:
//! 1. **Bare LF is refused** (400 [`HttpError::BadLineEnding`]) in the request line, header
//!    lines, the final empty line and the empty lines before the request line. httparse accepts
//!    `\n` alone as a line terminator. RFC 9112 §2.2 makes accepting it optional; every client we
//!    serve (browsers, curl, proxies) sends CRLF, and one line-ending rule shared with the
//!    chunked decoder leaves no room for a front-end/back-end disagreement.
//! 2. **Request-target bytes** must be visible ASCII (`0x21..=0x7E`) other than `#`. httparse also
//!    accepts UTF-8 bytes `>= 0x80` and `#`. RFC 3986 has neither in a URI; browsers
//!    percent-encode both. Like httparse we accept `"<>\^`{|}`, which browsers send unescaped
//!    in queries.
//! 3. **Request-target form** is checked: origin-form (`/…`), absolute-form (`http://` or
//!    `https://`, case-insensitive, a non-empty authority without userinfo `@`) or asterisk-form
//!    (`*`, OPTIONS only). httparse accepts any non-empty target (authority-form `host:port`,
//!    `foo`, `*` for GET). Anything else is 400 [`HttpError::BadTarget`].
//! 4. **Versions**: a well-formed `HTTP/<d>.<d>` other than 1.0/1.1 is 505
//!    [`HttpError::VersionNotSupported`] (httparse: `Error::Version` for every unknown version).
//!    Only the exact upper-case `HTTP/` is accepted, as in httparse.
//! 5. **Header semantics** httparse leaves to its caller are enforced here (all 400):
//!    - `Content-Length` must be 1*DIGIT fitting `u64` (no sign, no spaces inside, not empty).
//!      Repeated fields or comma lists of *identical* values are accepted as that value (RFC 9110
//!      §8.6); differing values are [`HttpError::ConflictingContentLength`]. Leading zeros are
//!      accepted (`007` is 7).
//!    - `Transfer-Encoding` must be exactly `chunked` (ASCII case-insensitive, OWS trimmed) and
//!      appear once; `gzip, chunked`, `chunked, chunked`, `identity`, an empty value are
//!      [`HttpError::UnsupportedTransferEncoding`] (400 rather than the 501 RFC 9112 §6.1 allows:
//!      a request we cannot frame is a request we will not read).
//!    - `Transfer-Encoding` with `Content-Length` → 400 (a request smuggling shape, RFC 9112 §6.3
//!      lets a server reject it); `Transfer-Encoding` on HTTP/1.0 → 400.
//!    - HTTP/1.1 without `Host` → 400; more than one `Host` (on any version) → 400. The Host value
//!      itself is not checked beyond the header-value rules.
//!    - `Connection` is read as a comma list of tokens: `close` wins over `keep-alive`.
//! 6. **Header count** over the limit is 431 [`HttpError::TooManyHeaders`]; httparse reports
//!    `Error::TooManyHeaders` when its caller-provided array is full.
//! 7. **Head size**: httparse has no limit of its own; we answer 431 as soon as
//!    `max_head_bytes` bytes have arrived without the end of the head.
//! 8. Same as httparse (its default configuration): one SP exactly between request-line parts;
//!    no whitespace between a header name and its colon; no obs-fold (a line starting with SP or
//!    HTAB, including the first header line); header values may hold HTAB, SP, VCHAR and obs-text
//!    (`0x80..=0xFF`) but no other control byte (a CR not followed by LF is one); names are
//!    tokens; empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2).

use super::error::HttpError;
pub use super::head::{
    find_header, BodyKind, Head, HeadLimits, Header, Method, Parsed, Request, Span, Version,
};
use super::scan::*;

/// Default limit on the bytes of a request head (→ 431).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Default limit on the number of header fields (→ 431).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default limit on the bytes of the request-target (→ 414).
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;

// --- the parser -------------------------------------------------------------------------------
//
// One pass, byte order: each byte is looked at once (sixteen at a time in targets and values), and
// the first byte that no continuation can make valid decides the error. So a prefix of a head
// yields either `Partial` or the error the whole head yields.

/// Parse the request head at the start of `buf`. `headers` is cleared and filled (one Vec reused
/// by the caller across requests: no allocation per header once it has grown).
///
/// Returns `Partial` while the head is incomplete but valid so far, `Complete` with the head
/// (its `len` is where the body starts), or the error to answer with.
pub fn parse_head(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<Header>,
) -> Result<Parsed, HttpError> {
    headers.clear();
    let cap = limits.max_head_bytes.min(u32::MAX as usize);
    let view = buf.get(..cap).unwrap_or(buf);
    match parse_view(view, limits, headers)? {
        Parsed::Partial if buf.len() > cap => Err(HttpError::HeadTooLarge {
            max_bytes: limits.max_head_bytes,
        }),
        parsed => Ok(parsed),
    }
}

/// The request line, split.
struct RequestLine {
    method: Method,
    method_span: Span,
    target: Span,
    version: Version,
    /// Index just after its CRLF.
    end: usize,
}

/// What the header fields say about framing and connection reuse.
#[derive(Default)]
struct Framing {
    hosts: u32,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

/// [`parse_head`] on a buffer already cut to the head limit.
fn parse_view(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<Header>,
) -> Result<Parsed, HttpError> {
    // Empty lines before the request line (RFC 9112 §2.2).
    let mut pos = 0;
    loop {
        match buf.get(pos) {
            None => return Ok(Parsed::Partial),
            Some(b'\r') => match buf.get(pos + 1) {
                None => return Ok(Parsed::Partial),
                Some(b'\n') => pos += 2,
                Some(_) => return Err(HttpError::BadLineEnding),
            },
            Some(b'\n') => return Err(HttpError::BadLineEnding),
            Some(_) => break,
        }
    }

    let Some(line) = request_line(buf, pos, limits)? else {
        return Ok(Parsed::Partial);
    };
    pos = line.end;

    let mut framing = Framing::default();
    let end = loop {
        match buf.get(pos) {
            None => return Ok(Parsed::Partial),
            Some(b'\r') => match buf.get(pos + 1) {
                None => return Ok(Parsed::Partial),
                Some(b'\n') => break pos + 2,
                Some(_) => return Err(HttpError::BadLineEnding),
            },
            Some(b'\n') => return Err(HttpError::BadLineEnding),
            Some(b' ' | b'\t') => return Err(HttpError::ObsFold),
            Some(_) => {}
        }
        if headers.len() >= limits.max_headers {
            return Err(HttpError::TooManyHeaders {
                max: limits.max_headers,
            });
        }
        let Some(field) = header_line(buf, pos)? else {
            return Ok(Parsed::Partial);
        };
        // Only four names matter to framing; their lengths rule out most other fields cheaply.
        if let 4 | 10 | 14 | 17 = field.name_end - pos {
            let name = buf.get(pos..field.name_end).unwrap_or(&[]);
            let value = buf.get(field.value_start..field.value_end).unwrap_or(&[]);
            framing.note(name, value)?;
        }
        headers.push(Header {
            name: Span::new(pos, field.name_end),
            value: Span::new(field.value_start, field.value_end),
        });
        pos = field.next;
    };

    let body = match (framing.content_length, framing.chunked) {
        (Some(_), true) => return Err(HttpError::ContentLengthWithTransferEncoding),
        (None, true) if line.version == Version::Http10 => {
            return Err(HttpError::TransferEncodingOnHttp10)
        }
        (None, true) => BodyKind::Chunked,
        (Some(n), false) => BodyKind::Length(n),
        (None, false) => BodyKind::None,
    };
    if framing.hosts == 0 && line.version == Version::Http11 {
        return Err(HttpError::MissingHost);
    }
    let keep_alive = !framing.close && (line.version == Version::Http11 || framing.keep_alive);
    Ok(Parsed::Complete(Head {
        method: line.method,
        method_span: line.method_span,
        target: line.target,
        version: line.version,
        len: end,
        body,
        keep_alive,
    }))
}

/// The request line starting at `buf[start]`; `Ok(None)` if it is cut short but valid so far.
#[inline]
fn request_line(
    buf: &[u8],
    start: usize,
    limits: &HeadLimits,
) -> Result<Option<RequestLine>, HttpError> {
    // Method: a token followed by one SP. The common methods skip the scan.
    let line = buf.get(start..).unwrap_or(&[]);
    let m_end = if line.starts_with(b"GET ") {
        start + 3
    } else if line.starts_with(b"POST ") {
        start + 4
    } else {
        token_end(buf, start)
    };
    match buf.get(m_end) {
        None => return Ok(None),
        Some(b' ') if m_end > start => {}
        Some(b'\r' | b'\n') if m_end > start => return Err(HttpError::BadRequestLine),
        Some(_) => return Err(HttpError::BadMethod),
    }

    // Target: up to the next SP.
    let t_start = m_end + 1;
    let t_end = uri_end(buf, t_start);
    if t_end - t_start > limits.max_uri_bytes {
        return Err(HttpError::UriTooLong {
            max_bytes: limits.max_uri_bytes,
        });
    }
    match buf.get(t_end) {
        None => return Ok(None),
        Some(b' ') if t_end > t_start => {}
        Some(b' ' | b'\r' | b'\n') => return Err(HttpError::BadRequestLine),
        Some(_) => return Err(HttpError::BadTarget),
    }

    // Version and CRLF.
    let v_start = t_end + 1;
    let (version, end) = if buf.get(v_start..v_start + 10) == Some(b"HTTP/1.1\r\n") {
        (Version::Http11, v_start + 10)
    } else {
        match version(buf.get(v_start..).unwrap_or(&[]))? {
            Some(v) => (v, v_start + 10),
            None => return Ok(None),
        }
    };

    let method_bytes = buf.get(start..m_end).unwrap_or(&[]);
    let method = match method_bytes {
        b"GET" => Method::Get,
        b"POST" => Method::Post,
        _ => Method::from_bytes(method_bytes),
    };
    let target = buf.get(t_start..t_end).unwrap_or(&[]);
    let target_form_ok = match target {
        [b'/', ..] => true,
        b"*" => method == Method::Options,
        _ => is_absolute_form(target),
    };
    if !target_form_ok {
        return Err(HttpError::BadTarget);
    }
    Ok(Some(RequestLine {
        method,
        method_span: Span::new(start, m_end),
        target: Span::new(t_start, t_end),
        version,
        end,
    }))
}

/// `HTTP/<digit>.<digit>` CRLF at the start of `rest`; `Ok(None)` if cut short but valid so far.
fn version(rest: &[u8]) -> Result<Option<Version>, HttpError> {
    const TEMPLATE: &[u8; 8] = b"HTTP/0.0";
    let wrong = |b: u8| match b {
        b' ' => HttpError::BadRequestLine,
        b'\n' => HttpError::BadLineEnding,
        _ => HttpError::BadVersion,
    };
    for (i, &t) in TEMPLATE.iter().enumerate() {
        let Some(&b) = rest.get(i) else {
            return Ok(None);
        };
        let ok = if t == b'0' {
            b.is_ascii_digit()
        } else {
            b == t
        };
        if !ok {
            return Err(wrong(b));
        }
    }
    match (rest.get(8), rest.get(9)) {
        (None, _) | (Some(b'\r'), None) => return Ok(None),
        (Some(b'\r'), Some(b'\n')) => {}
        (Some(b'\r'), Some(_)) => return Err(HttpError::BadLineEnding),
        (Some(&b), _) => return Err(wrong(b)),
    }
    match rest.get(..8) {
        Some(b"HTTP/1.1") => Ok(Some(Version::Http11)),
        Some(b"HTTP/1.0") => Ok(Some(Version::Http10)),
        _ => Err(HttpError::VersionNotSupported),
    }
}

/// `http://authority[/path][?query]` or `https://…`: the scheme case-insensitive, the authority
/// non-empty and without userinfo.
fn is_absolute_form(target: &[u8]) -> bool {
    let Some(rest) = strip_scheme(target) else {
        return false;
    };
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = rest.get(..auth_len).unwrap_or(&[]);
    !authority.is_empty() && !authority.contains(&b'@')
}

/// What follows `http://` or `https://` (ASCII case-insensitive) in `target`.
pub(crate) fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if let (Some(head), Some(rest)) = (target.get(..scheme.len()), target.get(scheme.len()..)) {
            if head.eq_ignore_ascii_case(scheme) {
                return Some(rest);
            }
        }
    }
    None
}

/// Positions of one header line in the buffer.
struct FieldLine {
    name_end: usize,
    value_start: usize,
    value_end: usize,
    /// Index just after its CRLF.
    next: usize,
}

/// The header line starting at `buf[start]` (which is not CR, LF, SP or HTAB); `Ok(None)` if it
/// is cut short but valid so far.
#[inline]
fn header_line(buf: &[u8], start: usize) -> Result<Option<FieldLine>, HttpError> {
    let n_end = token_end(buf, start);
    match buf.get(n_end) {
        None => return Ok(None),
        Some(b':') if n_end > start => {}
        Some(b' ' | b'\t') if n_end > start => return Err(HttpError::WhitespaceBeforeColon),
        Some(_) => return Err(HttpError::BadHeaderName),
    }
    let mut v_start = n_end + 1;
    while let Some(b' ' | b'\t') = buf.get(v_start) {
        v_start += 1;
    }
    let mut i = v_start;
    let line_end = loop {
        i = value_special(buf, i);
        match buf.get(i) {
            None => return Ok(None),
            Some(b'\t') => i += 1,
            Some(b'\r') => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => break i,
                Some(_) => return Err(HttpError::BadHeaderValue),
            },
            Some(b'\n') => return Err(HttpError::BadLineEnding),
            Some(_) => return Err(HttpError::BadHeaderValue),
        }
    };
    let mut v_end = line_end;
    while v_end > v_start && matches!(buf.get(v_end - 1), Some(b' ' | b'\t')) {
        v_end -= 1;
    }
    Ok(Some(FieldLine {
        name_end: n_end,
        value_start: v_start,
        value_end: v_end,
        next: line_end + 2,
    }))
}

impl Framing {
    /// Take note of one header field; reject what is wrong in it on its own.
    #[inline]
    fn note(&mut self, name: &[u8], value: &[u8]) -> Result<(), HttpError> {
        match (name.len(), name.first().map(u8::to_ascii_lowercase)) {
            (4, Some(b'h')) if name.eq_ignore_ascii_case(b"host") => {
                self.hosts += 1;
                if self.hosts > 1 {
                    return Err(HttpError::DuplicateHost);
                }
            }
            (10, Some(b'c')) if name.eq_ignore_ascii_case(b"connection") => {
                for option in value.split(|&b| b == b',') {
                    let option = trim_ows(option);
                    if option.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    }
                }
            }
            (14, Some(b'c')) if name.eq_ignore_ascii_case(b"content-length") => {
                let n = content_length(value)?;
                match self.content_length {
                    Some(prev) if prev != n => return Err(HttpError::ConflictingContentLength),
                    _ => self.content_length = Some(n),
                }
            }
            (17, Some(b't')) if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if self.chunked || !value.eq_ignore_ascii_case(b"chunked") {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
                self.chunked = true;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A `Content-Length` value: 1*DIGIT, or a comma list of identical 1*DIGIT.
fn content_length(value: &[u8]) -> Result<u64, HttpError> {
    let mut result = None;
    for item in value.split(|&b| b == b',') {
        let n = decimal(trim_ows(item)).ok_or(HttpError::BadContentLength)?;
        match result {
            Some(prev) if prev != n => return Err(HttpError::ConflictingContentLength),
            _ => result = Some(n),
        }
    }
    result.ok_or(HttpError::BadContentLength)
}

/// 1*DIGIT as `u64`; `None` when empty, not all digits, or too big.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time scanners find exactly the first byte the table marks, for every byte
    /// value at every position of inputs that exercise the 16-, 8- and 1-byte paths.
    #[test]
    fn swar_matches_table() {
        for len in [1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40] {
            for b in 0..=255u8 {
                for at in 0..len {
                    let mut input = vec![b'a'; len];
                    if let Some(slot) = input.get_mut(at) {
                        *slot = b;
                    }
                    let value_expected = if b < 0x20 || b == 0x7f { at } else { len };
                    let uri_expected = if is(b, URI) { len } else { at };
                    let token_expected = if is(b, TOKEN) { len } else { at };
                    assert_eq!(
                        value_special(&input, 0),
                        value_expected,
                        "value {b:#x} at {at}/{len}"
                    );
                    assert_eq!(uri_end(&input, 0), uri_expected, "uri {b:#x} at {at}/{len}");
                    assert_eq!(
                        token_end(&input, 0),
                        token_expected,
                        "token {b:#x} at {at}/{len}"
                    );
                }
            }
        }
        assert_eq!(value_special(b"ab\r\n", 3), 3);
        assert_eq!(uri_end(b"/a b", 5), 5, "from past the end");
    }

    #[test]
    fn classes_follow_the_rfc() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is(b, TOKEN), tchar, "{b:#x}");
            assert_eq!(
                is(b, VALUE),
                b == b'\t' || (b >= 0x20 && b != 0x7f),
                "{b:#x}"
            );
            assert_eq!(
                is(b, URI),
                (0x21..=0x7e).contains(&b) && b != b'#',
                "{b:#x}"
            );
        }
    }

    #[test]
    fn decimal_bounds() {
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616"), None);
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"+1"), None);
    }
}
