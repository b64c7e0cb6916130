//! HTTP/1.1 at the edge: request-head parsing, bodies, request targets, responses.
//!
//! - [`parse`]: the incremental request-head parser ([`parse_head`]) with explicit limits; header
//!   fields are [`Span`]s into the read buffer, so parsing allocates nothing per request.
//! - [`body`]: the `Content-Length` limit ([`check_length`]) and the chunked decoder.
//! - [`query`]: the request-target decoded into a path and query pairs ([`parse_target`]).
//! - [`response`](mod@response): response bytes, including the JSON error body for every
//!   [`HttpError`].
//! - [`error`]: [`HttpError`], one variant per refusal, each with its status code.
//!
//! Errors from [`parse_head`] and [`ChunkedDecoder::decode`] leave the connection's framing
//! unknown: answer them with `keep_alive = false` and close (see [`HttpError::must_close`]).

pub mod body;
pub mod encoding;
pub mod error;
pub mod forwarded;
pub mod head;
pub mod parse;
pub mod query;
pub mod response;
mod scan;

pub use body::{check_length, ChunkStep, ChunkedDecoder, DEFAULT_MAX_BODY_BYTES};
pub use error::{ChunkError, HttpError};
pub use parse::{
    find_header, parse_head, BodyKind, Head, HeadLimits, Header, Method, Parsed, Request, Span,
    Version,
};
pub use query::{parse_target, Target};
pub use response::{http_error, http_error_with, json_error, json_ok, reason, response};
