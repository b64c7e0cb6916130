//! The configuration, resolved once into the typed limits the workers use: sizes as `usize`,
//! timeouts in the units the sweep counts in. Built by the server before any worker starts.

use std::time::Duration;

use crate::channel::Retention;
use crate::config::Config;
use crate::http::parse::{HeadLimits, DEFAULT_MAX_URI_BYTES};

/// Everything a worker checks against, in ready-to-compare form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request head: bytes, header count, target length.
    pub head: HeadLimits,
    /// Largest publish body (`413` beyond).
    pub max_body_bytes: usize,
    /// Most channels one subscriber may follow (`400` beyond).
    pub max_channels: usize,
    /// Per-channel history bounds.
    pub retention: Retention,
    /// A subscriber this many live events behind is disconnected.
    pub max_lag_events: usize,
    /// Quiet seconds before a heartbeat (0: none).
    pub heartbeat_secs: u32,
    /// A write that makes no progress this long drops its subscriber.
    pub write_timeout_secs: u32,
    pub handshake_timeout_ms: u64,
    pub keepalive_timeout_ms: u64,
    /// The `retry:` hint sent on connect (and the base of the jittered one on shutdown).
    pub retry_ms: u64,
    pub drain_timeout: Duration,
    /// Open connections across workers before `503`.
    pub max_connections: u64,
    /// Streams end (with `event: shutdown`) after this long, jittered (None: never).
    pub max_stream_lifetime_secs: Option<u64>,
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn secs32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            head: HeadLimits {
                max_head_bytes: size(config.max_head_bytes),
                max_headers: size(config.max_headers),
                max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            },
            max_body_bytes: size(config.max_body_bytes),
            max_channels: size(config.max_channels),
            retention: Retention {
                max_events: size(config.history_events),
                max_bytes: size(config.history_bytes),
                max_age_ms: config.history_age_secs.saturating_mul(1000),
            },
            max_lag_events: size(config.max_lag_events),
            heartbeat_secs: secs32(config.heartbeat_secs),
            write_timeout_secs: secs32(config.write_timeout_secs),
            handshake_timeout_ms: config.handshake_timeout_secs.saturating_mul(1000),
            keepalive_timeout_ms: config.keepalive_timeout_secs.saturating_mul(1000),
            retry_ms: config.retry_ms,
            drain_timeout: Duration::from_secs(config.drain_timeout_secs),
            max_connections: config.max_connections,
            max_stream_lifetime_secs: (config.max_stream_lifetime_secs > 0)
                .then_some(config.max_stream_lifetime_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_to_the_documented_values() {
        let l = Limits::from_config(&Config::default());
        assert_eq!(l.head.max_head_bytes, 16 * 1024);
        assert_eq!(l.max_body_bytes, 1024 * 1024);
        assert_eq!(l.max_channels, 100);
        assert_eq!(l.retention.max_events, 1000);
        assert_eq!(l.retention.max_age_ms, 3_600_000);
        assert_eq!(l.heartbeat_secs, 30);
        assert_eq!(l.handshake_timeout_ms, 10_000);
        assert_eq!(l.drain_timeout, Duration::from_secs(10));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        let config = Config {
            heartbeat_secs: u64::MAX,
            history_age_secs: u64::MAX,
            ..Config::default()
        };
        let l = Limits::from_config(&config);
        assert_eq!(l.heartbeat_secs, u32::MAX);
        assert_eq!(l.retention.max_age_ms, u64::MAX);
    }
}
