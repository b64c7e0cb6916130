//! `pushcore serve --config FILE`: keys are the long flags, flags override the file, unknown
//! keys and bad values are errors naming the key and the file, and the file printed by
//! `pushcore config --print-defaults` loads as the defaults.
//!
//! No test here sets environment variables (tests in one binary share them): the precedence of
//! variables over the file is tested alone in `tests/config_env.rs`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use pushcore::config::cli::{parse_serve, CliError};
use pushcore::config::{Config, LogFormat, LogLevel};

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "pushcore-config-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0
            .to_str()
            .unwrap_or_else(|| panic!("non-UTF-8 temp path"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn argv(args: &[&str]) -> Vec<OsString> {
    std::iter::once("serve")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

fn parse(args: &[&str]) -> Result<Config, CliError> {
    parse_serve(&argv(args))
}

fn file_error(args: &[&str]) -> String {
    match parse(args) {
        Err(CliError::File(message)) => message,
        Err(CliError::Clap(e)) => panic!("{args:?}: a flag error, not a file error: {e}"),
        Ok(c) => panic!("{args:?}: accepted: {c:?}"),
    }
}

#[test]
fn file_values_apply_and_flags_override_them() {
    let file = TempFile::new(
        r#"
# a comment
listen = "localhost:9000"
max-connections = 5000
heartbeat = 7
cors-origin = ["https://a.example", "https://b.example"]
trusted-proxy = ["10.0.0.0/8", "::1"]
no-pin = true
access-log = true
log-level = "warn"
log-format = "json"
admin-listen = "127.0.0.1:9100"
"#,
    );
    let c = parse(&[
        "--config",
        file.path(),
        "--heartbeat",
        "9",
        "--log-format",
        "text",
    ])
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.max_connections, 5000);
    assert_eq!(c.heartbeat_secs, 9, "the flag wins over the file");
    assert_eq!(c.log_format, LogFormat::Text, "the flag wins over the file");
    assert_eq!(c.log_level, LogLevel::Warn);
    assert_eq!(
        c.auth.cors_origins,
        ["https://a.example", "https://b.example"]
    );
    let proxies: Vec<String> = c.trusted_proxies.iter().map(|p| p.to_string()).collect();
    assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
    assert!(c.no_pin);
    assert!(c.access_log);
    assert!(!c.handover);
    assert_eq!(
        c.admin_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9100")
    );
    // Untouched keys keep their defaults.
    let defaults = parse(&[]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.retry_ms, defaults.retry_ms);
    assert_eq!(c.history_events, defaults.history_events);

    // A repeatable flag on the command line replaces the file's list, it does not add to it.
    let c = parse(&[
        "--config",
        file.path(),
        "--cors-origin",
        "https://c.example",
    ])
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.auth.cors_origins, ["https://c.example"]);
    // `false` in the file leaves a switch off; a single value may stand for a one-item list.
    let file = TempFile::new("no-pin = false\ntrusted-proxy = \"127.0.0.1\"\n");
    let c = parse(&["--config", file.path()]).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!c.no_pin);
    assert_eq!(c.trusted_proxies.len(), 1);
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    for (text, key) in [
        ("max-conections = 5\n", "max-conections"),
        ("max_connections = 5\n", "max_connections"),
        ("[serve]\nlisten = \"127.0.0.1:1\"\n", "serve"),
        ("help = true\n", "help"),
        ("version = true\n", "version"),
        ("config = \"other.toml\"\n", "config"),
    ] {
        let file = TempFile::new(text);
        let message = file_error(&["--config", file.path()]);
        assert!(message.contains(file.path()), "{text:?}: {message}");
        assert!(message.contains(&format!("`{key}`")), "{text:?}: {message}");
    }
}

#[test]
fn bad_values_name_the_key_and_the_file() {
    for (text, key) in [
        ("max-connections = 0\n", "max-connections"),
        ("max-connections = \"many\"\n", "max-connections"),
        ("max-connections = -5\n", "max-connections"),
        ("heartbeat = 1.5\n", "heartbeat"),
        ("heartbeat = [1, 2]\n", "heartbeat"),
        ("workers = 0\n", "workers"),
        ("listen = \"nope\"\n", "listen"),
        ("listen = 8080\n", "listen"),
        ("trusted-proxy = [\"10.0.0.1/8\"]\n", "trusted-proxy"),
        ("trusted-proxy = [1]\n", "trusted-proxy"),
        ("trusted-proxy = [[\"10.0.0.0/8\"]]\n", "trusted-proxy"),
        ("cors-origin = { a = 1 }\n", "cors-origin"),
        ("no-pin = \"yes\"\n", "no-pin"),
        ("no-pin = 1\n", "no-pin"),
        ("log-level = \"loud\"\n", "log-level"),
        ("log-format = \"xml\"\n", "log-format"),
        ("history-age = 1979-05-27T07:32:00Z\n", "history-age"),
    ] {
        let file = TempFile::new(text);
        let message = file_error(&["--config", file.path()]);
        assert!(message.contains(file.path()), "{text:?}: {message}");
        assert!(message.contains(&format!("`{key}`")), "{text:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{text:?}: {message}");
    }
    // A bad value is an error even when a flag overrides it: the file is wrong either way.
    let file = TempFile::new("heartbeat = -1\n");
    let message = file_error(&["--config", file.path(), "--heartbeat", "5"]);
    assert!(message.contains("`heartbeat`"), "{message}");
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let file = TempFile::new("heartbeat = 5\nlisten = \"127.0.0.1:1\nretry = 3\n");
    let message = file_error(&["--config", file.path()]);
    assert!(
        message.starts_with(&format!("{}:2: ", file.path())),
        "{message}"
    );
    let file = TempFile::new("heartbeat = 5\nheartbeat = 6\n");
    let message = file_error(&["--config", file.path()]);
    assert!(message.contains(file.path()), "{message}");
    let missing = format!("{}.missing", file.path());
    let message = file_error(&["--config", &missing]);
    assert!(message.contains(&missing), "{message}");
}

/// The file `pushcore config --print-defaults` prints loads as exactly the defaults.
#[test]
fn printed_defaults_round_trip() {
    let out = Command::new(env!("CARGO_BIN_EXE_pushcore"))
        .args(["config", "--print-defaults"])
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Complete: every option with a fixed default is a key, every other one a comment.
    let serve = pushcore::config::cli::serve_command();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "config" {
            continue;
        }
        let listed = table.contains_key(long)
            || text.lines().any(|l| l.starts_with(&format!("# {long} = ")));
        assert!(listed, "--{long} missing from:\n{text}");
    }
    let file = TempFile::new(&text);
    let mut loaded = parse(&["--config", file.path()]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(loaded.config_file.as_deref(), Some(file.0.as_path()));
    loaded.config_file = None;
    let defaults = parse(&[]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(loaded, defaults);
}
