//! Running the forwards of several decoders as one (protocol v2).
//!
//! Two pieces, shared by every decoder that holds several sequences — [`super::BestOfN`],
//! [`super::GridAr`] and the multiplexer [`super::Mux`]:
//!
//! * [`RowWindow`] lets a decoder handle *its* rows of a batched answer as if they were the whole
//!   answer: it shifts the logit row indices of [`Backend::process`] by the window's first row and
//!   reports the window's length as [`Backend::logit_rows`]. It also gives the decoder its own
//!   range of **distribution rows** (shifting every distribution row index of `process`,
//!   `sample`, `top_k`, `verify_tree` and `fill_dist`), because decoders keep distributions
//!   between actions — a speculative decoder's draft rows live until verification, Jacobi's
//!   previous iteration until the next — and a neighbour must not overwrite them. Decoder `i`
//!   of a set owns rows `base_i .. base_i + need_i` for as long as it is in the set
//!   ([`Lockstep::dist_base`]); a set needs the sum of its decoders' rows.
//! * [`Lockstep`] schedules a set of decoders. After every answer it plans the next action:
//!
//!   1. if some live (not [`Action::Done`]) member waits on a judge — [`Action::Check`],
//!      [`Action::Score`] or [`Action::Reformulate`] — the lowest-indexed one goes alone (judges
//!      are cheap and unblock it);
//!   2. otherwise every live member waits on a forward; the model (target or drafter) with more
//!      waiting members runs (ties: the target), and **every** member waiting on it joins one
//!      forward, in index order. A member whose own action is a batch contributes all its groups.
//!
//!   A forward with a single member is that member's own action, unchanged, so a set of one
//!   behaves exactly like its decoder. The plan depends only on the members' states, so it is
//!   deterministic; and since every draw is keyed by `(seed, stream, purpose, position, token)`,
//!   no member's tokens depend on who shares its forwards (tested over mixed methods and seeds in
//!   `tests/batching.rs`).
//!
//! # Errors inside a batch
//!
//! A malformed answer (wrong row count, an answer of the wrong kind) is rejected before any
//! member sees it, and nothing changes. If a member fails while handling its window (for
//! example on a NaN logit), the members before it have already taken their rows; the plan is
//! made again, so the next [`Lockstep::poll`] asks exactly for what is still missing.

use core::marker::PhantomData;

use super::protocol::{Batch, Group, Groups, Model};
use super::{check_rows, unexpected, Action, Decoder};
use crate::backend::{Backend, ProcessJob, RowGuidance, SampleJob, TreeJob, TreeVerdict};
use crate::dist::Fill;
use crate::error::{Error, Result};
use crate::Criterion;

/// Jobs shifted per call of the inner [`Backend::process`].
const SHIFT_CHUNK: usize = 16;

/// A backend seen through a window of logit rows `first .. first + rows` and of distribution
/// rows `dist_base .. dist_base + dist_rows` (module docs).
#[derive(Debug)]
pub struct RowWindow<'b, B: Backend> {
    inner: &'b mut B,
    first: u32,
    rows: u32,
    dist_base: u32,
    dist_rows: u32,
}

impl<'b, B: Backend> RowWindow<'b, B> {
    /// The window `first .. first + rows` of `inner`'s logit rows and
    /// `dist_base .. dist_base + dist_rows` of its distribution rows.
    pub fn new(inner: &'b mut B, first: u32, rows: u32, dist_base: u32, dist_rows: u32) -> Self {
        RowWindow {
            inner,
            first,
            rows,
            dist_base,
            dist_rows,
        }
    }

    fn dist(&self, row: u32) -> Result<u32> {
        if row >= self.dist_rows {
            return Err(Error::InvalidParameter {
                name: "row",
                reason: "distribution row beyond the decoder's share of the backend",
            });
        }
        Ok(self.dist_base + row)
    }

