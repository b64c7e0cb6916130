//! Precedence with environment variables: flags > environment > config file > defaults.
//! Alone in its binary: tests in one binary share the process environment.

use std::ffi::OsString;

use pushcore::config::cli::parse_serve;

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let path =
        std::env::temp_dir().join(format!("pushcore-config-env-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "heartbeat = 7\nretry = 1000\nmax-lag = 50\ncors-origin = [\"https://file.example\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let vars = [
        ("PUSHCORE_HEARTBEAT", "11"),
        ("PUSHCORE_RETRY", "2000"),
        ("PUSHCORE_CORS_ORIGIN", "https://env.example"),
        ("PUSHCORE_CONFIG", path.to_str().unwrap_or_default()),
    ];
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let argv: Vec<OsString> = ["serve", "--retry", "3000"]
        .iter()
        .map(OsString::from)
        .collect();
    let parsed = parse_serve(&argv);
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    let _ = std::fs::remove_file(&path);
    let c = parsed.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.heartbeat_secs, 11, "environment over file");
    assert_eq!(c.retry_ms, 3000, "flag over environment and file");
    assert_eq!(c.max_lag_events, 50, "file over default");
    assert_eq!(
        c.auth.cors_origins,
        ["https://env.example"],
        "environment over file, lists too"
    );
    assert_eq!(
        c.config_file.as_deref(),
        Some(path.as_path()),
        "--config from PUSHCORE_CONFIG"
    );
}
