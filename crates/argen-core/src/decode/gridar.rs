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
//! (stage `k` generates rows `r_{k−1}..r_k`, `r₀ = 0`). Candidate `c ∈ 0..n` is an inner
//! [`Restartable`] decoder (by default [`super::Vanilla`]; [`super::Speculative`] with any
//! criterion — sd, LANTERN, GSD — or verification policy — VVS — is restartable too, and with the
//! Coupled criterion gives exactly the vanilla candidates' tokens) with sequence `base.seq + c` and
//! stream `base.stream + c` ([`candidate_config`]); GridAR stops it at each cut
//! ([`Restartable::set_stop`]) and restarts it from an anchor ([`Restartable::restart`]). The
//! candidates of a stage run in lockstep ([`Lockstep`]): all candidates waiting on the same model
//! share one batched forward ([`Action::Batch`]).
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
//! tokens are exactly those of the inner decoder run alone with the same seed and stream.
//!
//! # Token budget and accounting
//!
//! With vanilla candidates every candidate samples each of its `H·W` tokens exactly once — the
//! prefill that starts a stage produces that stage's first token in place of a target step — so
//! `stats.tokens = stats.target_forwards = n·H·W`, the budget of Best-of-N with the same `n`
//! (`target_forwards` counts per candidate; a batched forward serves all of them at once).
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
//! At most the inner decoders' action bounds (`n·H·W` forwards for vanilla; batching only
//! lowers the count) plus, per candidate, [`PRUNING_POINTS`] times the actions a restart may add
//! ([`Restartable::restart_actions`]: 0 for vanilla), `2n` checks (verifier on), `2n` reformulations (on) and `n` scores: that
//! sum is [`Decoder::action_bound`].

use super::batch::Lockstep;
use super::best_of_n::candidate_config;
use super::scoreboard::Scoreboard;
use super::{
    unexpected, Action, Check, Config, Decoder, GuidanceMode, Reformulate, Restartable, Score,
    Stats, Vanilla,
};
use crate::backend::Backend;
use crate::error::{Error, Result};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Gen { stage: u8 },
    Check { stage: u8, c: u32 },
    Reformulate { stage: u8, c: u32 },
    Score,
}

/// GridAR over up to `C` candidates of the restartable inner decoder `D` (default
/// [`Vanilla`]; [`GridAr::vanilla`] builds those).
#[derive(Clone, Debug)]
pub struct GridAr<D, const C: usize> {
    cfg: GridArConfig,
    /// Cut rows `r₁, r₂, r₃`.
    cut_rows: [u32; 3],
    set: Lockstep<D, heapless::Vec<D, C>, heapless::Vec<u32, C>>,
    /// Verdict of each candidate at the current pruning point.
    possible: [bool; C],
    /// Guidance of each candidate (three-way once reformulated).
    guidance: [GuidanceMode; C],
    phase: Phase,
    /// GridAR's own counters (verifier, reformulations); the inner decoders count the rest.
    own: Stats,
    report: GridArReport,
    board: Scoreboard<C>,
}

impl<const C: usize, const T: usize> GridAr<Vanilla<T>, C> {
    /// GridAR over vanilla candidates of up to `T` tokens (the paper's setting).
    pub fn vanilla(cfg: GridArConfig) -> Result<Self> {
        Self::new(cfg, Vanilla::new)
    }
}

