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
//! 1. A publisher's `POST` is read by whichever worker accepted it: [`http::parse`] reads the
//!    head (indices into the read buffer, no allocation per header), [`http::body`] the body,
//!    [`worker::publish`] validates the JSON.
//! 2. The events go to the **sequencer** (the role of worker 0, [`bus::sequencer`]) over that
//!    worker's request ring. The sequencer gives each event its id (`<unix-ms>-<seq>`,
//!    [`sse::id`]: one total order per server), formats its frame once ([`sse::encode`]) and
//!    pushes one `Arc` of it to every worker's frame ring, ringing doorbells of workers that
//!    sleep. A full ring refuses the whole batch: the publisher gets `503`, nothing is dropped.
//! 3. Each worker appends the frame (one `Rc` handle, core-local) to the history ring of each
//!    of its channels ([`channel`]) and wakes the local subscribers of those channels.
//! 4. A subscriber's *queue* is its cursor into history. Its writer task gathers every frame
//!    after the cursor (merged by id across its channels) into one `writev` of shared buffers,
//!    so broadcast writes never copy, then gives the stream back to its slot and ends.
//!
//! ## What one idle connection costs
//! A slot in a dense slab (stream handle, cursor, channel list, flags: about 100 bytes plus its
//! channel list), an entry in each channel's subscriber list, and a registration in the
//! worker's epoll set, through which one poll notices FIN/RST for all idle sockets. No task, no
//! buffer and no timer: one sweep per worker per half-second sends heartbeats and enforces the
//! handshake, keep-alive and write-stall timeouts.
//!
//! ## Layers (dependencies point one way)
//! [`sys`] ← [`http`], [`sse`] ← [`channel`] ← [`bus`] ← [`worker`] ← [`server`].
#![warn(missing_debug_implementations)]

pub mod auth;
pub mod bench;
pub mod bus;
pub mod channel;
pub mod cluster;
pub mod config;
pub mod http;
pub mod metrics;
pub mod per_ip;
pub mod server;
pub mod sse;
pub mod sys;
pub mod worker;
