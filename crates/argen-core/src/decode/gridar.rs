//! GridAR: grid-partitioned progressive generation with pruning, anchors and layout
//! reformulation.
//!
//! Park, Jang, Kim and Yang, "Progress by Pieces: Test-Time Scaling for Autoregressive Image
//! Generation" (GridAR), arXiv:2511.21185, CVPR 2026; official code
//! `github.com/JoonHyung-Park/GridAR` (`GridAR-Janus-Pro`). Reported: with N = 4 GridAR beats
//! Best-of-N with N = 8 by 14.4% on T2I-CompBench++ at 25.6% less cost (arXiv v1 abstract; the
//! project page states 18.2% less cost, the earlier ICLR 2026 submission 17.8% and 18.2%).
//!
//! # Algorithm
//!
//! An `H × W` token canvas is cut by token rows at `r₁ = ⌊H/4⌋`, `r₂ = ⌊H/2⌋` and `r₃ = H`
//! (stage `k` generates rows `r_{k−1}..r_k`, `r₀ = 0`). Candidate `c ∈ 0..n` is sequence
//! `base.seq + c` and draws its token at raster index `i` with key
//! `(seed, base.stream + c, SAMPLE, i, 0)` from its processed target distribution — the same key
//! as [`super::Vanilla`] with stream `base.stream + c`.
//!
//! 1. **Glimpse.** Each candidate generates rows `0..r₁`.
//! 2. **Verify** (optional). Each candidate's canvas is judged possible / impossible
//!    ([`Action::Check`]).
//! 3. **Prune.** With `P` the possible candidates and `I` the impossible ones, both in increasing
//!    index order: if `P` is empty every candidate is kept; otherwise the `j`-th impossible
//!    candidate `I[j]` takes over the canvas of `P[j mod |P|]` (round robin, as
//!    `propagate_selection` in the official `method_utils.py`, non-grouped variant). The survivors
//!    are the *anchors*. A replaced candidate keeps its own sequence id and RNG stream, so it
//!    continues differently from the candidate whose anchor it copied.
//! 4. **Reformulate** (optional). Each candidate's prompt gets a layout clause inferred from its
//!    (post-pruning) canvas ([`Action::Reformulate`]); from then on it is sampled with three-way
//!    CFG ([`GuidanceMode::ThreeWay`], `w` = [`RELEASE_W`] in the official release): with
//!    `d_o = l_c − l_u`, `d_r = l_r − l_u` and `d̃_r = d_r − (⟨d_r, d_o⟩ / ‖d_o‖²)·d_o`,
//!    `l = l_u + (w + 1)·d_o + w·d̃_r` (official `decode.py`, `cfg_decode_3_way`).
//! 5. **Grow.** A candidate whose canvas was replaced or whose prompt was reformulated is
//!    re-prefilled: [`Action::Prefill`] with the prompt and its anchor tokens (three-way if
//!    reformulated); the others continue from their KV cache. Each candidate then generates rows
//!    `r₁..r₂`; steps 2–4 repeat at `r₂`; then rows `r₂..H` complete the canvases.
//! 6. **Select.** Every candidate is scored ([`Action::Score`], finite, higher is better); the
//!    result is the argmax, ties to the lowest index.
//!
//! With `n = 1`, the verifier off (or always answering *possible*) and no reformulation, the
//! tokens are exactly those of [`super::Vanilla`] with the same seed and stream.
//!
//! # Token budget and accounting
//!
//! Every candidate samples each of its `H·W` tokens exactly once — the prefill that starts a
//! stage produces that stage's first token in place of a target step — so
//! `stats.tokens = stats.target_forwards = n·H·W`, the budget of Best-of-N with the same `n`.
//! A replaced candidate's discarded rows are not generated again; the anchor rows it receives
//! are *prefill work*, not new tokens, and are reported apart in [`GridArReport`]
//! (`anchor_tokens`, and `anchor_rows` = anchor tokens × guidance variants). `stats.target_rows`
//! counts logits rows as every decoder does (inputs × variants: 3 per input under three-way
//! CFG, 1 input per prefill). `stats.prefills = n + anchor re-prefills`, `verifier_calls = 2n`
//! (verifier on), `reformulations = 2n` (on), `scorer_calls = n`.
//!
//! # Differences from the official code
//!
//! * The official code cuts at token counts `⌊HW/4⌋` and `⌊HW/2⌋` (whole rows when `4 | H`);
//!   argen cuts at whole rows for every `H ≥ 4`.
//! * The official verifier judges candidates four (quarter stage) or two (half stage) at a time
//!   in one composite image per VLM query; argen judges one candidate per [`Action::Check`] —
//!   the host may batch them. Replacement is across all `n` candidates (official
//!   `is_grouped_by_4 = false`).
//! * The official code restarts generation at each stage and so re-prefills every candidate;
//!   argen re-prefills only the candidates whose canvas or prompt changed. The tokens are the
//!   same (an unchanged candidate's KV cache already holds its prefix); the prefill work is less.
//!
//! # Bounds
//!
//! Exactly `n·H·W` forwards, `2n` checks (verifier on), `2n` reformulations (on) and `n`
//! scores: that sum is [`Decoder::action_bound`], and GridAR always uses all of it.