impl<D: Restartable, const C: usize> GridAr<D, C> {
    /// A decoder for `cfg` whose candidates `make` builds from each candidate's configuration
    /// ([`candidate_config`]); `make` must honour the configuration's `seq` and `stream`.
    pub fn new(cfg: GridArConfig, mut make: impl FnMut(Config) -> Result<D>) -> Result<Self> {
        let base = cfg.base;
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
        base.sampler.validate(usize::MAX)?;
        // The inner decoders validate the size, the sampler and the guidance.
        let mut cands = heapless::Vec::new();
        for c in 0..cfg.n {
            let ccfg = candidate_config(&base, c)?;
            let d = make(ccfg)?;
            if d.result_seq() != ccfg.seq {
                return Err(Error::InvalidParameter {
                    name: "make",
                    reason: "the inner decoder must use the candidate's sequence id",
                });
            }
            // n <= C was checked above.
            let _ = cands.push(d);
        }
        let rows = base.tokens / base.width.max(1);
        if rows < 4 {
            return Err(Error::InvalidParameter {
                name: "tokens",
                reason: "GridAR needs a canvas of at least 4 token rows",
            });
        }
        let [r1, r2] = pruning_rows(rows);
        for d in cands.iter_mut() {
            d.set_stop(r1 * base.width)?;
        }
        Ok(GridAr {
            cfg,
            cut_rows: [r1, r2, rows],
            set: Lockstep::new(cands, heapless::Vec::new(), heapless::Vec::new()),
            possible: [true; C],
            guidance: [base.guidance; C],
            phase: Phase::Gen { stage: 0 },
            own: Stats::default(),
            report: GridArReport::default(),
            board: Scoreboard::new(cfg.n),
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
        self.board.scores().iter().copied()
    }

    /// Index of the best candidate so far (0 before any score).
    pub fn best(&self) -> u32 {
        self.board.best()
    }

    /// The candidate decoders.
    pub fn candidates(&self) -> &[D] {
        self.set.decoders()
    }

    fn n(&self) -> u32 {
        self.set.decoders().len() as u32
    }

    fn seq(&self, c: u32) -> u32 {
        self.cfg.base.seq + c
    }

    fn canvas(&self, c: u32) -> &[u32] {
        self.set.decoders()[c as usize].tokens(self.seq(c))
    }

    /// After an answer in a generation stage: once every candidate reached the cut, verify,
    /// prune, or move on.
    fn after_gen(&mut self, stage: u8) {
        if !self.set.is_done() {
            return;
        }
        if stage == 2 {
            self.phase = Phase::Score;
        } else if self.cfg.verifier {
            self.phase = Phase::Check { stage, c: 0 };
        } else {
            self.after_pruning(stage);
        }
    }

    /// Round-robin replacement of the impossible candidates (see the module doc).
    fn prune(&mut self, stage: u8) -> Result<()> {
        let n = self.n() as usize;
        let p = self.possible[..n].iter().filter(|&&x| x).count();
        let point = stage as usize;
        self.report.possible[point] += p as u32;
        if p == 0 {
            self.report.all_impossible[point] = true;
            return Ok(());
        }
        let mut j = 0;
        for dst in 0..n {
            if self.possible[dst] {
                continue;
            }
            // The (j mod p)-th possible candidate; possible candidates are never overwritten.
            let src = (0..n)
                .filter(|&i| self.possible[i])
                .nth(j % p)
                .unwrap_or(dst);
            j += 1;
            let guidance = self.guidance[dst];
            let base = self.cfg.base.seq;
            self.set.update(|ds| {
                let (from, to) = if src < dst {
                    let (l, r) = ds.split_at_mut(dst);
                    (&l[src], &mut r[0])
                } else {
                    let (l, r) = ds.split_at_mut(src);
                    (&r[0], &mut l[dst])
                };
                to.restart(from.tokens(base + src as u32), guidance)
            })?;
            self.report.replaced[point] += 1;
        }
        Ok(())
    }

    /// After the (optional) pruning at the end of `stage`: reformulate, or grow.
    fn after_pruning(&mut self, stage: u8) {
        if self.cfg.reformulate {
            self.phase = Phase::Reformulate { stage, c: 0 };
        } else {
            self.grow(stage + 1);
        }
    }

    /// Starts generation stage `stage`: raise every candidate's stop to the stage's cut and
    /// count the anchor prefills it will run.
    fn grow(&mut self, stage: u8) {
        let cut = self.cut_rows[stage as usize] * self.cfg.base.width;
        for (c, d) in self.set.decoders().iter().enumerate() {
            if let Action::Prefill(p) = d.poll() {
                let k = p.tokens.len() as u32;
                if k > 0 {
                    self.report.anchor_prefills += 1;
                    self.report.anchor_tokens += k;
                    self.report.anchor_rows += k * self.guidance[c].variants() as u32;
                }
            }
        }
        // Every candidate stopped at the previous cut, which lies below this one.
        let _ = self.set.update(|ds| {
            for d in ds.iter_mut() {
                d.set_stop(cut)?;
            }
            Ok::<(), Error>(())
        });
        self.phase = Phase::Gen { stage };
    }
}

impl<D: Restartable, const C: usize> Decoder for GridAr<D, C> {
    fn poll(&self) -> Action<'_> {
        match self.phase {
            Phase::Gen { .. } => self.set.poll(),
            Phase::Check { stage, c } => Action::Check(Check {
                seq: self.seq(c),
                rows: self.cut_rows[stage as usize],
                tokens: self.canvas(c),
            }),
            Phase::Reformulate { stage, c } => Action::Reformulate(Reformulate {
                seq: self.seq(c),
                rows: self.cut_rows[stage as usize],
                tokens: self.canvas(c),
            }),
            Phase::Score => match self.board.next() {
                Some(c) => Action::Score(Score {
                    seq: self.seq(c),
                    tokens: self.canvas(c),
                }),
                None => Action::Done,
            },
        }
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        let Phase::Gen { stage } = self.phase else {
            return Err(unexpected(self.poll(), "logits").into());
        };
        let r = self.set.handle_logits(backend, logits);
        self.after_gen(stage);
        r
    }

    fn handle_verdict(&mut self, possible: bool) -> Result<()> {
        let (stage, c) = match self.phase {
            Phase::Check { stage, c } => (stage, c),
            Phase::Gen { stage } => {
                let r = self
                    .set
                    .handle_solo("verdict", |d| d.handle_verdict(possible));
                self.after_gen(stage);
                return r;
            }
            _ => return Err(unexpected(self.poll(), "verdict")),
        };
        self.possible[c as usize] = possible;
        self.own.verifier_calls += 1;
        if c + 1 < self.n() {
            self.phase = Phase::Check { stage, c: c + 1 };
        } else {
            self.prune(stage)?;
            self.after_pruning(stage);
        }
        Ok(())
    }

    fn handle_reformulated(&mut self) -> Result<()> {
        let (stage, c) = match self.phase {
            Phase::Reformulate { stage, c } => (stage, c),
            Phase::Gen { stage } => {
                let r = self
                    .set
                    .handle_solo("reformulated", |d| d.handle_reformulated());
                self.after_gen(stage);
                return r;
            }
            _ => return Err(unexpected(self.poll(), "reformulated")),
        };
        let g = GuidanceMode::ThreeWay { w: self.cfg.w };
        self.set.update(|ds| ds[c as usize].reguide(g))?;
        self.guidance[c as usize] = g;
        self.own.reformulations += 1;
        if c + 1 < self.n() {
            self.phase = Phase::Reformulate { stage, c: c + 1 };
        } else {
            self.grow(stage + 1);
        }
        Ok(())
    }

    fn handle_score(&mut self, score: f32) -> Result<()> {
        match self.phase {
            Phase::Score if self.board.next().is_some() => self.board.record(score),
            Phase::Gen { stage } => {
                let r = self.set.handle_solo("score", |d| d.handle_score(score));
                self.after_gen(stage);
                r
            }
            _ => Err(unexpected(self.poll(), "score")),
        }
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        seq.checked_sub(self.cfg.base.seq)
            .and_then(|c| self.set.decoders().get(c as usize))
            .map_or(&[], |d| d.tokens(seq))
    }

    fn result_seq(&self) -> u32 {
        self.seq(self.board.best())
    }

    fn sequences(&self) -> core::ops::Range<u32> {
        self.cfg.base.seq..self.cfg.base.seq + self.n()
    }

    fn stats(&self) -> Stats {
        let mut s = self.own;
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
        let n = self.n();
        let per_point = self.cfg.verifier as u32 + self.cfg.reformulate as u32;
        let restarts = PRUNING_POINTS as u32;
        self.set
            .decoders()
            .iter()
            .fold(0u32, |acc, d| {
                acc.saturating_add(d.action_bound())
                    .saturating_add(restarts.saturating_mul(d.restart_actions()))
            })
            .saturating_add(n.saturating_mul(PRUNING_POINTS as u32 * per_point))
            .saturating_add(n)
    }
}
