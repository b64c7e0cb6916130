//! Running pushcore as a service: one owner per address ([`owner`]), logs that never block a
//! worker ([`log`]), aggregated connection failures ([`failures`]), the publish access log
//! ([`access`]) and the open-file limit ([`limits`]).
//!
//! Nothing here is on an event's path: workers only bump their own counters, and at most
//! format a log line into a bounded queue.

pub mod access;
pub mod failures;
pub mod limits;
pub mod log;
pub mod owner;

/// The I/O driver the workers' runtimes use: monoio's `FusionDriver` takes io_uring when this
/// kernel supports the operations it needs (and `MONOIO_FORCE_LEGACY_DRIVER` is not set), else
/// epoll. The same check monoio makes, so the answer is the driver it picks.
pub fn driver_name() -> &'static str {
    if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    }
}
