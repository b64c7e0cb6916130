//! # pushcore — a thread-per-core Server-Sent Events push server
//!
//! (The architecture story is written out once the engine lands; see README.md.)
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod http;
pub mod sse;
