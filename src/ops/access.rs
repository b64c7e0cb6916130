//! The publish access log (`--access-log`): one info line per publish request, written
//! through the non-blocking logger (the worker formats the line; the log thread writes it).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The log target of access lines; enabled at info level only with `--access-log`,
/// whatever `--log-level` says.
pub const TARGET: &str = "pushcore::access";

static ENABLED: AtomicBool = AtomicBool::new(false);

pub(crate) fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether access lines are written: check before gathering a record.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One answered publish request.
#[derive(Clone, Copy, Debug)]
pub struct PublishRecord<'a> {
    /// The client (after `--trusted-proxy` resolution).
    pub client: IpAddr,
    /// The status code answered.
    pub status: u16,
    /// Events sequenced (0 when refused).
    pub events: usize,
    /// The id of the first (or only) event, when sequenced.
    pub first_event_id: Option<&'a str>,
    /// Bytes of the request body.
    pub body_bytes: u64,
    /// Microseconds from the end of the request head to the answer.
    pub micros: u64,
}

/// Log `record` if the access log is on.
pub fn publish(record: &PublishRecord<'_>) {
    if !enabled() {
        return;
    }
    tracing::info!(
        target: TARGET,
        client = %record.client,
        status = record.status,
        events = record.events,
        event_id = record.first_event_id.unwrap_or(""),
        body_bytes = record.body_bytes,
        micros = record.micros,
        "publish"
    );
}
