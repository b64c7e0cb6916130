//! The command line: bad flags and values give one line naming the flag, and exit code 2.

use std::process::Command;

fn pushcore(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushcore"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run pushcore: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_and_values_name_the_flag_and_exit_2() {
    type Row<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let rows: &[Row] = &[
        (&["serve", "--workers", "0"], &[], "--workers"),
        (&["serve", "--workers", "abc"], &[], "--workers"),
        (&["serve", "--heartbeat", "-1"], &[], "--heartbeat"),
        (&["serve", "--listen", "nope"], &[], "--listen"),
        (&["serve", "--listen", "127.0.0.1:99999"], &[], "--listen"),
        (&["serve", "--max-lag", "0"], &[], "--max-lag"),
        (
            &["serve", "--max-connections", "0"],
            &[],
            "--max-connections",
        ),
        (&["serve", "--retry", "1e3"], &[], "--retry"),
        (
            &["serve", "--history-events", "-5"],
            &[],
            "--history-events",
        ),
        (
            &["serve", "--max-head-bytes", "10"],
            &[],
            "--max-head-bytes",
        ),
        (&["serve", "--max-body-bytes", "0"], &[], "--max-body-bytes"),
        (&["serve", "--drain-timeout", "x"], &[], "--drain-timeout"),
        (&["serve", "--bogus"], &[], "--bogus"),
        (&["serve", "--listen", "localhost"], &[], "--listen"),
        (&["serve", "--listen", "example.com:80"], &[], "--listen"),
        (&["serve", "--listen", "::1:8080"], &[], "--listen"),
        (&["serve", "--admin-listen", "nope"], &[], "--admin-listen"),
        (
            &["serve", "--admin-listen", "127.0.0.1"],
            &[],
            "--admin-listen",
        ),
        (
            &["serve", "--trusted-proxy", "10.0.0.1/8"],
            &[],
            "--trusted-proxy",
        ),
        (
            &["serve", "--trusted-proxy", "10.0.0.0/33"],
            &[],
            "--trusted-proxy",
        ),
        (
            &["serve", "--trusted-proxy", "proxy.local"],
            &[],
            "--trusted-proxy",
        ),
        (&["serve", "--trusted-proxy", ""], &[], "--trusted-proxy"),
        (
            &["serve", "--admin-listen", "127.0.0.1:8080"],
            &[],
            "--admin-listen",
        ),
        (
            &[
                "serve",
                "--listen",
                "0.0.0.0:9",
                "--admin-listen",
                "127.0.0.1:9",
            ],
            &[],
            "--admin-listen",
        ),
        (&["serve", "--log-level", "loud"], &[], "--log-level"),
        (&["serve", "--log-format", "xml"], &[], "--log-format"),
        (&["serve", "--handover", "yes"], &[], "yes"),
        (&["serve", "--access-log=maybe"], &[], "--access-log"),
        (
            &["serve", "--config", "/nonexistent/pushcore.toml"],
            &[],
            "/nonexistent/pushcore.toml",
        ),
        (&["config"], &[], "--print-defaults"),
        // A bad environment variable is named as such.
        (
            &["serve"],
            &[("PUSHCORE_WORKERS", "many")],
            "PUSHCORE_WORKERS",
        ),
        (
            &["serve"],
            &[("PUSHCORE_HEARTBEAT", "-3")],
            "PUSHCORE_HEARTBEAT",
        ),
        (
            &["serve"],
            &[("PUSHCORE_LISTEN", "nope")],
            "PUSHCORE_LISTEN",
        ),
        (&["serve"], &[("PUSHCORE_LOG", "loud")], "PUSHCORE_LOG"),
        (
            &["serve"],
            &[("PUSHCORE_LOG_FORMAT", "xml")],
            "PUSHCORE_LOG_FORMAT",
        ),
        (
            &["serve"],
            &[("PUSHCORE_TRUSTED_PROXY", "10.0.0.0/8,x")],
            "PUSHCORE_TRUSTED_PROXY",
        ),
        (
            &["serve"],
            &[("PUSHCORE_ADMIN_LISTEN", "x")],
            "PUSHCORE_ADMIN_LISTEN",
        ),
        (
            &["serve"],
            &[("PUSHCORE_HANDOVER", "maybe")],
            "PUSHCORE_HANDOVER",
        ),
        (
            &["serve"],
            &[("PUSHCORE_CONFIG", "/nonexistent/p.toml")],
            "/nonexistent/p.toml",
        ),
        // The flag wins over the variable, so its value is the one named.
        (
            &["serve", "--workers", "x"],
            &[("PUSHCORE_WORKERS", "2")],
            "--workers",
        ),
        (&["bench", "fanout", "--conns", "x"], &[], "--conns"),
    ];
    for (args, env, flag) in rows {
        let (code, stderr) = pushcore(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr:?}");
        assert!(
            lines[0].contains(flag),
            "{args:?}: {stderr:?} does not name {flag}"
        );
        assert!(lines[0].starts_with("pushcore: "), "{args:?}: {stderr:?}");
    }
}

/// A bad address shows what an address looks like.
#[test]
fn listen_errors_show_examples() {
    for value in ["localhost", "nope", "8080", "example.com:80"] {
        let (code, stderr) = pushcore(&["serve", "--listen", value], &[]);
        assert_eq!(code, Some(2), "{value}: {stderr}");
        for example in ["127.0.0.1:8080", "[::]:8080", "localhost:8080"] {
            assert!(
                stderr.contains(example),
                "{value}: {stderr:?} lacks {example}"
            );
        }
    }
    let (_, stderr) = pushcore(&["serve", "--listen", "::1:8080"], &[]);
    assert!(stderr.contains("[::1]:8080"), "{stderr:?}");
}

/// An environment variable's bad value is reported with the variable's name, not the flag's.
#[test]
fn env_errors_name_the_variable() {
    let (code, stderr) = pushcore(&["serve"], &[("PUSHCORE_MAX_CONNECTIONS", "0")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("pushcore: environment variable PUSHCORE_MAX_CONNECTIONS: "),
        "{stderr:?}"
    );
}

#[test]
fn print_defaults_exits_0_with_a_toml_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_pushcore"))
        .args(["config", "--print-defaults"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "listen = \"127.0.0.1:8080\"",
        "heartbeat = 30",
        "trusted-proxy = []",
        "no-pin = false",
        "log-level = \"info\"",
        "# workers = <WORKERS>",
        "# jwt-secret = <SECRET>",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["serve", "--help"],
        &["bench", "--help"],
        &["config", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pushcore"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}
