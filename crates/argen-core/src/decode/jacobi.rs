//! Speculative Jacobi decoding (SJD): parallel refinement of a token window, no drafter.
//!
//! Teng, Shi, Liu, Ning, Dai, Wang, Li, Liu, *Accelerating Auto-regressive Text-to-Image
//! Generation with Training-free Speculative Jacobi Decoding* (ICLR 2025, arXiv 2410.01699);
//! official code `tyshiwo1/Accelerating-T2I-AR-with-SJD`, `scheduler/jacobi_iteration_*.py`.
//! The paper reports about 2× fewer model steps than vanilla decoding.
//!
//! A window of `L` (default 16) draft tokens `w_t … w_{t+L−1}` follows the `t` committed tokens.
//! Each *Jacobi iteration* `j` is one target run over the chain `[c_{t−1}, w_t, …, w_{t+L−1}]`,
//! giving the conditionals `p_j(· | c, w_t … w_{i−1})` at every window position `i` and one past
//! it. Draft `w_i` was drawn from a distribution `q_i` — the previous iteration's conditional
//! `p_{j−1}` at `i`, or an initialisation row — and is tested left to right:
//!
//! * accept `w_i` with probability `min(1, p_j(w_i) / q_i(w_i))`;
//! * at the first rejection, commit a draw from the residual `norm(max(p_j − q_i, 0))` and stop;
//! * if the whole window is accepted, commit a draw from `p_j` one past it.
//!
//! This is [`Backend::verify_tree`] on a chain in *sampled* mode whose draft rows are the `q_i`:
//! speculative sampling position by position, so with [`Criterion::Exact`] every committed token
//! is distributed exactly as vanilla decoding's conditional (each `q_i` is fixed before the
//! iteration's acceptance randomness and independent of it). Each iteration commits at least one
//! token.
//!
//! **Next window** (the official code's `prefix_matching_next_tokens` and
//! `prepare_inputs_for_generation_jacobi`): after `a` acceptances at positions `t … t+a−1` and the
//! committed token at `t+a`, the positions `t+a+1 … t+L` keep a fresh draw from this iteration's
//! conditional `p_j` there (conditioned on the drafted, possibly rejected prefix) with `q = p_j`;
//! the window is then filled up to `L` with newly *initialised* positions ([`JacobiInit`]):
//!
//! * [`JacobiInit::Random`]: a token uniform over the vocabulary; `q` is the uniform row;
//! * [`JacobiInit::CopyLeft`] (the official `horizon-repeat` scheme): a copy of the token to its
//!   left (the previous window token, or `c_{t−1}`), `q` the one-hot row of that token; a
//!   position in the first column of the image has no left neighbour and is initialised as in
//!   `Random`.
//!
//! The prefill commits token 0 (vanilla's draw) and the first window is initialised entirely. At
//! the end of the image the window shrinks to `min(L, N − t − 1)` positions, so an iteration never
//! commits past `N`; a window of 0 positions is a vanilla step.
//!
//! *Deviation from the official code:* it scores every freshly initialised token with a one-hot
//! row (accept with probability `p_j(x)`), also for uniformly random tokens. Both rules are
//! exact; argen scores a random token with the distribution it was actually drawn from (the
//! uniform row), which accepts it with `min(1, V·p_j(x))` — never less often.
//!
//! # Keys
//!
//! With `j` the number of target iterations already answered (the iteration that will test the
//! token), the window token at raster index `i` is drawn with
//! * `(seed, stream, JACOBI_INIT, i, j)` — uniform initialisation, and every re-draw from
//!   `p_{j−1}` — so that no two draws share a key (a shared key would correlate a draft with
//!   the earlier iteration that produced its `q` and break exactness);
//! * except with [`Criterion::Coupled`], whose re-draws from `p_{j−1}` use vanilla's key
//!   `(seed, stream, SAMPLE, i, 0)`: Coupled commits vanilla's tokens whatever the drafts, and
//!   drawing drafts with vanilla's key makes the window converge to vanilla's tokens as in
//!   deterministic Jacobi decoding (a position whose prefix is already right is accepted).
//!
//! Acceptance tests, residual and bonus draws use the [`crate::accept`] keys at the position
//! decided; every position is tested at most once. With the Coupled criterion the output is
//! token-for-token that of [`super::Vanilla`] for the same seed.
//!
//! # Rows and bounds
//!
//! Distribution rows form two banks of `2·T` rows; iteration `j` processes its `L + 1` target rows
//! into bank `j mod 2` (rows `0 … L`), and the next window's draft rows are the still-unconsumed
//! rows of that bank followed by the initialisation rows written right after them (rows
//! `a + 1 … a + L ≤ 2L`), so nothing is copied. Needs `4·T` rows and `T ≥ L + 1`. Decoding takes
//! at most `N` target passes: [`Decoder::action_bound`] is `N + 1` actions.

