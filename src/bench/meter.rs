//! The progress bar on stderr while a run connects, publishes and waits for deliveries. Drawn
//! only when stderr is a terminal and `--quiet` is off, so scripts see the summary alone.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar, reused phase after phase.
#[derive(Debug)]
pub struct Meter {
    bar: ProgressBar,
    /// Drawn (a terminal, not `--quiet`): shown from the first phase on.
    visible: bool,
}

impl Meter {
    pub fn new(quiet: bool) -> Meter {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(
            "{prefix:>10.bold} [{wide_bar:.cyan/blue}] {human_pos}/{human_len} {msg} {elapsed}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Meter { bar, visible }
    }

    /// Start a phase of `len` steps.
    pub fn phase(&self, name: &'static str, len: u64) {
        self.bar.set_message("");
        self.bar.set_prefix(name);
        self.bar.set_length(len);
        self.bar.reset();
        if self.visible && self.bar.is_hidden() {
            self.bar
                .set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        }
    }

    pub fn show(&self, pos: u64, msg: impl FnOnce() -> String) {
        if !self.visible {
            return;
        }
        self.bar.set_position(pos);
        self.bar.set_message(msg());
    }

    /// Remove the bar before the summary is printed.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
