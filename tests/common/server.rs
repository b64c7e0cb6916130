//! The server process: start `pushcore serve` on a driver, watch its output, stop it.
#![allow(dead_code)]

use super::*;

/// The monoio driver the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    /// The epoll fallback (`MONOIO_FORCE_LEGACY_DRIVER=1`).
    Epoll,
}

/// A running `pushcore serve` child process; killed (by its pid, only this child) on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    workers: usize,
    driver: Driver,
    stderr: Arc<Mutex<String>>,
    exit: Option<ExitStatus>,
}

/// The one launcher: `pushcore serve` with `args` plus, unless given, `--listen 127.0.0.1:0`,
/// `--workers 2` and `--max-connections 10000`; always `--no-pin`; no `PUSHCORE_*` variables
/// from the test's environment; the driver chosen by `MONOIO_FORCE_LEGACY_DRIVER`. The caller
/// sets up stdio (and anything else) and spawns it.
pub fn serve_command(driver: Driver, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushcore"));
    cmd.arg("serve");
    let given = |flag: &str| {
        args.iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
    };
    if !given("--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    if !given("--workers") {
        cmd.args(["--workers", "2"]);
    }
    if !given("--max-connections") {
        // Below the machine's open-file limit, so the server has nothing to warn about.
        cmd.args(["--max-connections", "10000"]);
    }
    if !given("--no-pin") {
        cmd.arg("--no-pin");
    }
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PUSHCORE_") {
            cmd.env_remove(key);
        }
    }
    match driver {
        Driver::IoUring => cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER"),
        Driver::Epoll => cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1"),
    };
    cmd
}

impl Server {
    /// Start on the io_uring driver.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_driver(Driver::IoUring, args)
    }

    /// Start `pushcore serve` with `args` plus, unless given, `--listen 127.0.0.1:0`,
    /// `--workers 2` and `--max-connections 10000`; always `--no-pin`. Returns once the server
    /// printed its listening line (at most 10 s).
    pub fn start_with_driver(driver: Driver, args: &[&str]) -> Server {
        let server = Server::start_bound(driver, args);
        server.check_driver();
        server
    }

    /// Start, returning once the listening line is printed (the address is bound), without
    /// checking that it serves: a `--handover` server serves only after its predecessor exits
    /// (call [`Server::check_driver`] then).
    pub fn start_bound(driver: Driver, args: &[&str]) -> Server {
        let mut cmd = serve_command(driver, args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pushcore");

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("[pushcore stderr] {line}");
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[pushcore stdout] {line}");
                let _ = tx.send(line);
            }
        });
        let line = loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.starts_with("pushcore listening on ") => break line,
                Ok(_) => continue,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("pushcore did not print its listening line within 10 s ({e}); args {args:?}");
                }
            }
        };
        let (addr, workers) = parse_listening_line(&line);
        Server {
            child,
            addr,
            workers,
            driver,
            stderr,
            exit: None,
        }
    }

    /// Fail unless the process really runs on the requested driver: with io_uring every worker
    /// owns a ring (an `anon_inode:[io_uring]` fd), with epoll none does.
    pub fn check_driver(&self) {
        match self.driver {
            Driver::IoUring => {
                let ok = wait_until(IO_TIMEOUT, || io_uring_fds(self.pid()) >= self.workers);
                assert!(
                    ok,
                    "io_uring driver not in use: {} rings for {} workers (is io_uring allowed here?)",
                    io_uring_fds(self.pid()),
                    self.workers
                );
            }
            Driver::Epoll => {
                // A served request proves at least one worker has built its runtime (with
                // `--admin-listen`, the public port answers /healthz with 404).
                let status = get(self.addr, "/healthz").status;
                assert!(
                    matches!(status, 200 | 404 | 503),
                    "/healthz answered {status}"
                );
                assert_eq!(
                    io_uring_fds(self.pid()),
                    0,
                    "MONOIO_FORCE_LEGACY_DRIVER=1 but io_uring rings are open"
                );
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Send SIGTERM (start the drain).
    pub fn stop(&self) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some(status);
                    return self.exit;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// The server's `/metrics`, summed over workers.
    pub fn metrics(&self) -> Metrics {
        metrics(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_listening_line(line: &str) -> (SocketAddr, usize) {
    // "pushcore listening on http://127.0.0.1:PORT (N workers)"
    let rest = line.trim_start_matches("pushcore listening on http://");
    let (addr, rest) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("bad listening line {line:?}"));
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
    let workers = rest
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no worker count in {line:?}"));
    (addr, workers)
}

/// io_uring instances the process holds open.
fn io_uring_fds(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:[io_uring]")
        .count()
}

/// Poll `check` (every 20 ms) until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