use super::best_of_n::candidate_config;
use super::{
    check_dist_rows, check_rows, unexpected, Action, Check, Config, Decoder, GuidanceMode, Input,
    Prefill, Reformulate, Score, Stats, TargetRun,
};
use crate::backend::{Backend, ProcessJob, SampleJob};
use crate::error::{Error, Result};
use crate::rng::{Key, Purpose};

/// Three-way CFG weight of the official GridAR release.
pub const RELEASE_W: f32 = 5.0;

/// Pruning points: after stage 0 (top quarter) and stage 1 (top half).
pub const PRUNING_POINTS: usize = 2;

/// The token rows after which a canvas of `rows` rows is pruned: `⌊rows/4⌋` and `⌊rows/2⌋`
/// (module docs, "Algorithm").
pub const fn pruning_rows(rows: u32) -> [u32; PRUNING_POINTS] {
    [rows / 4, rows / 2]
}

/// Settings of [`GridAr`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridArConfig {
    /// Shared settings of the first candidate (seed, stream, seq, size, sampler) and the
    /// guidance used until a candidate is reformulated.
    pub base: Config,
    /// Number of candidates `n`.
    pub n: u32,
    /// Whether partial canvases are checked and impossible ones replaced.
    pub verifier: bool,
    /// Whether prompts are reformulated after each pruning point (and three-way CFG used).
    pub reformulate: bool,
    /// Three-way CFG weight `w` ([`RELEASE_W`] in the official release).
    pub w: f32,
}

/// GridAR's own counters, beyond [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GridArReport {
    /// Prefills that re-ran an anchor (a prefill with image tokens).
    pub anchor_prefills: u32,
    /// Image tokens re-prefilled in anchor prefills (prefill work, not new tokens).
    pub anchor_tokens: u32,
    /// Anchor tokens × guidance variants of their prefill: the target rows the re-prefills ran.
    pub anchor_rows: u32,
    /// Candidates judged possible at each pruning point.
    pub possible: [u32; PRUNING_POINTS],
    /// Candidates replaced by an anchor at each pruning point.
    pub replaced: [u32; PRUNING_POINTS],
    /// Whether every candidate was judged impossible (and all were kept) at each pruning point.
    pub all_impossible: [bool; PRUNING_POINTS],
}

/// One candidate's state.
#[derive(Clone, Debug)]
struct Candidate<const T: usize> {
    tokens: heapless::Vec<u32, T>,
    guidance: GuidanceMode,
    /// The next forward of this sequence is a prefill (of `tokens`).
    needs_prefill: bool,
    /// The last forward was a target run whose single input is pending in the KV cache.
    pending: bool,
    /// The single input of the next target run.
    input: [Input; 1],
    /// Verdict at the current pruning point.
    possible: bool,
    score: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Gen { stage: u8, c: u32 },
    Check { stage: u8, c: u32 },
    Reformulate { stage: u8, c: u32 },
    Score { c: u32 },
    Done,
}

const KEEP_ONE: [u32; 1] = [0];

/// GridAR over up to `C` candidates of up to `T` tokens each. Needs 1 distribution row.
#[derive(Clone, Debug)]
pub struct GridAr<const C: usize, const T: usize> {
    cfg: GridArConfig,
    /// Cut rows `r₁, r₂, r₃`.
    cut_rows: [u32; 3],
    cands: heapless::Vec<Candidate<T>, C>,
    phase: Phase,
    stats: Stats,
    report: GridArReport,
    best: u32,
}

