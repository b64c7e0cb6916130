//! Everything that can go wrong with a request, each mapped to one HTTP status.
//!
//! The `Display` text is what a client sees in the JSON body of the error response
//! (`{"error":"…"}`), so it says what was wrong and, where it helps, what the limit is.

use std::fmt;

/// A defect in a chunked request body (always 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The chunk-size line does not start with a hex digit, or has a byte that is neither a hex
    /// digit, an extension nor the line end.
    BadSize,
    /// More hex digits in a chunk size than [`crate::http::body::MAX_CHUNK_SIZE_DIGITS`].
    SizeTooLong,
    /// A control byte in a chunk extension.
    BadExtension,
    /// A chunk extension longer than [`crate::http::body::MAX_CHUNK_EXT_BYTES`], or more
    /// extension bytes in one body than [`crate::http::body::MAX_CHUNK_EXT_TOTAL_BYTES`].
    ExtensionTooLong,
    /// A line or chunk data not followed by CRLF.
    MissingCrlf,
    /// A trailer field that is not `name: value`.
    BadTrailer,
}

impl ChunkError {
    fn message(self) -> &'static str {
        match self {
            Self::BadSize => "invalid chunk size (expected hexadecimal digits)",
            Self::SizeTooLong => "chunk size has too many digits",
            Self::BadExtension => "invalid byte in chunk extension",
            Self::ExtensionTooLong => "chunk extensions are too long",
            Self::MissingCrlf => "chunk not terminated by CRLF",
            Self::BadTrailer => "invalid trailer field in chunked body",
        }
    }
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A request the server refuses, with the status code it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    // --- request line -------------------------------------------------------------------
    /// The request line is not `method SP target SP version CRLF` (400).
    BadRequestLine,
    /// The method is empty or contains a byte that is not a token character (400).
    BadMethod,
    /// The request-target has a forbidden byte or is not origin-, absolute- or asterisk-form (400).
    BadTarget,
    /// The request-target is longer than the configured limit (414).
    UriTooLong {
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// The version is not `HTTP/<digit>.<digit>` (400).
    BadVersion,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    VersionNotSupported,
    /// A line ended by a bare LF (or a bare CR) instead of CRLF (400).
    BadLineEnding,

    // --- head size ----------------------------------------------------------------------
    /// No end of head within the limit (431).
    HeadTooLarge {
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// More header fields than the limit (431).
    TooManyHeaders {
        /// The limit in fields.
        max: usize,
    },

    // --- header fields ------------------------------------------------------------------
    /// A header name is empty or has a byte that is not a token character (400).
    BadHeaderName,
    /// A header value has a control byte (other than HTAB) (400).
    BadHeaderValue,
    /// Whitespace between a header name and its colon (400, RFC 9112 §5.1).
    WhitespaceBeforeColon,
    /// A header line starting with SP or HTAB: obsolete line folding (400).
    ObsFold,
    /// An HTTP/1.1 request without `Host` (400, RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` field (400).
    DuplicateHost,

    // --- message framing ----------------------------------------------------------------
    /// `Content-Length` is not a plain decimal number that fits 64 bits (400).
    BadContentLength,
    /// Several `Content-Length` values that differ (400).
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` (400: a request smuggling shape).
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` other than exactly `chunked` (400).
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` on an HTTP/1.0 request (400, RFC 9112 §6.1).
    TransferEncodingOnHttp10,
    /// A malformed chunked body (400).
    BadChunk(ChunkError),
    /// Trailer fields of a chunked body larger than the limit (431).
    TrailersTooLarge {
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// A body larger than the limit (413).
    BodyTooLarge {
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// A body is required but neither `Content-Length` nor chunked encoding was sent (411).
    LengthRequired,
    /// An `Expect` value other than `100-continue` (417).
    ExpectationFailed,

    // --- request target contents --------------------------------------------------------
    /// A `%` not followed by two hex digits (400).
    BadPercentEncoding,
    /// The decoded path or query is not UTF-8, or contains NUL (400).
    BadTargetEncoding,
    /// More query parameters than [`crate::http::query::MAX_QUERY_PAIRS`] (414).
    TooManyQueryParams {
        /// The limit in pairs.
        max: usize,
    },

    // --- routing and server state -------------------------------------------------------
    /// The head did not arrive in time (408).
    HeadTimeout,
    /// No such resource (404).
    NotFound,
    /// The resource exists but not for this method (405, with an `Allow` header).
    MethodNotAllowed {
        /// The value of the `Allow` header, e.g. `"GET, HEAD"`.
        allow: &'static str,
    },
    /// The body's media type is not accepted (415).
    UnsupportedMediaType {
        /// The accepted media type, e.g. `"application/json"`.
        expected: &'static str,
    },
    /// The request body is not what the endpoint accepts (400); the message says why.
    BadBody(String),
    /// The server cannot take this request now (503, with a `Retry-After` header).
    ServiceUnavailable {
        /// What the client sees, e.g. `"Server at capacity"`.
        message: &'static str,
        /// The value of `Retry-After`, in seconds.
        retry_after_secs: u32,
    },
}

impl HttpError {
    /// The HTTP status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequestLine
            | Self::BadMethod
            | Self::BadTarget
            | Self::BadVersion
            | Self::BadLineEnding
            | Self::BadHeaderName
            | Self::BadHeaderValue
            | Self::WhitespaceBeforeColon
            | Self::ObsFold
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::BadContentLength
            | Self::ConflictingContentLength
            | Self::ContentLengthWithTransferEncoding
            | Self::UnsupportedTransferEncoding
            | Self::TransferEncodingOnHttp10
            | Self::BadChunk(_)
            | Self::BadPercentEncoding
            | Self::BadTargetEncoding
            | Self::BadBody(_) => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::HeadTimeout => 408,
            Self::LengthRequired => 411,
            Self::BodyTooLarge { .. } => 413,
            Self::UriTooLong { .. } | Self::TooManyQueryParams { .. } => 414,
            Self::UnsupportedMediaType { .. } => 415,
            Self::ExpectationFailed => 417,
            Self::HeadTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::TrailersTooLarge { .. } => 431,
            Self::ServiceUnavailable { .. } => 503,
            Self::VersionNotSupported => 505,
        }
    }
}

impl HttpError {
    /// Whether the connection must be closed after answering: the request could not be framed
    /// (head or body unreadable, too large, or too slow), so where the next request starts is
    /// unknown. For the other errors the connection can be kept once the body has been read.
    pub fn must_close(&self) -> bool {
        !matches!(
            self,
            Self::BadPercentEncoding
                | Self::BadTargetEncoding
                | Self::TooManyQueryParams { .. }
                | Self::NotFound
                | Self::MethodNotAllowed { .. }
                | Self::UnsupportedMediaType { .. }
                | Self::BadBody(_)
                | Self::ServiceUnavailable { .. }
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequestLine => f.write_str("malformed request line (expected `METHOD /path HTTP/1.1`)"),
            Self::BadMethod => f.write_str("invalid request method"),
            Self::BadTarget => f.write_str(
                "invalid request target (expected a path starting with `/`, an absolute http(s) URL, or `*` for OPTIONS)",
            ),
            Self::UriTooLong { max_bytes } => write!(f, "request target longer than {max_bytes} bytes"),
            Self::BadVersion => f.write_str("invalid HTTP version"),
            Self::VersionNotSupported => f.write_str("HTTP version not supported (use HTTP/1.1 or HTTP/1.0)"),
            Self::BadLineEnding => f.write_str("lines must end with CRLF"),
            Self::HeadTooLarge { max_bytes } => write!(f, "request head larger than {max_bytes} bytes (raise --max-head-bytes)"),
            Self::TooManyHeaders { max } => write!(f, "more than {max} header fields (raise --max-headers)"),
            Self::BadHeaderName => f.write_str("invalid header field name"),
            Self::BadHeaderValue => f.write_str("invalid byte in header field value"),
            Self::WhitespaceBeforeColon => f.write_str("whitespace between header field name and colon"),
            Self::ObsFold => f.write_str("obsolete line folding in header fields is not accepted"),
            Self::MissingHost => f.write_str("missing Host header"),
            Self::DuplicateHost => f.write_str("more than one Host header"),
            Self::BadContentLength => f.write_str("invalid Content-Length"),
            Self::ConflictingContentLength => f.write_str("conflicting Content-Length values"),
            Self::ContentLengthWithTransferEncoding => {
                f.write_str("both Content-Length and Transfer-Encoding present")
            }
            Self::UnsupportedTransferEncoding => {
                f.write_str("unsupported Transfer-Encoding (only `chunked` is accepted)")
            }
            Self::TransferEncodingOnHttp10 => f.write_str("Transfer-Encoding is not allowed in HTTP/1.0"),
            Self::BadChunk(e) => write!(f, "malformed chunked body: {e}"),
            Self::TrailersTooLarge { max_bytes } => write!(f, "chunked trailers larger than {max_bytes} bytes"),
            Self::BodyTooLarge { max_bytes } => write!(f, "request body larger than {max_bytes} bytes (raise --max-body-bytes)"),
            Self::LengthRequired => f.write_str("Content-Length required"),
            Self::ExpectationFailed => f.write_str("unsupported Expect value (only `100-continue`)"),
            Self::BadPercentEncoding => f.write_str("malformed percent-encoding in request target"),
            Self::BadTargetEncoding => f.write_str("request target does not decode to UTF-8 without NUL"),
            Self::TooManyQueryParams { max } => write!(f, "more than {max} query parameters"),
            Self::HeadTimeout => f.write_str("request not received in time"),
            Self::NotFound => f.write_str("Not found"),
            Self::MethodNotAllowed { allow } => write!(f, "Method not allowed (allowed: {allow})"),
            Self::UnsupportedMediaType { expected } => write!(f, "Content-Type must be {expected}"),
            Self::BadBody(reason) => f.write_str(reason),
            Self::ServiceUnavailable { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<ChunkError> for HttpError {
    fn from(e: ChunkError) -> Self {
        Self::BadChunk(e)
    }
}
