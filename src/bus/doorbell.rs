//! Waking a sleeping worker from another core without locks: the consumer arms its doorbell,
//! re-checks its rings, then waits on a socketpair; a producer rings (writes one byte) only if
//! the doorbell was armed, so a busy worker costs its producers one atomic swap per batch.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// The ringing side of one worker's doorbell, shared with every other thread.
#[derive(Debug)]
pub struct Doorbell {
    armed: AtomicBool,
    tx: UnixStream,
}

/// The waiting side, owned by its worker.
#[derive(Debug)]
pub struct DoorbellRx {
    rx: UnixStream,
}

impl Doorbell {
    pub fn new() -> std::io::Result<(Doorbell, DoorbellRx)> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok((
            Doorbell {
                armed: AtomicBool::new(false),
                tx,
            },
            DoorbellRx { rx },
        ))
    }

    /// Wake the worker if it is (about to be) asleep.
    pub fn ring(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            // A full socket buffer (EAGAIN) means a wake-up is already pending: nothing to do.
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// Announce that the worker is going to sleep; it must re-check its rings afterwards.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}

impl DoorbellRx {
    /// The monoio stream to await on; call inside the worker's runtime.
    pub fn into_stream(self) -> std::io::Result<monoio::net::UnixStream> {
        monoio::net::UnixStream::from_std(self.rx)
    }

    /// For a plain (non-runtime) thread: sleep until rung or until `timeout` passes, whichever
    /// is first. The caller arms the doorbell and re-checks its rings before calling this.
    pub fn wait_blocking(&mut self, timeout: std::time::Duration) -> std::io::Result<()> {
        use std::io::Read;
        self.rx.set_nonblocking(false)?;
        self.rx
            .set_read_timeout(Some(timeout.max(std::time::Duration::from_millis(1))))?;
        let mut buf = [0u8; 64];
        match self.rx.read(&mut buf) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