    fn shift(&self, row: u32) -> Result<u32> {
        if row >= self.rows {
            return Err(Error::InvalidParameter {
                name: "row",
                reason: "logit row beyond the decoder's window of a batched answer",
            });
        }
        Ok(self.first + row)
    }

    fn shift_job(&self, job: &ProcessJob) -> Result<ProcessJob> {
        let rows = match job.rows {
            RowGuidance::Plain { row } => RowGuidance::Plain {
                row: self.shift(row)?,
            },
            RowGuidance::TwoWay {
                cond,
                uncond,
                scale,
            } => RowGuidance::TwoWay {
                cond: self.shift(cond)?,
                uncond: self.shift(uncond)?,
                scale,
            },
            RowGuidance::ThreeWay {
                cond,
                uncond,
                reformulated,
                w,
            } => RowGuidance::ThreeWay {
                cond: self.shift(cond)?,
                uncond: self.shift(uncond)?,
                reformulated: self.shift(reformulated)?,
                w,
            },
        };
        Ok(ProcessJob {
            rows,
            out: self.dist(job.out)?,
            ..*job
        })
    }
}

impl<B: Backend> Backend for RowWindow<'_, B> {
    type Error = B::Error;
    type Logits = B::Logits;

    fn vocab(&self) -> usize {
        self.inner.vocab()
    }

    fn logit_rows(&self, _: &B::Logits) -> usize {
        self.rows as usize
    }

    fn dist_rows(&self) -> usize {
        self.dist_rows as usize
    }

    fn process(&mut self, logits: &B::Logits, jobs: &[ProcessJob]) -> Result<(), B::Error> {
        for chunk in jobs.chunks(SHIFT_CHUNK) {
            let mut shifted: heapless::Vec<ProcessJob, SHIFT_CHUNK> = heapless::Vec::new();
            for job in chunk {
                // At most SHIFT_CHUNK jobs per chunk.
                let _ = shifted.push(self.shift_job(job)?);
            }
            self.inner.process(logits, &shifted)?;
        }
        Ok(())
    }

    fn sample(&mut self, jobs: &[SampleJob], out: &mut [u32]) -> Result<(), B::Error> {
        if out.len() < jobs.len() {
            return Err(Error::BufferTooSmall {
                needed: jobs.len(),
                found: out.len(),
            }
            .into());
        }
        for (chunk, out) in jobs.chunks(SHIFT_CHUNK).zip(out.chunks_mut(SHIFT_CHUNK)) {
            let mut shifted: heapless::Vec<SampleJob, SHIFT_CHUNK> = heapless::Vec::new();
            for job in chunk {
                let _ = shifted.push(SampleJob {
                    row: self.dist(job.row)?,
                    ..*job
                });
            }
            self.inner.sample(&shifted, &mut out[..chunk.len()])?;
        }
        Ok(())
    }

    fn top_k(&mut self, row: u32, tokens: &mut [u32], probs: &mut [f64]) -> Result<(), B::Error> {
        let row = self.dist(row)?;
        self.inner.top_k(row, tokens, probs)
    }

    fn verify_tree(
        &mut self,
        job: &TreeJob<'_>,
        criterion: &Criterion<'_>,
        path: &mut [u32],
    ) -> Result<TreeVerdict, B::Error> {
        // The tree uses rows base .. base + nodes + 1 (one per slot), and as many draft rows.
        let slots = job.tree.tokens.len() as u32;
        let last = |base: u32| self.dist(base.saturating_add(slots));
        last(job.target_base)?;
        if let Some(d) = job.draft_base {
            last(d)?;
        }
        let shifted = TreeJob {
            target_base: self.dist(job.target_base)?,
            draft_base: job.draft_base.map(|d| self.dist(d)).transpose()?,
            ..*job
        };
        self.inner.verify_tree(&shifted, criterion, path)
    }

    fn fill_dist(&mut self, row: u32, fill: Fill) -> Result<(), B::Error> {
        let row = self.dist(row)?;
        self.inner.fill_dist(row, fill)
    }
}

