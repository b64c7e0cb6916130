//! Harness for the black-box server tests (`tests/server_*.rs`): run the real `pushcore` binary
//! on either monoio driver, talk to it over real sockets, read event streams with deadlines.
//!
//! - [`server`]: the `pushcore serve` process (the one launcher, [`serve_command`]), drivers;
//! - [`http`]: raw HTTP over real sockets: requests, responses, publishing;
//! - [`metrics`]: `/metrics` read and summed;
//! - [`sse`]: event streams: blocks, a WHATWG-style block parser, subscriptions with deadlines.
//!
//! Every wait here is bounded: reads carry a deadline and report [`End::Timeout`] instead of
//! hanging, polling helpers give up after their timeout, and a [`Server`] kills its child on
//! drop. Nothing here sleeps to assert timing; sleeps only pace a polling loop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long any single expected answer may take before a test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Generates one `#[test]` per monoio driver for `fn name(driver: Driver)`, as the module
/// `name` with the tests `name::uring` and `name::epoll` (monoio's `#[test_all]` style).
/// Leading attributes (such as `#[ignore = "bug: …"]`) apply to both; `uring: #[…]` and
/// `epoll: #[…]` after the name apply to one.
#[allow(unused_macros)]
macro_rules! both_drivers {
    ($(#[$attr:meta])* $name:ident $(, uring: #[$uring:meta])? $(, epoll: #[$epoll:meta])?) => {
        mod $name {
            $(#[$attr])*
            $(#[$uring])?
            #[test]
            fn uring() {
                super::$name($crate::common::Driver::IoUring)
            }
            $(#[$attr])*
            $(#[$epoll])?
            #[test]
            fn epoll() {
                super::$name($crate::common::Driver::Epoll)
            }
        }
    };
}

mod http;
mod metrics;
mod server;
mod sse;

#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use metrics::*;
#[allow(unused_imports)]
pub use server::*;
#[allow(unused_imports)]
pub use sse::*;
