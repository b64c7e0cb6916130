//! EMFILE: with its file table full, the server counts the failed accepts, backs off instead of
//! spinning, keeps serving the connections it has, and recovers once descriptors are free.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(fd_limit: u64, driver_legacy: bool) -> Server {
    let driver = if driver_legacy {
        common::Driver::Epoll
    } else {
        common::Driver::IoUring
    };
    let mut cmd = common::serve_command(
        driver,
        &[
            "--workers",
            "1",
            "--heartbeat",
            "0",
            // Above the limit on purpose (the default would fit the limit and answer 503 first).
            "--max-connections",
            "100000",
        ],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: fd_limit,
                rlim_max: fd_limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read: {e}"));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, addr }
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing from {text}"))
}

fn emfile_backs_off_and_recovers(legacy: bool) {
    let server = start(64, legacy);
    let addr = server.addr.clone();
    // Far more subscribers than descriptors: the kernel completes the TCP handshakes (backlog),
    // the server's accept() runs out of descriptors.
    let mut clients = Vec::new();
    for _ in 0..120 {
        let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect: {e}"));
        write!(
            s,
            "GET /events/stream?channels=e HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .unwrap_or_else(|e| panic!("{e}"));
        clients.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    // While the table is full, the server must not spin: over 1.5 s it uses well under a second.
    let before = cpu_ticks(server.child.id());
    std::thread::sleep(Duration::from_millis(1500));
    let used_ticks = cpu_ticks(server.child.id()) - before;
    assert!(
        used_ticks < 75,
        "server used {used_ticks} ticks (1/100 s) of CPU in 1.5 s while at EMFILE"
    );
    // The subscribers it did accept are served.
    let mut first = clients.remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut head = [0u8; 15];
    first
        .read_exact(&mut head)
        .unwrap_or_else(|e| panic!("accepted subscriber got nothing: {e}"));
    assert_eq!(&head, b"HTTP/1.1 200 OK");
    drop(first);
    drop(clients);
    // Once descriptors are free again it recovers and has counted the failures.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = get(&addr, "/healthz");
        if health.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not recover: {health:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = get(&addr, "/metrics");
    assert!(
        metric(&metrics, "pushcore_accept_errors_total ") > 0,
        "{metrics}"
    );
}

#[test]
fn emfile_backs_off_and_recovers_uring() {
    emfile_backs_off_and_recovers(false);
}

#[test]
fn emfile_backs_off_and_recovers_epoll() {
    emfile_backs_off_and_recovers(true);
}