/// A list of member indices: `heapless::Vec` without an allocator, `Vec` with one.
pub trait IndexList {
    /// Removes every index.
    fn clear(&mut self);
    /// Appends `i`; `false` if the list is full.
    fn push_index(&mut self, i: u32) -> bool;
    /// The indices.
    fn indices(&self) -> &[u32];
}

impl<const C: usize> IndexList for heapless::Vec<u32, C> {
    fn clear(&mut self) {
        heapless::Vec::clear(self)
    }
    fn push_index(&mut self, i: u32) -> bool {
        self.push(i).is_ok()
    }
    fn indices(&self) -> &[u32] {
        self
    }
}

#[cfg(feature = "alloc")]
impl IndexList for alloc::vec::Vec<u32> {
    fn clear(&mut self) {
        alloc::vec::Vec::clear(self)
    }
    fn push_index(&mut self, i: u32) -> bool {
        self.push(i);
        true
    }
    fn indices(&self) -> &[u32] {
        self
    }
}

/// The next step of a [`Lockstep`] set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Member `i` waits on a judge.
    Solo(u32),
    /// The members in the list run one forward of this model.
    Forward(Model),
    /// Every member is done.
    Idle,
}

/// Schedules a set of decoders so that those waiting on the same model share one forward
/// (module docs). `S` stores the decoders, `M` the members of the planned forward.
#[derive(Clone, Debug)]
pub struct Lockstep<D, S, M> {
    decoders: S,
    members: M,
    /// First distribution row of each decoder.
    bases: M,
    plan: Plan,
    _decoder: PhantomData<fn() -> D>,
}

