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
//! candidates run **in lockstep** ([`Lockstep`]): every candidate waiting on the same model joins
//! one batched forward ([`Action::Batch`]), so `n` vanilla candidates cost one target forward per
//! token step, not `n`. When every candidate is done, the host scores them in index order
//! ([`Scoreboard`]: [`Action::Score`], a finite number, higher is better). The result is
//!
//! ```text
//! best = argmax_c score_c      (ties: the lowest c)
//! ```
//!
//! (Until protocol v2 the candidates ran one after another; the tokens, stats and result are the
//! same, only the order of the host's work changed.)
//!
//! # Accounting and bounds
//!
//! [`Decoder::stats`] is the sum of the inner decoders' counters plus one scorer call per
//! candidate, so the token budget is `n · H · W` tokens (`target_forwards` counts each
//! candidate's forwards, as if it ran alone; a batch is one model call for all of them). The
//! action bound is the sum of the inner bounds plus `n` score actions. A non-finite score is
//! rejected with [`Error::InvalidParameter`] (`score`) and changes nothing; every other malformed
//! answer is rejected by the inner decoder or as an [`Error::UnexpectedAnswer`].

use super::batch::Lockstep;
use super::scoreboard::Scoreboard;
use super::{unexpected, Action, Config, Decoder, Score, Stats};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Best-of-`n` over inner decoders of type `D`, for up to `C` candidates.
#[derive(Clone, Debug)]
pub struct BestOfN<D, const C: usize> {
    base: Config,
    set: Lockstep<D, heapless::Vec<D, C>, heapless::Vec<u32, C>>,
    board: Scoreboard<C>,
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
            set: Lockstep::new(candidates, heapless::Vec::new(), heapless::Vec::new()),
            board: Scoreboard::new(n),
        })
    }

    /// Number of candidates.
    pub fn n(&self) -> u32 {
        self.set.decoders().len() as u32
    }

    /// The candidate decoders.
    pub fn candidates(&self) -> &[D] {
        self.set.decoders()
    }

    /// Scores received so far (one per scored candidate).
    pub fn scores(&self) -> &[f32] {
        self.board.scores()
    }

    /// Index of the best candidate so far (0 before any score).
    pub fn best(&self) -> u32 {
        self.board.best()
    }
}

impl<D: Decoder, const C: usize> Decoder for BestOfN<D, C> {
    fn poll(&self) -> Action<'_> {
        if !self.set.is_done() {
            return self.set.poll();
        }
        match self.board.next() {
            Some(c) => {
                let seq = self.base.seq + c;
                Action::Score(Score {
                    seq,
                    tokens: self.set.decoders()[c as usize].tokens(seq),
                })
            }
            None => Action::Done,
        }
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        self.set.handle_logits(backend, logits)
    }

    fn handle_verdict(&mut self, possible: bool) -> Result<()> {
        self.set
            .handle_solo("verdict", |d| d.handle_verdict(possible))
    }

    fn handle_reformulated(&mut self) -> Result<()> {
        self.set
            .handle_solo("reformulated", |d| d.handle_reformulated())
    }

    fn handle_score(&mut self, score: f32) -> Result<()> {
        if !self.set.is_done() {
            return self.set.handle_solo("score", |d| d.handle_score(score));
        }
        if self.board.next().is_none() {
            return Err(unexpected(self.poll(), "score"));
        }
        self.board.record(score)
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        seq.checked_sub(self.base.seq)
            .and_then(|c| self.set.decoders().get(c as usize))
            .map_or(&[], |d| d.tokens(seq))
    }

    fn result_seq(&self) -> u32 {
        self.base.seq + self.board.best()
    }

    fn sequences(&self) -> core::ops::Range<u32> {
        self.base.seq..self.base.seq + self.n()
    }

    fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for d in self.set.decoders() {
            s.add(&d.stats());
        }
        s.scorer_calls += self.board.calls();
        s
    }

    fn dist_rows_needed(&self) -> usize {
        self.set.dist_rows_needed()
    }

    fn action_bound(&self) -> u32 {
        self.set
            .decoders()
            .iter()
            .fold(self.n(), |acc, d| acc.saturating_add(d.action_bound()))
    }
}
