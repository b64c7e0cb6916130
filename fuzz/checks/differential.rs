//! `parse_head` against httparse (default configuration), with the default limits and with
//! small ones.
//!
//! - We accept ⇒ httparse accepts, with the same head length, method, target, version and
//!   header fields (byte-equal, same order), and none of our documented refusals applies.
//! - We refuse a head that httparse accepts (or is still reading) ⇒ our error is one of the
//!   documented differences (src/http/parse.rs, "Differences from httparse") and that
//!   difference is really there in the bytes: [`documented_refusals`] lists them.
//! - We read on (`Partial`) ⇒ httparse reads on too, except for a version that can only turn out
//!   well-formed but unsupported (`HTTP/2.0`, 505 for us; `Error::Version` at once for httparse).
//! - Both refuse: agreement, whatever the errors.
//!
//! To explain our errors the bytes are split into lines the way httparse does (CRLF or bare LF),
//! by [`View`]; when httparse completes, the view is first checked against httparse's result.

use pushcore::http::parse::{parse_head, HeadLimits, Parsed, Version};
use pushcore::http::HttpError;

use super::esc;
use super::parse_head::{trim, TIGHT};

pub fn check(data: &[u8]) {
    check_with(data, &HeadLimits::default());
    check_with(data, &TIGHT);
}

/// The head split into lines as httparse does, as far as the bytes go.
#[derive(Debug, Default)]
pub struct View<'a> {
    /// The method, once a SP has followed it.
    pub method: Option<&'a [u8]>,
    /// The target, once a SP has followed it.
    pub target: Option<&'a [u8]>,
    /// The target bytes so far (all of it once complete).
    pub target_so_far: &'a [u8],
    /// Bytes after the second SP of the request line so far (CR included while unterminated).
    pub version_so_far: &'a [u8],
    /// Whether the request line is terminated.
    pub line_done: bool,
    /// Complete header lines as (name, value without surrounding SP/HTAB).
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    /// Header lines begun, complete or not.
    pub header_lines: usize,
    /// End of the head (after the empty line), once seen.
    pub end: Option<usize>,
    /// A bare LF before the end of the head (or of the bytes).
    pub bare_lf: bool,
}

/// The next line from `pos`: (content without CRLF/LF, position after it, terminated).
fn next_line(buf: &[u8], pos: usize) -> (&[u8], usize, bool) {
    let rest = &buf[pos.min(buf.len())..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &rest[..i];
            (line.strip_suffix(b"\r").unwrap_or(line), pos + i + 1, true)
        }
        None => (rest, buf.len(), false),
    }
}

pub fn view(buf: &[u8]) -> View<'_> {
    let mut v = View::default();
    let mut pos = 0;
    loop {
        if buf[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if buf[pos..].starts_with(b"\n") {
            pos += 1;
        } else {
            break;
        }
    }
    let (line, next, done) = next_line(buf, pos);
    if let Some(sp) = line.iter().position(|&b| b == b' ') {
        v.method = Some(&line[..sp]);
        let rest = &line[sp + 1..];
        match rest.iter().position(|&b| b == b' ') {
            Some(sp2) => {
                v.target = Some(&rest[..sp2]);
                v.target_so_far = &rest[..sp2];
                v.version_so_far = &rest[sp2 + 1..];
            }
            None => v.target_so_far = rest,
        }
    }
    v.line_done = done;
    pos = next;
    while v.line_done && pos < buf.len() {
        let (line, next, done) = next_line(buf, pos);
        if line.is_empty() && done {
            v.end = Some(next);
            break;
        }
        if !done && (line.is_empty() || line == b"\r") {
            break;
        }
        v.header_lines += 1;
        if !done {
            break;
        }
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        v.headers.push((
            &line[..colon],
            trim(line.get(colon + 1..).unwrap_or_default()),
        ));
        pos = next;
    }
    let scanned = &buf[..v.end.unwrap_or(buf.len())];
    v.bare_lf = scanned
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || scanned[i - 1] != b'\r'));
    v
}

/// Origin-, absolute- or asterisk-form, as the module docs define them.
pub fn target_form_ok(method: &[u8], target: &[u8]) -> bool {
    if target.starts_with(b"/") {
        return true;
    }
    if target == b"*" {
        return method == b"OPTIONS";
    }
    let lower = target.to_ascii_lowercase();
    let rest = if lower.starts_with(b"http://") {
        &target[7..]
    } else if lower.starts_with(b"https://") {
        &target[8..]
    } else {
        return false;
    };
    let authority = rest
        .split(|&b| b == b'/' || b == b'?')
        .next()
        .unwrap_or_default();
    !authority.is_empty() && !authority.contains(&b'@')
}

/// A `Content-Length` item: 1*DIGIT fitting `u64`.
fn length_item(item: &[u8]) -> Option<u64> {
    let item = trim(item);
    if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(item).ok()?.parse().ok()
}