impl<D, S, M> Lockstep<D, S, M>
where
    D: Decoder,
    S: AsRef<[D]> + AsMut<[D]>,
    M: IndexList,
{
    /// A set over `decoders`, with `members` and `bases` (both empty, with room for every
    /// decoder) for the plan and the distribution rows. Decoder `i` gets the rows after those of
    /// decoders `0..i`.
    pub fn new(decoders: S, members: M, mut bases: M) -> Self {
        bases.clear();
        let mut next = 0u32;
        for d in decoders.as_ref() {
            let _ = bases.push_index(next);
            next = next.saturating_add(u32::try_from(d.dist_rows_needed()).unwrap_or(u32::MAX));
        }
        let mut set = Lockstep {
            decoders,
            members,
            bases,
            plan: Plan::Idle,
            _decoder: PhantomData,
        };
        set.replan();
        set
    }

    /// The first distribution row of decoder `i`.
    pub fn dist_base(&self, i: usize) -> u32 {
        self.bases.indices().get(i).copied().unwrap_or(0)
    }

    /// Distribution rows the backend must hold: the end of the highest decoder's share.
    pub fn dist_rows_needed(&self) -> usize {
        self.decoders
            .as_ref()
            .iter()
            .enumerate()
            .map(|(i, d)| self.dist_base(i) as usize + d.dist_rows_needed())
            .max()
            .unwrap_or(0)
    }

    /// The decoders.
    pub fn decoders(&self) -> &[D] {
        self.decoders.as_ref()
    }

    /// Changes the decoders through `f`, then plans again.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut [D]) -> R) -> R {
        let r = f(self.decoders.as_mut());
        self.replan();
        r
    }

    /// Changes the decoder storage and the distribution bases (one per decoder, kept in step)
    /// through `f`, then plans again. `f` must leave one base per decoder and the shares
    /// disjoint; a decoder's base must not change while it is in the set.
    pub fn update_storage<R>(&mut self, f: impl FnOnce(&mut S, &mut M) -> R) -> R {
        let r = f(&mut self.decoders, &mut self.bases);
        self.replan();
        r
    }

    /// Whether every decoder is done.
    pub fn is_done(&self) -> bool {
        self.plan == Plan::Idle
    }

    /// The members of the planned forward (empty unless one is planned).
    pub fn members(&self) -> &[u32] {
        match self.plan {
            Plan::Forward(_) => self.members.indices(),
            _ => &[],
        }
    }

    /// Plans the next action (module docs).
    fn replan(&mut self) {
        self.members.clear();
        let ds = self.decoders.as_ref();
        let mut waiting = [0usize; 2];
        let mut first_model = None;
        for (i, d) in ds.iter().enumerate() {
            match d.poll() {
                Action::Done => {}
                a => match a.model() {
                    Some(m) => {
                        waiting[m as usize] += 1;
                        first_model.get_or_insert(m);
                    }
                    None => {
                        self.plan = Plan::Solo(i as u32);
                        return;
                    }
                },
            }
        }
        let Some(_) = first_model else {
            self.plan = Plan::Idle;
            return;
        };
        let model = if waiting[Model::Drafter as usize] > waiting[Model::Target as usize] {
            Model::Drafter
        } else {
            Model::Target
        };
        for (i, d) in ds.iter().enumerate() {
            if d.poll().model() == Some(model) {
                // `members` has room for every decoder (documented requirement of `new`).
                let _ = self.members.push_index(i as u32);
            }
        }
        self.plan = Plan::Forward(model);
    }

    /// The next action of the set.
    pub fn poll(&self) -> Action<'_> {
        let ds = self.decoders.as_ref();
        match self.plan {
            Plan::Idle => Action::Done,
            Plan::Solo(i) => ds[i as usize].poll(),
            Plan::Forward(model) => match self.members.indices() {
                [only] => ds[*only as usize].poll(),
                _ => Action::Batch(Batch::new(model, self)),
            },
        }
    }

    /// Answers the planned forward: each member handles its window of `logits`.
    pub fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        let Plan::Forward(_) = self.plan else {
            return Err(unexpected(self.poll(), "logits").into());
        };
        let rows = self
            .poll()
            .logits_rows()
            .ok_or_else(|| unexpected(self.poll(), "logits"))?;
        check_rows(backend, logits, rows)?;
        let mut first = 0u32;
        let mut result = Ok(());
        let ds = self.decoders.as_mut();
        for &m in self.members.indices() {
            let d = &mut ds[m as usize];
            let n = d.poll().logits_rows().unwrap_or(0) as u32;
            let base = self.bases.indices().get(m as usize).copied().unwrap_or(0);
            let need = u32::try_from(d.dist_rows_needed()).unwrap_or(u32::MAX);
            if (base as usize).saturating_add(need as usize) > backend.dist_rows() {
                result = Err(Error::BufferTooSmall {
                    needed: base as usize + need as usize,
                    found: backend.dist_rows(),
                }
                .into());
                break;
            }
            let mut window = RowWindow::new(backend, first, n, base, need);
            if let Err(e) = d.handle_logits(&mut window, logits) {
                result = Err(e);
                break;
            }
            first += n;
        }
        self.replan();
        result
    }

    /// Answers the planned judge action with `f` on its decoder.
    pub fn handle_solo(
        &mut self,
        found: &'static str,
        f: impl FnOnce(&mut D) -> Result<()>,
    ) -> Result<()> {
        let Plan::Solo(i) = self.plan else {
            return Err(unexpected(self.poll(), found));
        };
        let r = f(&mut self.decoders.as_mut()[i as usize]);
        self.replan();
        r
    }
}

impl<D, S, M> Groups for Lockstep<D, S, M>
where
    D: Decoder,
    S: AsRef<[D]> + AsMut<[D]>,
    M: IndexList,
{
    fn count(&self) -> usize {
        let ds = self.decoders.as_ref();
        self.members()
            .iter()
            .map(|&m| ds[m as usize].poll().groups().count())
            .sum()
    }

    fn group(&self, mut i: usize) -> Option<Group<'_>> {
        let ds = self.decoders.as_ref();
        for &m in self.members() {
            let action = ds[m as usize].poll();
            let n = action.groups().count();
            if i < n {
                return action.groups().nth(i);
            }
            i -= n;
        }
        None
    }
}
