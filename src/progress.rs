//! Progress on stderr (indicatif), hidden when stderr is not a terminal, with
//! `--quiet`, or when `NO_PROGRESS` is set. Progress never shows personal data: only
//! stage names, counts and bytes.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress output of one command.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// Bars are drawn.
    pub bars: bool,
    /// Summaries go to stderr.
    pub chatty: bool,
}

impl Printer {
    /// From the global flags and the environment.
    pub fn new(quiet: bool) -> Printer {
        let bars =
            !quiet && std::io::stderr().is_terminal() && std::env::var_os("NO_PROGRESS").is_none();
        Printer {
            bars,
            chatty: !quiet,
        }
    }

    /// A bar over `total` units (`bytes` selects the byte style).
    pub fn bar(&self, stage: &str, total: u64, bytes: bool) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            Some(total),
            if self.bars {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        let template = if bytes {
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
        } else {
            "{prefix:>12} [{bar:30}] {pos}/{len} ({eta})"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar
    }

    /// A spinner for a stage of unknown length.
    pub fn spinner(&self, stage: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            None,
            if self.bars {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} {spinner} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    /// A line on stderr unless quiet.
    pub fn note(&self, line: &str) {
        if self.chatty {
            eprintln!("{line}");
        }
    }
}
