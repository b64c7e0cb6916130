//! Logs: `tracing` events formatted as text or JSON lines, written by a dedicated thread.
//!
//! A worker that logs formats its line and pushes it onto a bounded queue
//! (`tracing-appender`, lossy): it never waits for stderr. When the queue is full the line is
//! dropped and counted ([`dropped_lines`], exported as `pushcore_log_lines_dropped_total`).
//!
//! Timestamps are RFC 3339 UTC with microseconds. In JSON each line is one object:
//! `{"timestamp":"…","level":"INFO","message":"…",<fields>…,"target":"pushcore::…"}`.

use std::fmt;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use crate::config::{LogFormat, LogLevel};

/// Lines the log queue holds before it drops new ones.
pub const QUEUE_LINES: usize = 16_384;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();
static JSON: AtomicBool = AtomicBool::new(false);

/// Keeps the log thread alive; dropping it flushes what is queued.
#[derive(Debug)]
pub struct Logging {
    _guard: WorkerGuard,
}

/// Install the process-wide logger: `level` and above, in `format`, to stderr through the
/// non-blocking queue; publish access lines (target [`super::access::TARGET`]) when
/// `access_log`. Call once, after termination signals are blocked (the log thread inherits
/// the mask).
pub fn init(level: LogLevel, format: LogFormat, access_log: bool) -> Result<Logging, String> {
    init_with_writer(std::io::stderr(), level, format, access_log)
}

/// [`init`] with another destination than stderr (tests use a stalled one).
pub fn init_with_writer<W>(
    destination: W,
    level: LogLevel,
    format: LogFormat,
    access_log: bool,
) -> Result<Logging, String>
where
    W: std::io::Write + Send + 'static,
{
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("pushcore-log")
        .finish(destination);
    let _ = DROPPED.set(writer.error_counter());
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    super::access::enable(access_log);
    let access_level = if access_log {
        LevelFilter::INFO
    } else {
        LevelFilter::OFF
    };
    let targets = Targets::new()
        .with_default(level_filter(level))
        .with_target(super::access::TARGET, access_level);
    let installed = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_timer(Rfc3339)
                    .with_writer(writer)
                    .with_filter(targets),
            )
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_timer(Rfc3339)
                    .with_writer(writer)
                    .with_filter(targets),
            )
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(Logging { _guard: guard })
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Log lines dropped because the queue was full (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}

/// The logging series of `/metrics`, in Prometheus text.
pub fn render_metrics(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP pushcore_log_lines_dropped_total Log lines dropped because the log queue was full.\n\
         # TYPE pushcore_log_lines_dropped_total counter\n\
         pushcore_log_lines_dropped_total {}",
        dropped_lines()
    );
}

/// The line that tells a supervisor (and the tests) where the server listens, for stdout.
/// Text: `pushcore listening on http://ADDR (N workers)`. JSON: an object with
/// `"message":"pushcore listening"`, `"url":"http://ADDR"`, `"addr":"ADDR"`, `"workers":N`.
pub fn listening_line(format: LogFormat, addr: SocketAddr, workers: usize) -> String {
    match format {
        LogFormat::Text => format!("pushcore listening on http://{addr} ({workers} workers)"),
        LogFormat::Json => json_line(
            "INFO",
            "pushcore listening",
            &[
                ("url", serde_json::json!(format!("http://{addr}"))),
                ("addr", serde_json::json!(addr.to_string())),
                ("workers", serde_json::json!(workers)),
            ],
        ),
    }
}

/// Print the listening line on stdout and flush it.
pub fn print_listening(format: LogFormat, addr: SocketAddr, workers: usize) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", listening_line(format, addr, workers));
    let _ = out.flush();
}

/// An error written synchronously to stderr, for failures before or instead of the logger:
/// `pushcore: MESSAGE` in text, a JSON object in JSON.
pub fn fatal(format: LogFormat, message: &str) {
    let line = match format {
        LogFormat::Text => format!("pushcore: {message}"),
        LogFormat::Json => json_line("ERROR", message, &[]),
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether the logger writes JSON (for code that prints a line of its own).
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One JSON log object in the logger's shape, stamped now.
pub fn json_line(level: &str, message: &str, fields: &[(&str, serde_json::Value)]) -> String {
    let mut line = format!(
        "{{\"timestamp\":\"{}\",\"level\":{},\"message\":{}",
        timestamp(SystemTime::now()),
        serde_json::Value::from(level),
        serde_json::Value::from(message),
    );
    for (key, value) in fields {
        line.push(',');
        line.push_str(&serde_json::Value::from(*key).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push_str(",\"target\":\"pushcore\"}");
    line
}

/// The logger's clock: RFC 3339 in UTC with microseconds, `2026-12-02T14:20:45.123456Z`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rfc3339;

impl FormatTime for Rfc3339 {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str(&timestamp(SystemTime::now()))
    }
}

/// `t` as RFC 3339 UTC with microseconds.
pub fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, micros: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(at(1_700_000_000, 123_456), "2023-11-14T22:13:20.123456Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }

    #[test]
    fn listening_lines() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            listening_line(LogFormat::Text, addr, 2),
            "pushcore listening on http://127.0.0.1:8080 (2 workers)"
        );
        let json: serde_json::Value =
            serde_json::from_str(&listening_line(LogFormat::Json, addr, 2))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["message"], "pushcore listening");
        assert_eq!(json["url"], "http://127.0.0.1:8080");
        assert_eq!(json["addr"], "127.0.0.1:8080");
        assert_eq!(json["workers"], 2);
        assert_eq!(json["level"], "INFO");
        assert!(json["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn json_lines_escape_messages() {
        let line = json_line(
            "ERROR",
            "a \"quoted\"\nline",
            &[("n", serde_json::json!(3))],
        );
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(json["message"], "a \"quoted\"\nline");
        assert_eq!(json["n"], 3);
    }
}
