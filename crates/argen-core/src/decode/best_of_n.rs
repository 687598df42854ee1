//! Best-of-N: generate `n` complete candidates, keep the one the scorer likes best.
//!
//! The simplest test-time scaling baseline for visual AR models (as evaluated against GridAR by
//! Park et al., "Progress by Pieces: Test-Time Scaling for Autoregressive Image Generation",
//! arXiv:2511.21185, and in the LLM literature before it).
//!
//! # Algorithm
//!
//! Candidate `c ∈ 0..n` is an independent run of an *inner* decoder `D` (vanilla, speculative,
//! …) built from the base [`Config`] with sequence id `base.seq + c` and RNG stream
//! `base.stream + c`, so its tokens are exactly those of a standalone `D` with that stream. The
//! candidates run one after another; as soon as candidate `c` is done the host scores it
//! ([`Action::Score`], a finite number, higher is better). The result is
//!
//! ```text
//! best = argmax_c score_c      (ties: the lowest c)
//! ```
//!
//! # Accounting and bounds
//!
//! [`Decoder::stats`] is the sum of the inner decoders' counters plus one scorer call per
//! candidate, so the token budget is `n · H · W` tokens. The action bound is the sum of the inner
//! bounds plus `n` score actions. A non-finite score is rejected with
//! [`Error::InvalidParameter`] (`score`) and changes nothing; every other malformed answer is
//! rejected by the inner decoder (which leaves its state unchanged) or as an
//! [`Error::UnexpectedAnswer`].

use super::{unexpected, Action, Config, Decoder, Score, Stats};
use crate::backend::Backend;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Candidate `c` is decoding.
    Run(u32),
    /// Candidate `c` is done and waits for its score.
    Score(u32),
    Done,
}

/// Best-of-`n` over inner decoders of type `D`, for up to `C` candidates.
#[derive(Clone, Debug)]
pub struct BestOfN<D, const C: usize> {
    base: Config,
    candidates: heapless::Vec<D, C>,
    scores: [f32; C],
    best: u32,
    phase: Phase,
    scorer_calls: u32,
}

/// The configuration of candidate `c` of `base`: sequence `base.seq + c`, stream
/// `base.stream + c`. Fails if either id overflows.
pub fn candidate_config(base: &Config, c: u32) -> Result<Config> {
    let overflow = |name| Error::InvalidParameter {
        name,
        reason: "base id plus the candidate count overflows u32",
    };
    Ok(Config {
        seq: base.seq.checked_add(c).ok_or(overflow("seq"))?,
        stream: base.stream.checked_add(c).ok_or(overflow("stream"))?,
        ..*base
    })
}

impl<D: Decoder, const C: usize> BestOfN<D, C> {
    /// Best-of-`n` over candidates built by `make` from each candidate's configuration (see
    /// [`candidate_config`]); `make` must honour the configuration's `seq` and `stream`.
    pub fn new(base: Config, n: u32, mut make: impl FnMut(Config) -> Result<D>) -> Result<Self> {
        if n == 0 || n as usize > C {
            return Err(Error::InvalidParameter {
                name: "n",
                reason: "must be between 1 and the decoder's candidate capacity",
            });
        }
        let mut candidates = heapless::Vec::new();
        for c in 0..n {
            let cfg = candidate_config(&base, c)?;
            let d = make(cfg)?;
            if d.result_seq() != cfg.seq {
                return Err(Error::InvalidParameter {
                    name: "make",
                    reason: "the inner decoder must use the candidate's sequence id",
                });
            }
            if d.poll() == Action::Done {
                return Err(Error::InvalidParameter {
                    name: "make",
                    reason: "the inner decoder must not be done before it starts",
                });
            }
            // n <= C was checked above.
            let _ = candidates.push(d);
        }
        Ok(BestOfN {
            base,
            candidates,
            scores: [0.0; C],
            best: 0,
            phase: Phase::Run(0),
            scorer_calls: 0,
        })
    }

    /// Number of candidates.
    pub fn n(&self) -> u32 {
        self.candidates.len() as u32
    }

    /// The candidate decoders.
    pub fn candidates(&self) -> &[D] {
        &self.candidates
    }

    /// Scores received so far (one per scored candidate).
    pub fn scores(&self) -> &[f32] {
        &self.scores[..self.scorer_calls as usize]
    }

    /// Index of the best candidate so far (0 before any score).
    pub fn best(&self) -> u32 {
        self.best
    }

    /// After candidate `c` handled an answer: move on to its score if it is done.
    fn advance(&mut self, c: u32) {
        if let Some(d) = self.candidates.get(c as usize) {
            if d.poll() == Action::Done {
                self.phase = Phase::Score(c);
            }
        }
    }

    /// The running candidate, or the protocol error for answering with `found`.
    fn running(&mut self, found: &'static str) -> Result<(u32, &mut D)> {
        if let Phase::Run(c) = self.phase {
            if (c as usize) < self.candidates.len() {
                return Ok((c, &mut self.candidates[c as usize]));
            }
        }
        Err(unexpected(self.poll(), found))
    }
}

impl<D: Decoder, const C: usize> Decoder for BestOfN<D, C> {
    fn poll(&self) -> Action<'_> {
        match self.phase {
            Phase::Run(c) => match self.candidates.get(c as usize) {
                Some(d) => d.poll(),
                None => Action::Done,
            },
            Phase::Score(c) => match self.candidates.get(c as usize) {
                Some(d) => {
                    let seq = self.base.seq + c;
                    Action::Score(Score {
                        seq,
                        tokens: d.tokens(seq),
                    })
                }
                None => Action::Done,
            },
            Phase::Done => Action::Done,
        }
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        let (c, d) = self.running("logits")?;
        d.handle_logits(backend, logits)?;
        self.advance(c);
        Ok(())
    }

    fn handle_verdict(&mut self, possible: bool) -> Result<()> {
        let (c, d) = self.running("verdict")?;
        d.handle_verdict(possible)?;
        self.advance(c);
        Ok(())
    }

    fn handle_reformulated(&mut self) -> Result<()> {
        let (c, d) = self.running("reformulated")?;
        d.handle_reformulated()?;
        self.advance(c);
        Ok(())
    }

    fn handle_score(&mut self, score: f32) -> Result<()> {
        let c = match self.phase {
            Phase::Score(c) => c,
            _ => return Err(unexpected(self.poll(), "score")),
        };
        if !score.is_finite() {
            return Err(Error::InvalidParameter {
                name: "score",
                reason: "a candidate's score must be finite",
            });
        }
        let i = c as usize;
        if let Some(s) = self.scores.get_mut(i) {
            *s = score;
        }
        if c > 0 && score > self.scores[self.best as usize] {
            self.best = c;
        }
        self.scorer_calls += 1;
        self.phase = if c + 1 < self.n() {
            Phase::Run(c + 1)
        } else {
            Phase::Done
        };
        Ok(())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        seq.checked_sub(self.base.seq)
            .and_then(|c| self.candidates.get(c as usize))
            .map_or(&[], |d| d.tokens(seq))
    }

    fn result_seq(&self) -> u32 {
        self.base.seq + self.best
    }

    fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for d in &self.candidates {
            s.add(&d.stats());
        }
        s.scorer_calls += self.scorer_calls;
        s
    }

    fn dist_rows_needed(&self) -> usize {
        self.candidates
            .iter()
            .map(|d| d.dist_rows_needed())
            .max()
            .unwrap_or(0)
    }

    fn action_bound(&self) -> u32 {
        self.candidates
            .iter()
            .fold(self.n(), |acc, d| acc.saturating_add(d.action_bound()))
    }
}