/// Every documented reason to refuse what the view shows, as the error we answer it with.
pub fn documented_refusals(v: &View<'_>, limits: &HeadLimits, buf_len: usize) -> Vec<HttpError> {
    let mut out = Vec::new();
    if v.bare_lf {
        out.push(HttpError::BadLineEnding);
    }
    if v.target_so_far.iter().any(|&b| b == b'#' || b >= 0x80)
        || (v.line_done && !target_form_ok(v.method.unwrap_or_default(), v.target_so_far))
    {
        out.push(HttpError::BadTarget);
    }
    if v.target_so_far.len() > limits.max_uri_bytes {
        out.push(HttpError::UriTooLong {
            max_bytes: limits.max_uri_bytes,
        });
    }
    if v.end.unwrap_or(buf_len) > limits.max_head_bytes {
        out.push(HttpError::HeadTooLarge {
            max_bytes: limits.max_head_bytes,
        });
    }
    if v.header_lines > limits.max_headers {
        out.push(HttpError::TooManyHeaders {
            max: limits.max_headers,
        });
    }
    fn named<'v, 'a>(v: &'v View<'a>, name: &'static [u8]) -> impl Iterator<Item = &'a [u8]> + 'v {
        v.headers
            .iter()
            .filter(move |h| h.0.eq_ignore_ascii_case(name))
            .map(|h| h.1)
    }
    let mut lengths = Vec::new();
    for value in named(v, b"content-length") {
        for item in value.split(|&b| b == b',') {
            match length_item(item) {
                Some(n) => lengths.push(n),
                None => out.push(HttpError::BadContentLength),
            }
        }
    }
    lengths.sort_unstable();
    lengths.dedup();
    if lengths.len() > 1 {
        out.push(HttpError::ConflictingContentLength);
    }
    let te: Vec<&[u8]> = named(v, b"transfer-encoding").collect();
    if te.len() > 1 || te.iter().any(|t| !t.eq_ignore_ascii_case(b"chunked")) {
        out.push(HttpError::UnsupportedTransferEncoding);
    }
    let hosts = named(v, b"host").count();
    if hosts > 1 {
        out.push(HttpError::DuplicateHost);
    }
    if v.end.is_some() {
        let has_cl = named(v, b"content-length").next().is_some();
        if has_cl && !te.is_empty() {
            out.push(HttpError::ContentLengthWithTransferEncoding);
        }
        if !te.is_empty() && v.version_so_far == b"HTTP/1.0" {
            out.push(HttpError::TransferEncodingOnHttp10);
        }
        if hosts == 0 && v.version_so_far == b"HTTP/1.1" {
            out.push(HttpError::MissingHost);
        }
    }
    out
}

/// We wait on a version that can only end well-formed but unsupported (our 505), where
/// httparse refuses it at once.
fn waits_on_unsupported_version(v: &View<'_>) -> bool {
    let so_far = v.version_so_far;
    let template = b"HTTP/0.0\r";
    let well_formed_prefix = v.target.is_some()
        && !v.line_done
        && so_far.len() <= template.len()
        && so_far.iter().zip(template).all(|(&b, &t)| {
            if t == b'0' {
                b.is_ascii_digit()
            } else {
                b == t
            }
        });
    well_formed_prefix && !b"HTTP/1.0\r".starts_with(so_far) && !b"HTTP/1.1\r".starts_with(so_far)
}

pub fn check_with(buf: &[u8], limits: &HeadLimits) {
    let mut ours_headers = Vec::new();
    let ours = parse_head(buf, limits, &mut ours_headers);
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let theirs = req.parse(buf);
    let v = view(buf);
    let shown = || esc(buf);

    if let Ok(httparse::Status::Complete(n)) = theirs {
        // The view must see what httparse saw.
        assert_eq!(v.end, Some(n), "view end vs httparse: {}", shown());
        assert_eq!(
            v.method,
            req.method.map(str::as_bytes),
            "view method: {}",
            shown()
        );
        assert_eq!(
            v.target,
            req.path.map(str::as_bytes),
            "view target: {}",
            shown()
        );
        let theirs_headers: Vec<(&[u8], &[u8])> = req
            .headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value))
            .collect();
        assert_eq!(v.headers, theirs_headers, "view headers: {}", shown());
    }

    let refusals = documented_refusals(&v, limits, buf.len());
    match (&ours, &theirs) {
        (Ok(Parsed::Complete(head)), Ok(httparse::Status::Complete(n))) => {
            assert_eq!(
                head.len,
                *n,
                "head length: ours {} httparse {n}: {}",
                head.len,
                shown()
            );
            assert_eq!(
                Some(head.method_span.get(buf)),
                req.method.map(str::as_bytes),
                "method: {}",
                shown()
            );
            assert_eq!(
                Some(head.target.get(buf)),
                req.path.map(str::as_bytes),
                "target: {}",
                shown()
            );
            let version = match head.version {
                Version::Http10 => 0,
                Version::Http11 => 1,
            };
            assert_eq!(Some(version), req.version, "version: {}", shown());
            let ours_fields: Vec<(&[u8], &[u8])> = ours_headers
                .iter()
                .map(|h| (h.name.get(buf), h.value.get(buf)))
                .collect();
            let theirs_fields: Vec<(&[u8], &[u8])> = req
                .headers
                .iter()
                .map(|h| (h.name.as_bytes(), h.value))
                .collect();
            assert_eq!(ours_fields, theirs_fields, "header fields: {}", shown());
            assert!(
                refusals.is_empty(),
                "we accepted a head we document as refused ({refusals:?}): {}",
                shown()
            );
        }
        (Ok(Parsed::Complete(_)), _) => {
            panic!(
                "we accept, httparse says {theirs:?} (ours {ours:?}): {}",
                shown()
            )
        }
        (Ok(Parsed::Partial), Ok(httparse::Status::Complete(_))) => {
            panic!("we wait for more, httparse accepts: {}", shown())
        }
        (Ok(Parsed::Partial), Err(httparse::Error::Version))
            if waits_on_unsupported_version(&v) => {}
        (Ok(Parsed::Partial), Err(e)) => {
            panic!("we wait for more, httparse refuses ({e:?}): {}", shown())
        }
        (Err(e), Ok(_)) => assert!(
            refusals.contains(e),
            "we refuse ({e:?}) what httparse accepts or reads on ({theirs:?}), not a documented \
             difference (documented here: {refusals:?}): {}",
            shown()
        ),
        (Ok(Parsed::Partial), Ok(httparse::Status::Partial)) | (Err(_), Err(_)) => {}
    }
}