use super::{
    check_dist_rows, check_rows, unexpected, Action, Config, Decoder, Input, Prefill, Stats,
    TargetRun,
};
use crate::accept::{Criterion, NodeKeys};
use crate::backend::{Backend, DraftTree, Fill, ProcessJob, SampleJob, TreeJob, ROOT};
use crate::error::{Error, Result};
use crate::rng::{Key, Purpose};

/// How newly entering window positions are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum JacobiInit {
    /// Uniformly random token; draft row uniform.
    Random,
    /// Copy of the left neighbour; draft row one-hot (first column: as `Random`).
    CopyLeft,
}

/// Settings of [`Jacobi`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JacobiConfig {
    /// Shared settings (target sampling, guidance, size, seed).
    pub base: Config,
    /// Window length `L >= 1` (paper: 16); at most `T − 1`.
    pub window: u32,
    /// Initialisation of new window positions.
    pub init: JacobiInit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Prefill,
    Iterate,
    Done,
}

/// Speculative Jacobi decoding of up to `N` tokens with windows of up to `T − 1` tokens. Needs
/// `4·T` distribution rows.
#[derive(Clone, Debug)]
pub struct Jacobi<'c, const N: usize, const T: usize> {
    cfg: JacobiConfig,
    criterion: Criterion<'c>,
    phase: Phase,
    tokens: heapless::Vec<u32, N>,
    stats: Stats,
    /// Keep list of the pending target run.
    keep: heapless::Vec<u32, T>,
    /// Inputs of the pending target run: `[c_{t−1}, window…]`.
    inputs: heapless::Vec<Input, T>,
    /// Draft row of window slot 0 (slot `s` uses `draft_base + s`).
    draft_base: u32,
    /// Bank the pending target run is processed into.
    bank: u32,
    /// Target iterations answered.
    iteration: u32,
}

impl<'c, const N: usize, const T: usize> Jacobi<'c, N, T> {
    /// A decoder for `cfg` verifying with `criterion`.
    pub fn new(cfg: JacobiConfig, criterion: Criterion<'c>) -> Result<Self> {
        cfg.base.validate(N)?;
        if cfg.window == 0 || cfg.window as usize >= T {
            return Err(Error::InvalidParameter {
                name: "window",
                reason: "must be between 1 and T − 1",
            });
        }
        Ok(Jacobi {
            cfg,
            criterion,
            phase: Phase::Prefill,
            tokens: heapless::Vec::new(),
            stats: Stats::default(),
            keep: heapless::Vec::new(),
            inputs: heapless::Vec::new(),
            draft_base: 0,
            bank: 0,
            iteration: 0,
        })
    }

    /// The criterion.
    pub fn criterion(&self) -> &Criterion<'c> {
        &self.criterion
    }

    fn t(&self) -> u32 {
        self.tokens.len() as u32
    }

    fn bank_base(bank: u32) -> u32 {
        bank * 2 * T as u32
    }

    fn process_rows<B: Backend>(
        &self,
        backend: &mut B,
        logits: &B::Logits,
        inputs: u32,
        out_base: u32,
    ) -> Result<(), B::Error> {
        let g = self.cfg.base.guidance;
        let v = g.variants() as u32;
        let mut batch: heapless::Vec<ProcessJob, 16> = heapless::Vec::new();
        for i in 0..inputs {
            let job = ProcessJob {
                rows: g.rows(i * v),
                params: self.cfg.base.sampler,
                out: out_base + i,
            };
            if batch.push(job).is_err() {
                backend.process(logits, &batch)?;
                batch.clear();
                let _ = batch.push(job);
            }
        }
        backend.process(logits, &batch)
    }

    /// Sets up the next iteration after a commit: the window's first `avail` positions draw from
    /// the unconsumed target rows starting at `avail_base`, the others are initialised in the
    /// rows that follow.
    fn next_window<B: Backend>(
        &mut self,
        backend: &mut B,
        avail_base: u32,
        avail: u32,
    ) -> Result<(), B::Error> {
        let t = self.t();
        let b = self.cfg.base;
        if t >= b.tokens {
            self.phase = Phase::Done;
            return Ok(());
        }
        let w = self.cfg.window.min(b.tokens - t - 1);
        let tail = avail.min(w);
        let j = self.iteration;
        let vanilla_keys = self.criterion.rule().vanilla_keys();
        let redraw_key = |i: u32| {
            if vanilla_keys {
                Key::new(b.seed, b.stream, Purpose::SAMPLE, i)
            } else {
                Key::new(b.seed, b.stream, Purpose::JACOBI_INIT, i).with_token(j)
            }
        };
        let init_key = |i: u32| Key::new(b.seed, b.stream, Purpose::JACOBI_INIT, i).with_token(j);
        let mut out = [0u32; T];
        // Re-draws from the previous iteration's conditionals, in one batch.
        let mut jobs: heapless::Vec<SampleJob, T> = heapless::Vec::new();
        for s in 0..tail {
            let _ = jobs.push(SampleJob {
                row: avail_base + s,
                key: redraw_key(t + s),
            });
        }
        backend.sample(&jobs, &mut out[..jobs.len()])?;
        // Initialisation of the positions entering the window.
        jobs.clear();
        for s in tail..w {
            let (row, i) = (avail_base + s, t + s);
            let copy = self.cfg.init == JacobiInit::CopyLeft && i % b.width != 0;
            if copy {
                let left = if s == 0 {
                    self.tokens[t as usize - 1]
                } else {
                    out[s as usize - 1]
                };
                backend.fill_dist(row, Fill::OneHot(left))?;
                out[s as usize] = left;
            } else {
                backend.fill_dist(row, Fill::Uniform)?;
                let job = SampleJob {
                    row,
                    key: init_key(i),
                };
                if self.cfg.init == JacobiInit::CopyLeft {
                    // Later copies depend on this draw.
                    backend.sample(&[job], &mut out[s as usize..s as usize + 1])?;
                } else {
                    let _ = jobs.push(job);
                }
            }
        }
        if !jobs.is_empty() {
            let (from, to) = (tail as usize, w as usize);
            backend.sample(&jobs, &mut out[from..to])?;
        }
        self.inputs.clear();
        let _ = self
            .inputs
            .push(Input::root(self.tokens[t as usize - 1], t - 1));
        for s in 0..w {
            let _ = self.inputs.push(Input {
                token: out[s as usize],
                index: t + s,
                parent: s,
            });
        }
        self.draft_base = avail_base;
        self.phase = Phase::Iterate;
        Ok(())
    }
}

