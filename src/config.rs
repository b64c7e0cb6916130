//! Server configuration: every option has a flag, a `PUSHCORE_*` environment variable, a key in
//! the `--config` file and a default, and is validated before any socket is opened.
//!
//! Precedence: flags, then environment variables, then the config file ([`file`]), then the
//! defaults. [`cli`] parses a command line with that precedence and renders the effective
//! configuration for the start line (secrets redacted).

pub mod cli;
pub mod file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};

use crate::http::forwarded::{Cidr, TrustedProxies};

/// `pushcore serve` options. Field names carry their units.
/// Defaults, one per option.
pub mod defaults {
    pub const MAX_CONNECTIONS: u64 = 100_000;
    pub const MAX_CONNECTIONS_PER_IP: u64 = 0;
    pub const HEARTBEAT_SECS: u64 = 30;
    pub const RETRY_MS: u64 = 3000;
    pub const HISTORY_EVENTS: u64 = 1000;
    pub const HISTORY_BYTES: u64 = 4 * 1024 * 1024;
    pub const HISTORY_AGE_SECS: u64 = 3600;
    pub const MAX_LAG_EVENTS: u64 = 1000;
    pub const DRAIN_TIMEOUT_SECS: u64 = 10;
    pub const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
    pub const WRITE_TIMEOUT_SECS: u64 = 30;
    pub const KEEPALIVE_TIMEOUT_SECS: u64 = 60;
    pub const MAX_HEAD_BYTES: u64 = 16 * 1024;
    pub const MAX_HEADERS: u64 = 100;
    pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
    pub const MAX_CHANNELS: u64 = 100;
    pub const SNDBUF_BYTES: u64 = 64 * 1024;
    pub const CPU_BASE: u64 = 0;
    pub const MAX_STREAM_LIFETIME_SECS: u64 = 0;
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub use crate::ops::limits::RESERVED_FDS;

    /// `--max-connections` when not given: what the open-file limit (after raising the soft
    /// limit to the hard one) leaves after [`RESERVED_FDS`], at most [`MAX_CONNECTIONS`].
    pub fn max_connections() -> u64 {
        crate::ops::limits::nofile_ceiling().map_or(MAX_CONNECTIONS, |limit| {
            limit.saturating_sub(RESERVED_FDS).clamp(1, MAX_CONNECTIONS)
        })
    }
}

