//! Many independent decoders, shared forwards (feature `alloc`).
//!
//! An engine that serves several images at once gives each request its own decoder — any
//! method, any seed — and lets [`Mux`] merge their actions: every decoder waiting on the same
//! model joins one batched forward ([`Action::Batch`]), and the answer's rows are routed back to
//! each decoder's window (scheduling rules in [`super::batch`]). Judge actions (check, score,
//! reformulate) go out one at a time, tagged with their sequence as always.
//!
//! Each decoder's tokens and stats are exactly those of running it alone: every random draw is
//! keyed by `(seed, stream, purpose, position, token)`, never by a shared RNG state, and a
//! decoder only ever reads its own rows (tested in `tests/batching.rs` over mixed methods and
//! seeds). The decoders must use disjoint sequence ids ([`Decoder::sequences`]); a host keeps
//! one KV-cache slot set per sequence as before.
//!
//! ```text
//! let mut mux = Mux::new();
//! mux.push(request_a)?;  mux.push(request_b)?;        // any decoders, disjoint sequences
//! while !mux.is_done() { answer mux.poll() as for any decoder }
//! for d in mux.take_done() { deliver d.tokens(d.result_seq()) }
//! ```
//!
//! Decoders may be pushed while others run (continuous batching); finished ones are taken out
//! with [`Mux::take_done`]. Each decoder keeps its own range of the backend's distribution rows
//! while it is in the set (first fit at [`Mux::push`]); [`Decoder::dist_rows_needed`] of the set
//! is the end of the highest range, which may grow when a decoder joins. As a [`Decoder`] the set reports the sum of its decoders' stats and
//! the first decoder's result sequence.

use alloc::vec::Vec;
use core::ops::Range;

use super::batch::Lockstep;
use super::{Action, Decoder, Stats};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// A set of independent decoders whose forwards are batched together (module docs).
#[derive(Clone, Debug)]
pub struct Mux<D> {
    set: Lockstep<D, Vec<D>, Vec<u32>>,
}

impl<D: Decoder> Default for Mux<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Decoder> Mux<D> {
    /// An empty set.
    pub fn new() -> Self {
        Mux {
            set: Lockstep::new(Vec::new(), Vec::new(), Vec::new()),
        }
    }

    /// Adds `decoder`; fails if its sequences overlap another decoder's. Returns its index.
    pub fn push(&mut self, decoder: D) -> Result<usize> {
        let r = decoder.sequences();
        if r.is_empty() {
            return Err(Error::InvalidParameter {
                name: "decoder",
                reason: "a decoder must own at least one sequence",
            });
        }
        if self
            .set
            .decoders()
            .iter()
            .any(|d| overlaps(&d.sequences(), &r))
        {
            return Err(Error::InvalidParameter {
                name: "decoder",
                reason: "its sequence ids overlap those of a decoder already in the set",
            });
        }
        // First fit: the lowest gap between the live decoders' distribution rows that holds it.
        let need = u32::try_from(decoder.dist_rows_needed()).unwrap_or(u32::MAX);
        let mut shares: Vec<(u32, u32)> = (0..self.set.decoders().len())
            .map(|i| {
                let base = self.set.dist_base(i);
                let n = self.set.decoders()[i].dist_rows_needed();
                (
                    base,
                    base.saturating_add(u32::try_from(n).unwrap_or(u32::MAX)),
                )
            })
            .collect();
        shares.sort_unstable();
        let mut base = 0u32;
        for &(start, end) in &shares {
            if start >= base.saturating_add(need) {
                break;
            }
            base = base.max(end);
        }
        let index = self.set.decoders().len();
        self.set.update_storage(|ds, bases| {
            ds.push(decoder);
            bases.push(base);
        });
        Ok(index)
    }

    /// The decoders, in the order they were pushed (minus those taken out).
    pub fn decoders(&self) -> &[D] {
        self.set.decoders()
    }

    /// Whether every decoder is done.
    pub fn is_done(&self) -> bool {
        self.set.is_done()
    }

    /// Removes and returns the decoders that are done, keeping the others in order (and their
    /// distribution rows where they are).
    pub fn take_done(&mut self) -> Vec<D> {
        self.set.update_storage(|ds, bases| {
            let mut done = Vec::new();
            let mut i = 0;
            while i < ds.len() {
                if ds[i].poll() == Action::Done {
                    done.push(ds.remove(i));
                    bases.remove(i);
                } else {
                    i += 1;
                }
            }
            done
        })
    }

    fn owner(&self, seq: u32) -> Option<&D> {
        self.set
            .decoders()
            .iter()
            .find(|d| d.sequences().contains(&seq))
    }
}

fn overlaps(a: &Range<u32>, b: &Range<u32>) -> bool {
    a.start < b.end && b.start < a.end
}

impl<D: Decoder> Decoder for Mux<D> {
    fn poll(&self) -> Action<'_> {
        self.set.poll()
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

    fn handle_score(&mut self, score: f32) -> Result<()> {
        self.set.handle_solo("score", |d| d.handle_score(score))
    }

    fn handle_reformulated(&mut self) -> Result<()> {
        self.set
            .handle_solo("reformulated", |d| d.handle_reformulated())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        self.owner(seq).map_or(&[], |d| d.tokens(seq))
    }

    fn result_seq(&self) -> u32 {
        self.set.decoders().first().map_or(0, |d| d.result_seq())
    }

    fn sequences(&self) -> Range<u32> {
        let ds = self.set.decoders();
        let start = ds.iter().map(|d| d.sequences().start).min().unwrap_or(0);
        let end = ds.iter().map(|d| d.sequences().end).max().unwrap_or(0);
        start..end
    }

    fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for d in self.set.decoders() {
            s.add(&d.stats());
        }
        s
    }

    fn dist_rows_needed(&self) -> usize {
        self.set.dist_rows_needed()
    }

    fn action_bound(&self) -> u32 {
        self.set
            .decoders()
            .iter()
            .fold(0u32, |acc, d| acc.saturating_add(d.action_bound()))
    }
}
