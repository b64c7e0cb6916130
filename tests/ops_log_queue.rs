//! Logging never blocks the logging thread: with the log destination stalled, a burst of lines
//! returns at once, the lines past the queue are dropped and counted, and the count reaches
//! the metrics text. Alone in its binary: the logger is process-wide.

use std::io::Write;
use std::sync::mpsc::{channel, Receiver};

use pushcore::config::{LogFormat, LogLevel};
use pushcore::ops::log::{dropped_lines, init_with_writer, render_metrics, QUEUE_LINES};

/// A destination that accepts nothing until it is told to (then discards everything).
struct Stalled(Receiver<()>);

impl Write for Stalled {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_destination_drops_and_counts_lines() {
    let (release, stalled) = channel();
    let logging = init_with_writer(Stalled(stalled), LogLevel::Info, LogFormat::Json, false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dropped_lines(), 0);
    let burst = QUEUE_LINES * 2;
    for i in 0..burst {
        tracing::warn!(line = i, "a line the stalled destination cannot take");
    }
    // Everything past the queue (and the line the writer thread holds) was dropped, not waited for.
    let dropped = dropped_lines();
    assert!(
        dropped >= (burst - QUEUE_LINES - 1) as u64 && dropped <= burst as u64,
        "{dropped} of {burst} dropped with a queue of {QUEUE_LINES}"
    );
    let mut text = String::new();
    render_metrics(&mut text);
    assert!(
        text.contains(&format!("pushcore_log_lines_dropped_total {dropped}\n")),
        "{text}"
    );
    // Let the writer thread finish so the guard's flush on drop does not wait forever.
    drop(release);
    drop(logging);
}
