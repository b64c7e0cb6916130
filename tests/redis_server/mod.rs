//! A throwaway `redis-server` per test: Debian's package, started on a free loopback port in
//! its own temporary directory, never the system service, stopped by PID (and killed on drop).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How the server keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk: a restart comes back empty.
    None,
    /// Append-only file, fsync on every write: a restart (even after SIGKILL) keeps every
    /// acknowledged write.
    Aof,
}

/// One running (or stopped) `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    persistence: Persistence,
    child: Option<Child>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a server; panics with a clear message when `redis-server` is missing.
    pub fn start(persistence: Persistence) -> RedisServer {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pushcore-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the redis temp dir");
        let mut server = RedisServer {
            port: free_port(),
            dir,
            persistence,
            child: None,
        };
        // A port picked free can be taken by a server another test starts at the same moment.
        for _ in 0..4 {
            match server.try_spawn() {
                Ok(()) => return server,
                Err(_) => server.port = free_port(),
            }
        }
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .expect("redis log file");
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(["--save", "", "--daemonize", "no", "--logfile", ""])
            .args(["--enable-debug-command", "local"]);
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::Aof => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start redis-server (apt-get install -y redis-server; .ci/test does it)");
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until *our* process answers on the port (another test's server may have taken a
    /// port picked at the same time: then ours exits, and it is an error, not a shared server).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid = self.pid().unwrap_or_default();
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!(
                    "redis-server on port {} exited ({status}):\n{log}",
                    self.port
                ));
            }
            if self.ping()
                && self
                    .cli(&["INFO", "server"])
                    .contains(&format!("process_id:{pid}"))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        Err(format!(
            "redis-server on port {} did not answer PING:\n{log}",
            self.port
        ))
    }

    /// True when the server answers `PING` right now.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Clean shutdown (SIGTERM, as an operator's restart), waiting for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port (after [`stop`](Self::stop) or [`kill`](Self::kill)).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.spawn();
    }

    /// Stops and starts again on the same port, keeping its data directory or wiping it
    /// (a Redis that comes back without its data).
    pub fn restart(&mut self, keep_data: bool) {
        self.stop();
        if !keep_data {
            wipe(&self.dir);
        }
        self.spawn();
    }

    /// `DEBUG SLEEP secs` in the background: the server stalls (accepts, answers nothing).
    /// Returns the `redis-cli` child; it ends when the sleep does.
    pub fn sleep(&self, secs: f64) -> Child {
        let child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["DEBUG", "SLEEP"])
            .arg(secs.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli");
        // Wait until the server has stopped answering, so the caller's next step meets the stall.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.ping() {
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

fn wipe(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "redis.log") {
                continue;
            }
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
