//! What the parser produces: a request head as spans into the read buffer, its method,
//! version and framing, and the limits it must fit. No parsing here (see [`super::parse`]).

use super::parse::DEFAULT_MAX_URI_BYTES;
use super::parse::{DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_BYTES};

/// The limits one request head must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of head, including the final CRLFCRLF (→ 431). Capped at `u32::MAX`.
    pub max_head_bytes: usize,
    /// Header fields (→ 431).
    pub max_headers: usize,
    /// Bytes of request-target (→ 414).
    pub max_uri_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
        }
    }
}

/// A byte range `start..end` in the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    pub(super) fn new(start: usize, end: usize) -> Self {
        // Positions are below `max_head_bytes`, which `parse_head` caps at `u32::MAX`.
        Self {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// The bytes of this span in `buf`; empty if the span does not fit `buf`.
    pub fn get(self, buf: &[u8]) -> &[u8] {
        let (Ok(start), Ok(end)) = (usize::try_from(self.start), usize::try_from(self.end)) else {
            return &[];
        };
        buf.get(start..end).unwrap_or(&[])
    }

    /// Length in bytes (0 for an inverted span).
    pub fn len(self) -> usize {
        usize::try_from(self.end.saturating_sub(self.start)).unwrap_or(0)
    }

    /// Whether the span is empty.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// One header field: both spans index the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The field name, as sent (not lower-cased).
    pub name: Span,
    /// The field value with surrounding SP/HTAB removed.
    pub value: Span,
}

/// Request method. Methods are case-sensitive: `get` is [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// `TRACE`
    Trace,
    /// `CONNECT`
    Connect,
    /// A valid token that is none of the above (see [`Head::method_span`]).
    Other,
}

impl Method {
    /// The method for a (valid token) name.
    pub fn from_bytes(name: &[u8]) -> Self {
        match name {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            b"POST" => Self::Post,
            b"PUT" => Self::Put,
            b"DELETE" => Self::Delete,
            b"OPTIONS" => Self::Options,
            b"PATCH" => Self::Patch,
            b"TRACE" => Self::Trace,
            b"CONNECT" => Self::Connect,
            _ => Self::Other,
        }
    }

    /// The method name, or `None` for [`Method::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Patch => "PATCH",
            Self::Trace => "TRACE",
            Self::Connect => "CONNECT",
            Self::Other => return None,
        })
    }
}

/// Protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    None,
    /// `Content-Length: n` (possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`crate::http::body::ChunkedDecoder`].
    Chunked,
}

/// A complete request head; header fields are in the `Vec<Header>` given to [`parse_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The method bytes (useful for [`Method::Other`]).
    pub method_span: Span,
    /// The request-target bytes, as sent (not decoded; see [`crate::http::query::parse_target`]).
    pub target: Span,
    /// The protocol version.
    pub version: Version,
    /// Bytes of the head from the start of the buffer, including the final CRLFCRLF: the body
    /// (or the next pipelined request) starts here.
    pub len: usize,
    /// The body framing.
    pub body: BodyKind,
    /// Whether the connection may stay open after the response: the version's default
    /// (HTTP/1.1 yes, HTTP/1.0 no) adjusted by `Connection: close` / `keep-alive`.
    pub keep_alive: bool,
}

/// Outcome of [`parse_head`] on the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more and call again with the longer buffer.
    Partial,
    /// The head is complete.
    Complete(Head),
}

/// A parsed request borrowing the read buffer: convenient accessors over [`Head`].
#[derive(Clone, Copy, Debug)]
pub struct Request<'b> {
    /// The read buffer the spans index.
    pub buf: &'b [u8],
    /// The parsed head.
    pub head: Head,
    /// The header fields, in order.
    pub headers: &'b [Header],
}

impl<'b> Request<'b> {
    /// The value of the first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        find_header(self.buf, self.headers, name)
    }

    /// The value of the first header field named `name`, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'b str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every header field named `name`, in order.
    pub fn header_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'b [u8]> + 'n
    where
        'b: 'n,
    {
        let buf = self.buf;
        self.headers
            .iter()
            .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| h.value.get(buf))
    }

    /// Every header field as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + 'b {
        let buf = self.buf;
        self.headers
            .iter()
            .map(move |h| (h.name.get(buf), h.value.get(buf)))
    }

    /// The request-target as sent.
    pub fn target_bytes(&self) -> &'b [u8] {
        self.head.target.get(self.buf)
    }

    /// The method as sent.
    pub fn method_bytes(&self) -> &'b [u8] {
        self.head.method_span.get(self.buf)
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }
}

/// The value of the first header field named `name` (ASCII case-insensitive).
pub fn find_header<'b>(buf: &'b [u8], headers: &[Header], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value.get(buf))
}
