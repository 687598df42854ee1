//! The final selection shared by Best-of-N and GridAR: score every candidate, keep the argmax.
//!
//! Candidates `0..n` are scored in index order ([`Action::Score`](super::Action::Score), a finite
//! number, higher is better); the result is `argmax_c score_c`, ties to the lowest `c`. A
//! non-finite score is rejected with [`Error::InvalidParameter`] (`score`) and changes nothing.

use crate::error::{Error, Result};

/// Scores of up to `C` candidates and the best so far.
#[derive(Clone, Debug)]
pub struct Scoreboard<const C: usize> {
    scores: [f32; C],
    n: u32,
    scored: u32,
    best: u32,
}

impl<const C: usize> Scoreboard<C> {
    /// A board for `n ≤ C` candidates, none scored.
    pub fn new(n: u32) -> Self {
        Scoreboard {
            scores: [0.0; C],
            n: n.min(C as u32),
            scored: 0,
            best: 0,
        }
    }

    /// The candidate to score next, or `None` when every candidate has its score.
    pub fn next(&self) -> Option<u32> {
        (self.scored < self.n).then_some(self.scored)
    }

    /// Records the score of [`Scoreboard::next`].
    pub fn record(&mut self, score: f32) -> Result<()> {
        let Some(c) = self.next() else {
            return Err(Error::InvalidParameter {
                name: "score",
                reason: "every candidate is scored already",
            });
        };
        if !score.is_finite() {
            return Err(Error::InvalidParameter {
                name: "score",
                reason: "a candidate's score must be finite",
            });
        }
        self.scores[c as usize] = score;
        if c > 0 && score > self.scores[self.best as usize] {
            self.best = c;
        }
        self.scored += 1;
        Ok(())
    }

    /// Scores received so far, by candidate.
    pub fn scores(&self) -> &[f32] {
        &self.scores[..self.scored as usize]
    }

    /// The best candidate so far (0 before any score).
    pub fn best(&self) -> u32 {
        self.best
    }

    /// Scorer calls so far.
    pub fn calls(&self) -> u32 {
        self.scored
    }
}
