//! Response bytes: status line, a fixed set of headers, and a body.
//!
//! Every response carries `Content-Length` (except 1xx, 204 and 304, which have no body) and an
//! explicit `Connection: keep-alive` or `Connection: close`. Extra headers come from the server
//! itself, never from a client; one whose name is not a token or whose value holds CR, LF or
//! NUL is left out rather than allowed to split the response.

use super::error::HttpError;
use super::scan::is_token_byte;

/// The interim response sent to a client that asked for `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase for a status code (empty for codes we do not use).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A complete response: status line, `Content-Type` (left out when empty), `Content-Length`,
/// `Connection`, `extra_headers` in order, and `body`.
pub fn response(
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let has_body = !(matches!(status, 100..=199 | 204 | 304));
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if !content_type.is_empty() && has_body {
        push_header(&mut out, "Content-Type", content_type);
    }
    if has_body {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    });
    for (name, value) in extra_headers {
        push_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    if has_body {
        out.extend_from_slice(body);
    }
    out
}

/// A JSON error response with body `{"error":"<message>"}` (the message JSON-escaped).
pub fn json_error(
    status: u16,
    message: &str,
    extra_headers: &[(&str, &str)],
    keep_alive: bool,
) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    response(
        status,
        "application/json",
        extra_headers,
        body.as_bytes(),
        keep_alive,
    )
}

/// The response for `err`: its status, its message as a JSON error, and `Allow` (405) or
/// `Retry-After` (503) where the status calls for it.
pub fn http_error(err: &HttpError, keep_alive: bool) -> Vec<u8> {
    http_error_with(err, &[], keep_alive)
}

/// [`http_error`] with more headers (CORS grants, for one).
pub fn http_error_with(
    err: &HttpError,
    extra_headers: &[(&str, &str)],
    keep_alive: bool,
) -> Vec<u8> {
    let message = err.to_string();
    let secs;
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra_headers.len() + 1);
    match err {
        HttpError::MethodNotAllowed { allow } => headers.push(("Allow", allow)),
        HttpError::ServiceUnavailable {
            retry_after_secs, ..
        } => {
            secs = retry_after_secs.to_string();
            headers.push(("Retry-After", &secs));
        }
        _ => {}
    }
    headers.extend_from_slice(extra_headers);
    json_error(err.status(), &message, &headers, keep_alive)
}

/// A JSON success response with `body` already serialized.
pub fn json_ok(status: u16, body: &[u8], keep_alive: bool) -> Vec<u8> {
    response(status, "application/json", &[], body, keep_alive)
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let name_ok = !name.is_empty() && name.bytes().all(is_token_byte);
    let value_ok = !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
    if name_ok && value_ok {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(&[]));
}