impl<const N: usize, const T: usize> Decoder for Jacobi<'_, N, T> {
    fn poll(&self) -> Action<'_> {
        let g = self.cfg.base.guidance;
        let seq = self.cfg.base.seq;
        match self.phase {
            Phase::Prefill => Action::Prefill(Prefill {
                seq,
                tokens: &[],
                guidance: g,
            }),
            Phase::Iterate => Action::Target(TargetRun {
                seq,
                keep: &self.keep,
                inputs: &self.inputs,
                guidance: g,
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
        let rows = action
            .logits_rows()
            .ok_or_else(|| unexpected(action, "logits"))?;
        check_rows(backend, logits, rows)?;
        check_dist_rows(backend, 4 * T)?;
        let b = self.cfg.base;
        let t = self.t();
        match self.phase {
            Phase::Prefill => {
                let row = Self::bank_base(1);
                self.process_rows(backend, logits, 1, row)?;
                let key = Key::new(b.seed, b.stream, Purpose::SAMPLE, 0);
                let mut token = [0u32];
                backend.sample(&[SampleJob { row, key }], &mut token)?;
                let _ = self.tokens.push(token[0]);
                self.stats.tokens += 1;
                self.stats.prefills += 1;
                self.stats.target_forwards += 1;
                self.stats.target_rows += rows as u32;
                self.keep.clear();
                self.bank = 0;
                self.next_window(backend, row + 1, 0)?;
            }
            Phase::Iterate => {
                let n = self.inputs.len() as u32;
                let base = Self::bank_base(self.bank);
                self.process_rows(backend, logits, n, base)?;
                let w = n as usize - 1;
                let mut tokens = [0u32; T];
                let mut parents = [ROOT; T];
                for s in 0..w {
                    tokens[s] = self.inputs[s + 1].token;
                    parents[s] = if s == 0 { ROOT } else { s as u32 - 1 };
                }
                let job = TreeJob {
                    tree: DraftTree {
                        tokens: &tokens[..w],
                        parents: &parents[..w],
                    },
                    target_base: base,
                    draft_base: Some(self.draft_base),
                    keys: NodeKeys {
                        seed: b.seed,
                        stream: b.stream,
                        position: t,
                    },
                };
                let mut path = [0u32; T];
                let verdict = backend.verify_tree(&job, &self.criterion, &mut path)?;
                let a = verdict.accepted;
                self.stats.target_forwards += 1;
                self.stats.target_rows += rows as u32;
                self.stats.record_accepted(a);
                self.stats.tokens += a as u32 + 1;
                self.keep.clear();
                for k in 0..=a {
                    let _ = self.keep.push(k as u32);
                }
                for s in 1..=a {
                    let _ = self.tokens.push(self.inputs[s].token);
                }
                let _ = self.tokens.push(verdict.token);
                self.iteration += 1;
                self.bank = 1 - self.bank;
                let consumed = a as u32 + 1;
                self.next_window(backend, base + consumed, w as u32 - a as u32)?;
            }
            Phase::Done => return Err(unexpected(Action::Done, "logits").into()),
        }
        Ok(())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        if seq == self.cfg.base.seq {
            &self.tokens
        } else {
            &[]
        }
    }

    fn result_seq(&self) -> u32 {
        self.cfg.base.seq
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn dist_rows_needed(&self) -> usize {
        4 * T
    }

    fn action_bound(&self) -> u32 {
        self.cfg.base.tokens + 1
    }
}
