//! One owner per address: a second `pushcore serve` on an address a running pushcore serves
//! refuses to start (naming the address and the first one's PID) instead of silently
//! splitting the clients with it; with `--handover` it joins, and the old one drains.

#[macro_use]
mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port nobody listens on right now.
fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    probe.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

/// Run `pushcore serve ARGS` until it exits (killed by its pid after 10 s if it does not):
/// its exit code (`None` if it had to be killed) and stderr.
fn serve_until_exit(driver: Driver, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushcore"));
    cmd.arg("serve").args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PUSHCORE_") {
            cmd.env_remove(key);
        }
    }
    if driver == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    } else {
        cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    (status.and_then(|s| s.code()), stderr)
}

/// Listening sockets on `addr`, by `/proc/net/tcp`.
fn listeners_on(addr: SocketAddr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    pushcore::ops::owner::listening_inodes(&table, addr).len()
}

fn second_instance_is_refused(driver: Driver) {
    let addr = free_addr();
    let listen = addr.to_string();
    let first = Server::start_with_driver(driver, &["--listen", &listen]);
    assert_eq!(first.addr(), addr);

    let (code, stderr) = serve_until_exit(
        driver,
        &[
            "--listen",
            &listen,
            "--workers",
            "1",
            "--no-pin",
            "--max-connections",
            "1000",
        ],
    );
    assert_eq!(
        code,
        Some(1),
        "the second instance did not refuse: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr:?}");
    assert!(
        lines[0].contains(&listen),
        "{stderr:?} does not name {listen}"
    );
    let pid = format!("PID {}", first.pid());
    assert!(lines[0].contains(&pid), "{stderr:?} does not name {pid}");
    assert!(
        lines[0].contains("--handover"),
        "{stderr:?} does not say how to hand over"
    );

    // The same holds for the wildcard address covering it, and the first one is untouched.
    let wildcard = format!("0.0.0.0:{}", addr.port());
    let (code, stderr) = serve_until_exit(
        driver,
        &["--listen", &wildcard, "--workers", "1", "--no-pin"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&pid), "{stderr:?}");
    assert_eq!(get(addr, "/healthz").status, 200);
}
both_drivers!(second_instance_is_refused);

fn handover_joins_and_the_old_one_drains(driver: Driver) {
    let addr = free_addr();
    let listen = addr.to_string();
    let mut old = Server::start_with_driver(driver, &["--listen", &listen]);
    // Bound at once; serving once the old process has exited.
    let mut new = Server::start_bound(driver, &["--listen", &listen, "--handover"]);
    assert_eq!(new.addr(), addr);
    let said = wait_until(IO_TIMEOUT, || {
        let err = new.stderr();
        err.contains("hand-over") && err.contains(&format!("PID {}", old.pid()))
    });
    assert!(
        said,
        "no hand-over line naming the old pid: {}",
        new.stderr()
    );

    old.stop();
    let status = old.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "old process: {status:?}"
    );
    // After the old process exits, the kernel tears its io_uring rings down asynchronously: a
    // listener with an accept still queued in a ring outlives the process by some
    // milliseconds, and a connection the kernel routes to it is reset. Wait until only the new
    // process's listeners are left (see the hand-over notes in the report to the lead).
    let only_new = wait_until(IO_TIMEOUT, || listeners_on(addr) == new.workers());
    assert!(only_new, "{} listeners left on {addr}", listeners_on(addr));
    new.check_driver();
    // Every new connection now reaches the new process.
    for _ in 0..20 {
        assert_eq!(get(addr, "/healthz").status, 200);
    }
    new.stop();
    let status = new.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "new process: {status:?}"
    );
}
both_drivers!(handover_joins_and_the_old_one_drains);

/// The admin address is checked too: one held by another process (here, this test) is refused.
fn admin_address_in_use_is_refused(driver: Driver) {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let admin = holder
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let (code, stderr) = serve_until_exit(
        driver,
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            &admin,
            "--workers",
            "1",
            "--no-pin",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&admin), "{stderr:?}");
    let pid = format!("PID {}", std::process::id());
    assert!(stderr.contains(&pid), "{stderr:?} does not name {pid}");
}
both_drivers!(admin_address_in_use_is_refused);
