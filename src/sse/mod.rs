//! Server-Sent Events on the wire: event ids and frame encoding.
//!
//! [`id`] defines [`EventId`] (`<unix-ms>-<seq>`, the shape of a Redis stream id), its strict
//! parser for `Last-Event-ID`, and the [`IdGenerator`] that hands out strictly increasing ids.
//! [`encode`] turns an [`Event`] into a [`Frame`]: the exact `text/event-stream` bytes that
//! every subscriber receives, encoded once and shared by reference count.
//!
//! Nothing here panics on any input: the lints below hold the module to that.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod encode;
pub mod gzip;
pub mod id;

pub use encode::{
    connected, encode_into, encode_published, reset, shutdown, token_expired, EncodeError, Event,
    Frame,
};
pub use id::{parse as parse_id, unix_ms_now, EventId, IdError, IdGenerator};