/// `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// `--log-format`: `text` for a terminal, `json` (one object per line) for a collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on, like 127.0.0.1:8080, 0.0.0.0:8080, [::]:8080 or localhost:8080
    /// (every worker binds it with SO_REUSEPORT).
    #[arg(long, env = "PUSHCORE_LISTEN", default_value = defaults::LISTEN, value_name = "ADDR", value_parser = cli::parse_listen)]
    pub listen: SocketAddr,

    /// Worker threads, one runtime each, pinned to cores (default: one per available core).
    #[arg(long, env = "PUSHCORE_WORKERS", allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Most concurrent connections (subscribers and publishers) across all workers; beyond it
    /// new connections get 503 with Retry-After. Default: what the open-file limit allows
    /// (less 128 descriptors), at most 100000.
    #[arg(long, env = "PUSHCORE_MAX_CONNECTIONS", default_value_t = defaults::max_connections(),
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_connections: u64,

    /// Most connections open from one client address (IPv6: one /64); beyond it new ones get 429
    /// with Retry-After. 0 = no limit (the default: behind a proxy every client shares its address).
    #[arg(long = "max-connections-per-ip", env = "PUSHCORE_MAX_CONNECTIONS_PER_IP", default_value_t = defaults::MAX_CONNECTIONS_PER_IP,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_connections_per_ip: u64,

    /// Seconds of quiet before a `: heartbeat` comment is sent (0 = no heartbeats).
    #[arg(long = "heartbeat", env = "PUSHCORE_HEARTBEAT", default_value_t = defaults::HEARTBEAT_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub heartbeat_secs: u64,

    /// The `retry:` reconnection hint sent on connect, in milliseconds.
    #[arg(long = "retry", env = "PUSHCORE_RETRY", default_value_t = defaults::RETRY_MS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub retry_ms: u64,

    /// Events retained per channel for replay.
    #[arg(long, env = "PUSHCORE_HISTORY_EVENTS", default_value_t = defaults::HISTORY_EVENTS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub history_events: u64,

    /// Bytes of encoded frames retained per channel for replay.
    #[arg(long = "history-bytes", env = "PUSHCORE_HISTORY_BYTES", default_value_t = defaults::HISTORY_BYTES,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=(1u64 << 40)))]
    pub history_bytes: u64,

    /// Seconds an event stays replayable (0 = no age limit).
    #[arg(long = "history-age", env = "PUSHCORE_HISTORY_AGE", default_value_t = defaults::HISTORY_AGE_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub history_age_secs: u64,

    /// Slow-consumer limit: a subscriber more than this many events behind the newest event of
    /// its channels is disconnected (it resumes with Last-Event-ID).
    #[arg(long = "max-lag", env = "PUSHCORE_MAX_LAG", default_value_t = defaults::MAX_LAG_EVENTS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_lag_events: u64,

    /// Seconds to wait for subscribers to be told and closed on SIGTERM/SIGINT.
    #[arg(long = "drain-timeout", env = "PUSHCORE_DRAIN_TIMEOUT", default_value_t = defaults::DRAIN_TIMEOUT_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_timeout_secs: u64,

    /// Seconds a client has to send a complete request head (then 408).
    #[arg(long = "handshake-timeout", env = "PUSHCORE_HANDSHAKE_TIMEOUT", default_value_t = defaults::HANDSHAKE_TIMEOUT_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub handshake_timeout_secs: u64,

    /// Seconds a write may make no progress before the connection is dropped.
    #[arg(long = "write-timeout", env = "PUSHCORE_WRITE_TIMEOUT", default_value_t = defaults::WRITE_TIMEOUT_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_secs: u64,

    /// Seconds an idle keep-alive publisher connection is kept open.
    #[arg(long = "keepalive-timeout", env = "PUSHCORE_KEEPALIVE_TIMEOUT", default_value_t = defaults::KEEPALIVE_TIMEOUT_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub keepalive_timeout_secs: u64,

    /// Largest request head in bytes (then 431).
    #[arg(long = "max-head-bytes", env = "PUSHCORE_MAX_HEAD_BYTES", default_value_t = defaults::MAX_HEAD_BYTES,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(256..=1024 * 1024))]
    pub max_head_bytes: u64,

    /// Most header fields in a request head (then 431).
    #[arg(long = "max-headers", env = "PUSHCORE_MAX_HEADERS", default_value_t = defaults::MAX_HEADERS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_headers: u64,

    /// Largest publish body in bytes (then 413).
    #[arg(long = "max-body-bytes", env = "PUSHCORE_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=(1u64 << 32)))]
    pub max_body_bytes: u64,

    /// Most channels one subscriber may follow (then 400).
    #[arg(long = "max-channels", env = "PUSHCORE_MAX_CHANNELS", default_value_t = defaults::MAX_CHANNELS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_channels: u64,

    /// Kernel send buffer per subscriber socket in bytes (caps what a slow client can pin).
    #[arg(long = "sndbuf-bytes", env = "PUSHCORE_SNDBUF_BYTES", default_value_t = defaults::SNDBUF_BYTES,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(4096..=(64 * 1024 * 1024)))]
    pub sndbuf_bytes: u64,

    /// Compress event streams for subscribers that send `Accept-Encoding: gzip`: each event is
    /// compressed once (an independent deflate segment) and shared by every gzip subscriber.
    /// Worth it for events of about 1 KB and more (see BENCHMARKS.md).
    #[arg(long = "gzip", env = "PUSHCORE_GZIP", value_parser = clap::builder::BoolishValueParser::new())]
    pub gzip: bool,

    /// Streams end after this many seconds (jittered down by up to a quarter) with the same
    /// `shutdown` event and jittered `retry:` as a drain; the client resumes exactly, usually on
    /// another instance, which spreads load after a scale-out. 0 = never (the default).
    #[arg(long = "max-stream-lifetime", env = "PUSHCORE_MAX_STREAM_LIFETIME", default_value_t = defaults::MAX_STREAM_LIFETIME_SECS,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub max_stream_lifetime_secs: u64,

    /// Do not pin worker threads to cores.
    #[arg(long = "no-pin", env = "PUSHCORE_NO_PIN")]
    pub no_pin: bool,

    /// Authorization (JWT) and CORS.
    #[command(flatten)]
    pub auth: crate::auth::AuthConfig,

    /// Cluster mode: instances sharing one event log in Redis Streams.
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterConfig,

    /// First CPU to pin worker 0 to; worker i goes to (cpu_base + i) mod cores.
    #[arg(long = "cpu-base", env = "PUSHCORE_CPU_BASE", default_value_t = defaults::CPU_BASE,
          allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub cpu_base: u64,

    /// Serve /metrics, /healthz, /readyz and the dashboard on this address only (recommended in
    /// production: not on the public port).
    #[arg(long = "admin-listen", env = "PUSHCORE_ADMIN_LISTEN", value_name = "ADDR", value_parser = cli::parse_listen)]
    pub admin_listen: Option<SocketAddr>,

    /// Reverse proxy whose X-Forwarded-For / Forwarded headers name the client, as an address or
    /// CIDR like 10.0.0.0/8 (repeatable, or comma-separated in the variable).
    #[arg(
        long = "trusted-proxy",
        env = "PUSHCORE_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<Cidr>,

    /// Serve the live operations page at /dashboard and its feed at /dashboard/events (no
    /// authorization, like /metrics: on the admin listener when --admin-listen is set).
    #[arg(long = "dashboard", env = "PUSHCORE_DASHBOARD", value_parser = BoolishValueParser::new())]
    pub dashboard: bool,

    /// Log every publish request (client, status, events, bytes, time) at info level.
    #[arg(long = "access-log", env = "PUSHCORE_ACCESS_LOG", value_parser = BoolishValueParser::new())]
    pub access_log: bool,

    /// Zero-downtime restart on one host: join an address another pushcore serves (instead of
    /// refusing to start), then send the old process SIGTERM so it drains.
    #[arg(long = "handover", env = "PUSHCORE_HANDOVER", value_parser = BoolishValueParser::new())]
    pub handover: bool,

    /// Least severe log level written.
    #[arg(long = "log-level", env = "PUSHCORE_LOG", value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log format: text for a terminal, json (one object per line) for a collector.
    #[arg(long = "log-format", env = "PUSHCORE_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// TOML file whose keys are these long flags (`max-connections = 5000`, repeatable flags as
    /// arrays); flags and environment variables override it. `pushcore config --print-defaults`
    /// prints one.
    #[arg(long = "config", env = "PUSHCORE_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
}

