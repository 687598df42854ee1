//! The progress bar on stderr (only when stderr is a terminal).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use argen_core::decode::{Action, Decoder, Observer};

/// Draws `[=====>    ] done/total tokens` as the decoder commits tokens.
pub struct Progress {
    total: u32,
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    /// A bar for `total` tokens; silent if `quiet` or stderr is not a terminal.
    pub fn new(total: u32, quiet: bool) -> Self {
        Progress {
            total,
            enabled: !quiet && std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn draw(&self, done: u32, tpf: f64) {
        const WIDTH: usize = 30;
        let filled = (done as usize * WIDTH) / self.total.max(1) as usize;
        let bar: String = (0..WIDTH)
            .map(|i| {
                if i < filled {
                    '='
                } else if i == filled {
                    '>'
                } else {
                    ' '
                }
            })
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{bar}] {done}/{} tokens  {tpf:.2} tokens/target pass ",
            self.total
        );
        let _ = err.flush();
    }

    /// Ends the bar's line.
    pub fn finish(&self) {
        if self.enabled && self.last.is_some() {
            crate::errln!();
        }
    }
}

impl Observer for Progress {
    fn before(&mut self, _: &Action<'_>) {}

    fn after<D: Decoder>(&mut self, decoder: &D) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let s = decoder.stats();
        self.draw(s.tokens, s.tokens_per_target_forward());
    }
}