impl<const C: usize, const T: usize> GridAr<C, T> {
    /// A decoder for `cfg`.
    pub fn new(cfg: GridArConfig) -> Result<Self> {
        let base = cfg.base;
        base.validate(T)?;
        base.sampler.validate(usize::MAX)?;
        if cfg.n == 0 || cfg.n as usize > C {
            return Err(Error::InvalidParameter {
                name: "n",
                reason: "must be between 1 and the decoder's candidate capacity",
            });
        }
        if !cfg.w.is_finite() {
            return Err(Error::InvalidParameter {
                name: "w",
                reason: "three-way CFG weight must be finite",
            });
        }
        let rows = base.tokens / base.width;
        if rows < 4 {
            return Err(Error::InvalidParameter {
                name: "tokens",
                reason: "GridAR needs a canvas of at least 4 token rows",
            });
        }
        // Sequence and stream ids of the last candidate must not overflow.
        candidate_config(&base, cfg.n - 1)?;
        let mut cands = heapless::Vec::new();
        for _ in 0..cfg.n {
            let _ = cands.push(Candidate {
                tokens: heapless::Vec::new(),
                guidance: base.guidance,
                needs_prefill: true,
                pending: false,
                input: [Input::root(0, 0)],
                possible: true,
                score: 0.0,
            });
        }
        Ok(GridAr {
            cfg,
            cut_rows: {
                let [r1, r2] = pruning_rows(rows);
                [r1, r2, rows]
            },
            cands,
            phase: Phase::Gen { stage: 0, c: 0 },
            stats: Stats::default(),
            report: GridArReport::default(),
            best: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GridArConfig {
        &self.cfg
    }

    /// The token rows at which the three stages end.
    pub fn cut_rows(&self) -> [u32; 3] {
        self.cut_rows
    }

    /// GridAR's own counters.
    pub fn report(&self) -> GridArReport {
        self.report
    }

    /// Final scores of the candidates scored so far.
    pub fn scores(&self) -> impl Iterator<Item = f32> + '_ {
        let scored = match self.phase {
            Phase::Score { c } => c as usize,
            Phase::Done => self.cands.len(),
            _ => 0,
        };
        self.cands.iter().take(scored).map(|c| c.score)
    }

    /// Index of the best candidate so far (0 before any score).
    pub fn best(&self) -> u32 {
        self.best
    }

    fn n(&self) -> u32 {
        self.cands.len() as u32
    }

    fn seq(&self, c: u32) -> u32 {
        self.cfg.base.seq + c
    }

    fn cut_tokens(&self, stage: u8) -> usize {
        (self.cut_rows[stage as usize] * self.cfg.base.width) as usize
    }

    /// Candidate `c` finished stage `stage`.
    fn stage_done(&mut self, stage: u8, c: u32) {
        if c + 1 < self.n() {
            self.phase = Phase::Gen { stage, c: c + 1 };
        } else if stage == 2 {
            self.phase = Phase::Score { c: 0 };
        } else if self.cfg.verifier {
            self.phase = Phase::Check { stage, c: 0 };
        } else {
            self.after_pruning(stage);
        }
    }

    /// Round-robin replacement of the impossible candidates (see the module doc).
    fn prune(&mut self, stage: u8) {
        let p = self.cands.iter().filter(|c| c.possible).count();
        let point = stage as usize;
        self.report.possible[point] += p as u32;
        if p == 0 {
            self.report.all_impossible[point] = true;
            return;
        }
        let mut j = 0;
        for dst in 0..self.cands.len() {
            if self.cands[dst].possible {
                continue;
            }
            // The (j mod p)-th possible candidate; possible candidates are never overwritten.
            let src = self
                .cands
                .iter()
                .enumerate()
                .filter(|(_, c)| c.possible)
                .nth(j % p)
                .map_or(dst, |(i, _)| i);
            j += 1;
            let (from, to) = if src < dst {
                let (l, r) = self.cands.split_at_mut(dst);
                (&l[src], &mut r[0])
            } else {
                let (l, r) = self.cands.split_at_mut(src);
                (&r[0], &mut l[dst])
            };
            to.tokens.clear();
            // Same length, same capacity.
            let _ = to.tokens.extend_from_slice(&from.tokens);
            to.input = from.input;
            to.needs_prefill = true;
            self.report.replaced[point] += 1;
        }
    }

    /// After the (optional) pruning at the end of `stage`: reformulate, or grow.
    fn after_pruning(&mut self, stage: u8) {
        self.phase = if self.cfg.reformulate {
            Phase::Reformulate { stage, c: 0 }
        } else {
            Phase::Gen {
                stage: stage + 1,
                c: 0,
            }
        };
    }
}

impl<const C: usize, const T: usize> Decoder for GridAr<C, T> {
    fn poll(&self) -> Action<'_> {
        match self.phase {
            Phase::Gen { c, .. } => {
                let cand = &self.cands[c as usize];
                if cand.needs_prefill {
                    Action::Prefill(Prefill {
                        seq: self.seq(c),
                        tokens: &cand.tokens,
                        guidance: cand.guidance,
                    })
                } else {
                    Action::Target(TargetRun {
                        seq: self.seq(c),
                        keep: if cand.pending { &KEEP_ONE } else { &[] },
                        inputs: &cand.input,
                        guidance: cand.guidance,
                    })
                }
            }
            Phase::Check { stage, c } => Action::Check(Check {
                seq: self.seq(c),
                rows: self.cut_rows[stage as usize],
                tokens: &self.cands[c as usize].tokens,
            }),
            Phase::Reformulate { stage, c } => Action::Reformulate(Reformulate {
                seq: self.seq(c),
                rows: self.cut_rows[stage as usize],
                tokens: &self.cands[c as usize].tokens,
            }),
            Phase::Score { c } => Action::Score(Score {
                seq: self.seq(c),
                tokens: &self.cands[c as usize].tokens,
            }),
            Phase::Done => Action::Done,
        }
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        let action = self.poll();
        let (stage, c) = match self.phase {
            Phase::Gen { stage, c } => (stage, c),
            _ => return Err(unexpected(action, "logits").into()),
        };
        let rows = action
            .logits_rows()
            .ok_or_else(|| unexpected(action, "logits"))?;
        check_rows(backend, logits, rows)?;
        check_dist_rows(backend, 1)?;
        let base = self.cfg.base;
        let cand = &self.cands[c as usize];
        let index = cand.tokens.len() as u32;
        let guidance = cand.guidance;
        let prefill = cand.needs_prefill;
        backend.process(
            logits,
            &[ProcessJob {
                rows: guidance.rows(0),
                params: base.sampler,
                out: 0,
            }],
        )?;
        let key = Key::new(base.seed, base.stream + c, Purpose::SAMPLE, index);
        let mut token = [0u32];
        backend.sample(&[SampleJob { row: 0, key }], &mut token)?;
        // Nothing can fail from here on.
        let cand = &mut self.cands[c as usize];
        // index < cut ≤ base.tokens ≤ T, checked in `new`.
        let _ = cand.tokens.push(token[0]);
        cand.input = [Input::root(token[0], index)];
        cand.pending = !prefill;
        cand.needs_prefill = false;
        let done = cand.tokens.len() == self.cut_tokens(stage);
        self.stats.tokens += 1;
        self.stats.target_forwards += 1;
        self.stats.target_rows += rows as u32;
        if prefill {
            self.stats.prefills += 1;
            if index > 0 {
                self.report.anchor_prefills += 1;
                self.report.anchor_tokens += index;
                self.report.anchor_rows += index * guidance.variants() as u32;
            }
        }
        if done {
            self.stage_done(stage, c);
        }
        Ok(())
    }

    fn handle_verdict(&mut self, possible: bool) -> Result<()> {
        let (stage, c) = match self.phase {
            Phase::Check { stage, c } => (stage, c),
            _ => return Err(unexpected(self.poll(), "verdict")),
        };
        self.cands[c as usize].possible = possible;
        self.stats.verifier_calls += 1;
        if c + 1 < self.n() {
            self.phase = Phase::Check { stage, c: c + 1 };
        } else {
            self.prune(stage);
            self.after_pruning(stage);
        }
        Ok(())
    }

    fn handle_reformulated(&mut self) -> Result<()> {
        let (stage, c) = match self.phase {
            Phase::Reformulate { stage, c } => (stage, c),
            _ => return Err(unexpected(self.poll(), "reformulated")),
        };
        let cand = &mut self.cands[c as usize];
        cand.guidance = GuidanceMode::ThreeWay { w: self.cfg.w };
        cand.needs_prefill = true;
        self.stats.reformulations += 1;
        self.phase = if c + 1 < self.n() {
            Phase::Reformulate { stage, c: c + 1 }
        } else {
            Phase::Gen {
                stage: stage + 1,
                c: 0,
            }
        };
        Ok(())
    }

    fn handle_score(&mut self, score: f32) -> Result<()> {
        let c = match self.phase {
            Phase::Score { c } => c,
            _ => return Err(unexpected(self.poll(), "score")),
        };
        if !score.is_finite() {
            return Err(Error::InvalidParameter {
                name: "score",
                reason: "a candidate's score must be finite",
            });
        }
        self.cands[c as usize].score = score;
        if score > self.cands[self.best as usize].score {
            self.best = c;
        }
        self.stats.scorer_calls += 1;
        self.phase = if c + 1 < self.n() {
            Phase::Score { c: c + 1 }
        } else {
            Phase::Done
        };
        Ok(())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        seq.checked_sub(self.cfg.base.seq)
            .and_then(|c| self.cands.get(c as usize))
            .map_or(&[], |c| &c.tokens)
    }

    fn result_seq(&self) -> u32 {
        self.seq(self.best)
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn dist_rows_needed(&self) -> usize {
        1
    }

    fn action_bound(&self) -> u32 {
        let n = self.n();
        let per_point = self.cfg.verifier as u32 + self.cfg.reformulate as u32;
        n.saturating_mul(self.cfg.base.tokens)
            .saturating_add(n.saturating_mul(PRUNING_POINTS as u32 * per_point))
            .saturating_add(n)
    }
}
