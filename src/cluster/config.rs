//! The cluster options of `pushcore serve`: where the shared log lives and how long to wait
//! for it. Without `--redis-url` the server runs alone, exactly as before.

use std::fmt;
use std::time::Duration;

use clap::Args;

/// Defaults, one per option.
pub mod defaults {
    /// The stream key of the log.
    pub const STREAM: &str = "pushcore:events";
    /// Entries the log keeps (approximately; `XADD … MAXLEN ~`). The log is shared by every
    /// channel, so it should hold at least what all channels' `--history-*` retain together:
    /// 100,000 entries is 100 busy channels × the default 1,000 events of history, about
    /// 20–30 MB in Redis for 200-byte events, and a backfill of it takes well under a second.
    pub const MAXLEN: u64 = 100_000;
    /// Seconds start-up waits for Redis before giving up.
    pub const STARTUP_WAIT_SECS: u64 = 10;
    /// Milliseconds one Redis operation (a publish's round trip) may take before it fails.
    pub const TIMEOUT_MS: u64 = 2_000;
}

/// Cluster mode (Redis Streams), flattened into `pushcore serve`.
#[derive(Args, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Redis holding the shared event log, `redis://[user:pass@]host:port[/db]`; turns on
    /// cluster mode. Prefer the environment variable when it carries a password.
    #[arg(
        long = "redis-url",
        env = "PUSHCORE_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,

    /// Stream key of the event log (one entry per event, shared by every instance).
    #[arg(long = "redis-stream", env = "PUSHCORE_REDIS_STREAM", value_name = "KEY",
          default_value = defaults::STREAM)]
    pub redis_stream: String,

    /// Entries the log keeps (approximate trim); keep it at least as large as what all
    /// channels' history retains together, so resumes older than local history still succeed.
    #[arg(long = "redis-maxlen", env = "PUSHCORE_REDIS_MAXLEN", value_name = "N",
          default_value_t = defaults::MAXLEN, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub redis_maxlen: u64,

    /// Seconds start-up waits for Redis to answer before exiting with an error.
    #[arg(long = "redis-startup-wait", env = "PUSHCORE_REDIS_STARTUP_WAIT", value_name = "SECS",
          default_value_t = defaults::STARTUP_WAIT_SECS, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub redis_startup_wait_secs: u64,

    /// Milliseconds a Redis operation may take (connect, publish round trip); past it a
    /// publish gets 503 and the connection is re-made.
    #[arg(long = "redis-timeout", env = "PUSHCORE_REDIS_TIMEOUT", value_name = "MS",
          default_value_t = defaults::TIMEOUT_MS, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub redis_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            redis_stream: defaults::STREAM.to_owned(),
            redis_maxlen: defaults::MAXLEN,
            redis_startup_wait_secs: defaults::STARTUP_WAIT_SECS,
            redis_timeout_ms: defaults::TIMEOUT_MS,
        }
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redact))
            .field("redis_stream", &self.redis_stream)
            .field("redis_maxlen", &self.redis_maxlen)
            .field("redis_startup_wait_secs", &self.redis_startup_wait_secs)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .finish()
    }
}

/// Longest `--redis-stream` key, in bytes.
pub const MAX_STREAM_KEY_BYTES: usize = 256;

/// Validated cluster settings: what [`crate::cluster::Cluster::start`] needs.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub url: String,
    pub stream: String,
    pub maxlen: u64,
    pub startup_wait: Duration,
    pub timeout: Duration,
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("url", &redact(&self.url))
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .field("startup_wait", &self.startup_wait)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ClusterConfig {
    /// `None` without `--redis-url` (single-node mode); the settings, or a one-line error
    /// naming the flag.
    pub fn validate(&self) -> Result<Option<ClusterSettings>, String> {
        let Some(url) = self.redis_url.as_deref() else {
            return Ok(None);
        };
        check_url(url).map_err(|why| format!("--redis-url {}: {why}", redact(url)))?;
        check_stream_key(&self.redis_stream)
            .map_err(|why| format!("--redis-stream {:?}: {why}", self.redis_stream))?;
        Ok(Some(ClusterSettings {
            url: url.to_owned(),
            stream: self.redis_stream.clone(),
            maxlen: self.redis_maxlen,
            startup_wait: Duration::from_secs(self.redis_startup_wait_secs),
            timeout: Duration::from_millis(self.redis_timeout_ms),
        }))
    }
}

