//! Logs an operator can use: with `--log-format json` every line the server writes, on stdout
//! and stderr, is a JSON object with a timestamp and a level; the start line carries the
//! effective configuration (secrets redacted), the worker count, the driver and the open-file
//! limit; the drain is logged; `PUSHCORE_LOG` filters by level; the text format keeps the
//! listening line on stdout.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SECRET: &str = "0123456789abcdef0123456789abcdef-not-to-be-logged";

struct Run {
    stdout: Vec<String>,
    stderr: Vec<String>,
    code: Option<i32>,
}

/// Start `pushcore serve ARGS` with `env`, wait for its first stdout line, run `during` with
/// that line, SIGTERM it and collect everything it wrote.
fn run(driver: Driver, args: &[&str], env: &[(&str, &str)], during: impl FnOnce(&str)) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushcore"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--no-pin",
    ])
    .args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PUSHCORE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    if driver == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    } else {
        cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child: Child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut err = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let out = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (tx, rx) = mpsc::channel();
    let stdout = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    if let Ok(first) = &first {
        during(first);
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stderr = stderr.join().unwrap_or_default();
    let stdout = stdout.join().unwrap_or_default();
    assert!(first.is_ok(), "no stdout line; stderr: {stderr}");
    Run {
        stdout,
        stderr: stderr.lines().map(str::to_owned).collect(),
        code,
    }
}

fn is_rfc3339_utc(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && t.bytes()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 26].contains(&i) || c.is_ascii_digit())
}

fn json_lines(lines: &[String], stream: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{stream} line is not JSON ({e}): {l}"));
            let ts = v["timestamp"].as_str().unwrap_or_default();
            assert!(is_rfc3339_utc(ts), "{stream}: bad timestamp {ts:?}: {l}");
            let level = v["level"].as_str().unwrap_or_default();
            assert!(
                ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
                "{stream}: bad level: {l}"
            );
            assert!(v["message"].is_string(), "{stream}: no message: {l}");
            v
        })
        .collect()
}

fn json_logs(driver: Driver) {
    let mut addr: Option<SocketAddr> = None;
    let run = run(
        driver,
        &[
            "--log-format",
            "json",
            "--cors-origin",
            "https://app.example",
            "--max-connections",
            "1000",
        ],
        &[("PUSHCORE_JWT_SECRET", SECRET)],
        |first| {
            let v: Value = serde_json::from_str(first)
                .unwrap_or_else(|e| panic!("listening line is not JSON ({e}): {first}"));
            let a: SocketAddr = v["addr"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no addr: {first}"));
            assert_eq!(get(a, "/healthz").status, 200);
            addr = Some(a);
        },
    );
    assert_eq!(run.code, Some(0), "stderr: {:?}", run.stderr);
    let out = json_lines(&run.stdout, "stdout");
    let err = json_lines(&run.stderr, "stderr");
    let addr = addr.unwrap_or_else(|| panic!("no address"));

    assert_eq!(out.len(), 1, "{:?}", run.stdout);
    assert_eq!(out[0]["message"], "pushcore listening");
    assert_eq!(out[0]["level"], "INFO");
    assert_eq!(out[0]["url"], format!("http://{addr}"));
    assert_eq!(out[0]["workers"], 1);

    let start = err
        .iter()
        .find(|v| v["message"].as_str().is_some_and(|m| m.contains("started")))
        .unwrap_or_else(|| panic!("no start line: {:?}", run.stderr));
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["workers"], 1);
    assert_eq!(start["addr"], addr.to_string());
    let want_driver = if driver == Driver::Epoll {
        "epoll"
    } else {
        "io_uring"
    };
    assert_eq!(start["driver"], want_driver);
    assert!(start["fd_limit"].as_u64().is_some_and(|n| n > 0), "{start}");
    assert_eq!(start["max_connections"], 1000);
    let config = start["config"].as_str().unwrap_or_default();
    for part in [
        "jwt-secret=[redacted]",
        "cors-origin=https://app.example",
        "log-format=json",
        "max-connections=1000",
        "heartbeat=30",
        "history-events=1000",
    ] {
        assert!(
            config.split(' ').any(|p| p == part),
            "{part} not in {config}"
        );
    }
    let drain = err
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("draining"))
        })
        .unwrap_or_else(|| panic!("no drain line: {:?}", run.stderr));
    assert_eq!(drain["signal"], 15);
    assert!(
        err.iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("drained in"))),
        "no drain summary: {:?}",
        run.stderr
    );
    for line in run.stdout.iter().chain(&run.stderr) {
        assert!(!line.contains(SECRET), "the secret was logged: {line}");
    }
    // Nothing warns on a start that fits the machine.
    assert!(err.iter().all(|v| v["level"] == "INFO"), "{:?}", run.stderr);
}
both_drivers!(json_logs);

/// `PUSHCORE_LOG=warn` hides the info lines; the listening line is still printed.
fn level_filter(driver: Driver) {
    let run = run(
        driver,
        &["--max-connections", "1000"],
        &[("PUSHCORE_LOG", "warn")],
        |_| {},
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    assert!(
        run.stdout[0].starts_with("pushcore listening on http://127.0.0.1:"),
        "{:?}",
        run.stdout
    );
    assert!(
        run.stderr.iter().all(|l| l.trim().is_empty()),
        "info lines at warn level: {:?}",
        run.stderr
    );
}
both_drivers!(level_filter);

/// Text: the classic listening line on stdout; stderr lines start with a timestamp and a level;
/// an explicit --max-connections above the open-file limit warns with the fix.
fn text_logs(driver: Driver) {
    let run = run(driver, &["--max-connections", "100000000"], &[], |first| {
        assert!(
            first.starts_with("pushcore listening on http://127.0.0.1:"),
            "{first}"
        );
        assert!(first.ends_with("(1 workers)"), "{first}");
    });
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    let lines: Vec<&String> = run.stderr.iter().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let (ts, rest) = line.split_once(' ').unwrap_or_default();
        assert!(is_rfc3339_utc(ts), "{line}");
        let level = rest.trim_start().split(' ').next().unwrap_or_default();
        assert!(["INFO", "WARN", "ERROR"].contains(&level), "{line}");
    }
    let warning = lines
        .iter()
        .find(|l| l.contains(" WARN "))
        .unwrap_or_else(|| panic!("no open-file warning: {lines:?}"));
    assert!(warning.contains("ulimit -n 100000128"), "{warning}");
    assert!(warning.contains("LimitNOFILE=100000128"), "{warning}");
}
both_drivers!(text_logs);
