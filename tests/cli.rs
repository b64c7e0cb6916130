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
        (&["serve"], &[("PUSHCORE_WORKERS", "many")], "--workers"),
        (&["serve"], &[("PUSHCORE_HEARTBEAT", "-3")], "--heartbeat"),
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
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["serve", "--help"],
        &["bench", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pushcore"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}
