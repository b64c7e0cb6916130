//! # pushcore — a thread-per-core Server-Sent Events push server
//!
//! Browsers and services subscribe to channels over one long-lived `text/event-stream`
//! response (`GET /events/stream?channels=a,b`); publishers `POST /events/publish`; every
//! subscriber receives every event of its channels, in order, and a client that reconnects with
//! `Last-Event-ID` gets exactly what it missed or an explicit `reset` event.
//!
//! ## Threading
//! One worker per core ([`worker`]): an OS thread pinned to its core running its own monoio
//! runtime (io_uring, with the epoll driver as fallback) and its own listener on the shared port
//! (SO_REUSEPORT). A connection lives and dies on the worker that accepted it. Worker state is
//! `!Send` and lock-free; workers meet only on the [`bus`] (SPSC rings plus a doorbell each) and
//! in the [`metrics`] counters, which each worker alone writes.
//!
//! ## How one event travels
//! 1. A publisher's `POST` is read by whichever worker accepted it (`worker/routes.rs`):
//!    [`http::parse`] reads the head (indices into the read buffer, no allocation per header),
//!    `worker/conn.rs` the body, [`api::publish`] validates the JSON, [`auth`] checks the token
//!    (once, before the body is read) and its channels.
//! 2. `worker/publish.rs` submits the events to the bus ([`bus::Endpoint::submit`]) and awaits
//!    the [`bus::Ticket`]: **this is where a publish waits for its ids.** The bus is a star
//!    through the **sequencer** ([`bus::Sequencer`], hosted by worker 0): it gives each event
//!    its id (`<unix-ms>-<seq>`, [`sse::id`]: one total order per server), formats its frame
//!    once ([`sse::encode`]) and pushes one `Arc` of it to every worker's frame ring, ringing
//!    the doorbells of workers that sleep. A full ring refuses the whole batch: the publisher
//!    gets `503`, nothing is dropped.
//! 3. Each worker's bus loop (`worker/inbox.rs`) takes the frame ([`bus::Endpoint::drain`]),
//!    appends one core-local `Rc` of it to the history ring of each of its channels
//!    ([`channel`]) and, once the whole drain is recorded, starts the writers of the local
//!    subscribers of those channels (a burst: one write per subscriber).
//! 4. A subscriber's *queue* is its cursor into history. **Its writer (`worker/writer.rs`) is
//!    the only code that writes to its socket**: it gathers every frame after the cursor
//!    (merged by id across its channels) into one list of shared buffers, so broadcast writes
//!    never copy; a burst's sends to all of them go to the kernel in one submit of the worker's
//!    fan-out ring (`sys::SendRing`, non-blocking sends). Only what a full socket did not take
//!    goes to a writer task, which finishes it on the runtime (`writev`), gives
//!    the stream back to its slot and ends.
//!
//! ## On to another host (cluster mode)
//! With `--redis-url` the sequencer is not worker 0 but the shared log, a Redis stream
//! ([`cluster`]): the bus is built with an external sequencer ([`bus::Topology::External`]) and
//! [`cluster::sequencer`] drives its hub. A publish goes from the worker to the intake thread,
//! to the appender (one pipelined `MULTI`/`XADD…`/`EXEC`), and is answered 200 only after Redis
//! acknowledged it, with the entry ids as event ids. Every instance's tailer thread follows the
//! stream with `XREAD BLOCK` from its last id, frames each entry once ([`bus::Framer`]) and
//! pushes it to its workers exactly as the in-process sequencer would: the same ids and bytes
//! on every host, so a client resumes with one `Last-Event-ID` anywhere (older than local
//! history: read back from the log; ahead of this host: held until it catches up).
//!
//! ## Who owns a subscriber's socket
//! `worker/slots.rs`: the `TcpStream` is in its slot while idle (`Writer::Idle`; the fast
//! write path sends through its fd without taking it out) or in its writer task while a write
//! waits on a full socket (`Writer::Busy`; a pending `Control::Close` when it must end). The
//! task's exit gives it back, or drops it and removes the slot in the same step, so the raw fd a slot keeps for `shutdown(2)` and the epoll set is valid exactly while
//! the slot exists. Hang-ups of idle sockets, heartbeats, timeouts and token expiry are the
//! sweep's (`worker/sweep.rs`, every 250 ms); a token that expires makes the next write send
//! `event: token-expired` and close.
//!
//! ## Where a stream starts
//! `worker/stream.rs` asks [`channel::resume::plan`] — a pure function of the `Last-Event-ID`,
//! the newest id seen, the boot id and the channels' history floors — for the cursor, and for a
//! `reset` reason when the resume cannot be exact.
//!
//! ## What one idle connection costs
//! A slot in a dense slab (stream handle, cursor, channel list, pending control frames: 176
//! bytes), an entry in each channel's subscriber list, and a registration in the worker's epoll
//! set, through which one poll notices FIN/RST for all idle sockets. No task, no buffer and no
//! timer.
//!
//! ## Layers (dependencies point one way)
//! [`sys`] ← [`http`], [`sse`] ← [`channel`] ← [`bus`] ← [`cluster`], [`api`] ← [`worker`] ←
//! [`server`];
//! [`config`] → [`limits`] (the configuration resolved once into what workers compare
//! against); [`auth`] and [`per_ip`] are leaves the edge consults; [`web`] holds the browser
//! client and the dashboard, [`ops`] the logs and the one-owner check.
#![warn(missing_debug_implementations)]
// Unsafe code lives in `sys` alone, each block with its SAFETY proof.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
// No panics where input can reach: errors are values. Tests may assert with them.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod auth;
pub mod bench;
pub mod bus;
pub mod channel;
pub mod cluster;
pub mod config;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod per_ip;
pub mod server;
pub mod sse;
#[allow(unsafe_code)]
pub mod sys;
pub mod web;
pub mod worker;