/// `redis://[user:pass@]host:port[/db]`, checked by shape first (for a message that says
/// what is wrong), then by the client library.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("redis://") else {
        return Err(if url.starts_with("rediss://") {
            "TLS (rediss://) is not supported; use redis:// (terminate TLS in a local proxy)".into()
        } else {
            "must start with redis:// (redis://[user:pass@]host:port[/db])".into()
        });
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let host_port = match authority.rsplit_once('@') {
        Some((_, hp)) => hp,
        None => authority,
    };
    if host_port.is_empty() {
        return Err("no host (redis://host:port)".into());
    }
    let port = match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => port,
        Some(_) => return Err("no host (redis://host:port)".into()),
        None => return Err("no port (redis://host:port; Redis' default is 6379)".into()),
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("port {port:?} is not 1-65535"));
    }
    if let Some(db) = path {
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(format!("database {db:?} is not a number"));
        }
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| first_line(&e.to_string()))
}

/// A stream key: 1–256 bytes of printable ASCII without spaces.
pub fn check_stream_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("is empty".into());
    }
    if key.len() > MAX_STREAM_KEY_BYTES {
        return Err(format!("is longer than {MAX_STREAM_KEY_BYTES} bytes"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may only contain printable ASCII without spaces".into());
    }
    Ok(())
}

/// The URL with its password replaced by `***`, for messages and `Debug`.
pub fn redact(url: &str) -> String {
    let Some(rest) = url.strip_prefix("redis://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("redis://{user}:***@{host}{path}")
            } else {
                format!("redis://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> ClusterConfig {
        ClusterConfig {
            redis_url: Some(url.to_owned()),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn no_url_is_single_node() {
        assert_eq!(ClusterConfig::default().validate(), Ok(None));
    }

    #[test]
    fn good_urls() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1:6379/",
            "redis://localhost:7000/3",
            "redis://user:secret@10.0.0.1:6379/0",
            "redis://:secret@10.0.0.1:6379",
        ] {
            let got = with_url(url).validate();
            assert!(matches!(got, Ok(Some(_))), "{url}: {got:?}");
        }
    }

    #[test]
    fn bad_urls_name_the_flag_on_one_line() {
        for (url, part) in [
            ("", "must start with redis://"),
            ("127.0.0.1:6379", "must start with redis://"),
            ("http://127.0.0.1:6379", "must start with redis://"),
            ("rediss://127.0.0.1:6379", "TLS"),
            ("redis://", "no host"),
            ("redis://:6379", "no host"),
            ("redis://127.0.0.1", "no port"),
            ("redis://127.0.0.1:0", "not 1-65535"),
            ("redis://127.0.0.1:70000", "not 1-65535"),
            ("redis://127.0.0.1:x", "not 1-65535"),
            ("redis://127.0.0.1:6379/x", "not a number"),
            ("redis://u:pw@127.0.0.1:6379/db", "not a number"),
        ] {
            let err = with_url(url).validate().err().unwrap_or_default();
            assert!(err.starts_with("--redis-url"), "{url}: {err}");
            assert!(err.contains(part), "{url}: {err}");
            assert!(!err.contains('\n'), "{url}: {err}");
            assert!(!err.contains("pw@"), "password shown: {err}");
        }
    }

    #[test]
    fn bad_stream_keys() {
        for key in ["", "has space", "tab\tkey", "ünïcode", &"k".repeat(257)] {
            let config = ClusterConfig {
                redis_stream: key.to_owned(),
                ..with_url("redis://127.0.0.1:6379")
            };
            let err = config.validate().err().unwrap_or_default();
            assert!(err.starts_with("--redis-stream"), "{key:?}: {err}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://u:pw@h:1/2"),
            "redis://u:***@h:1/2".to_owned()
        );
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1".to_owned());
        assert_eq!(redact("redis://u@h:1"), "redis://u@h:1".to_owned());
        assert_eq!(redact("redis://h:1"), "redis://h:1".to_owned());
        let shown = format!("{:?}", with_url("redis://u:pw@h:1"));
        assert!(!shown.contains("pw"), "{shown}");
    }
}