impl Config {
    /// Worker count, resolving the "one per available core" default.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
    pub fn heartbeat(&self) -> Option<Duration> {
        (self.heartbeat_secs > 0).then(|| Duration::from_secs(self.heartbeat_secs))
    }
    pub fn history_age(&self) -> Option<Duration> {
        (self.history_age_secs > 0).then(|| Duration::from_secs(self.history_age_secs))
    }
    /// Whether starting on an address another process serves is intended (`--handover`). Cluster
    /// mode is one too: the server ORs this with it.
    /// May this instance join an address another pushcore serves? With `--handover`, and in
    /// cluster mode (instances share the log, so a client resumes exactly on either).
    pub fn handover_allowed(&self) -> bool {
        self.handover || self.cluster.redis_url.is_some()
    }
    /// Checks between options that one flag's parser cannot make; the error names the flags.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(admin) = self.admin_listen {
            let overlaps = admin.ip() == self.listen.ip()
                || admin.ip().is_unspecified()
                || self.listen.ip().is_unspecified();
            if admin.port() == self.listen.port() && admin.port() != 0 && overlaps {
                return Err(format!(
                    "--admin-listen {admin} overlaps --listen {}: give the admin listener its \
                     own port, like 127.0.0.1:9090",
                    self.listen
                ));
            }
        }
        Ok(())
    }
    /// The `--trusted-proxy` networks.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.clone())
    }
}

impl Default for Config {
    fn default() -> Self {
        use defaults::*;
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            heartbeat_secs: HEARTBEAT_SECS,
            retry_ms: RETRY_MS,
            history_events: HISTORY_EVENTS,
            history_bytes: HISTORY_BYTES,
            history_age_secs: HISTORY_AGE_SECS,
            max_lag_events: MAX_LAG_EVENTS,
            drain_timeout_secs: DRAIN_TIMEOUT_SECS,
            handshake_timeout_secs: HANDSHAKE_TIMEOUT_SECS,
            write_timeout_secs: WRITE_TIMEOUT_SECS,
            keepalive_timeout_secs: KEEPALIVE_TIMEOUT_SECS,
            max_head_bytes: MAX_HEAD_BYTES,
            max_headers: MAX_HEADERS,
            max_body_bytes: MAX_BODY_BYTES,
            max_channels: MAX_CHANNELS,
            sndbuf_bytes: SNDBUF_BYTES,
            cpu_base: CPU_BASE,
            max_stream_lifetime_secs: MAX_STREAM_LIFETIME_SECS,
            gzip: false,
            no_pin: false,
            dashboard: false,
            auth: crate::auth::AuthConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            admin_listen: None,
            trusted_proxies: Vec::new(),

            access_log: false,
            handover: false,
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            config_file: None,
        }
    }
}
