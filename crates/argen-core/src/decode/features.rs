//! The EAGLE feature store: which hidden-state row answers each [`FeatureRef`].
//!
//! EAGLE drafters (Li et al. 2024, EAGLE; EAGLE-2) read, with each token, a *feature*: the
//! target's last hidden state at the input that predicted the token, or the drafter's own output
//! state at a draft entry. Decoders name features abstractly ([`FeatureRef`]); a host must keep the
//! states the names refer to, per sequence and guidance variant, and follow the protocol's
//! KV-cache rules to know which state a name means at any moment. That bookkeeping is the same
//! for every host, so it lives here, once.
//!
//! The store **never touches feature data**: it hands out *row indices* into a buffer of
//! `rows() × dim` values that the host owns — host memory (`argen_model::ModelHost`), device
//! memory, or tags in a test host — and the host writes the hidden states of each forward into
//! the rows the store names and reads the rows [`FeatureStore::resolve`] names. So the rows may
//! live wherever the host's model does.
//!
//! # What a row means
//!
//! Per sequence and variant `v` (cond, uncond, reformulated; at most [`VARIANTS`]):
//!
//! * [`FeatureRef::Condition`]: the target's state at the last condition position of the last
//!   [`Prefill`](super::Prefill) ([`FeatureStore::condition_row`]);
//! * [`FeatureRef::Target`]`(i)`: the state of the *committed* input at raster index `i`: an input
//!   teacher-forced by a prefill ([`FeatureStore::committed_row`]) or one a later `keep` committed;
//! * [`FeatureRef::LastTarget`]`(k)`: the state of input `k` of the most recent target run
//!   ([`FeatureStore::last_row`]), committed or not;
//! * [`FeatureRef::Draft`]`(e)`: the drafter's state at entry `e` of the current drafting step
//!   ([`FeatureStore::entry_row`]), for entries added so far.
//!
//! # Protocol events
//!
//! | event | call |
//! |---|---|
//! | prefill (with `n` teacher-forced tokens) | [`FeatureStore::prefill`]; write the condition and committed rows |
//! | target run: its `keep` | [`FeatureStore::keep`] (before the run) |
//! | target run: its inputs | [`FeatureStore::target_run`]; write the last-run rows |
//! | drafter run with `new_step` | [`FeatureStore::new_draft_step`] |
//! | drafter forward of `m` inputs | resolve their features, run, [`FeatureStore::add_entries`]; write the entry rows |
//!
//! A `keep` *moves* rows (the committed input's row index becomes the last run's row index), so
//! committing never copies feature data; rows of dropped inputs, replaced steps and reset
//! sequences return to a free list, and [`FeatureStore::rows`] (the buffer size a host must hold)
//! only grows to the peak number of live rows.
//!
//! Every call validates its arguments against the bookkeeping and fails with a typed
//! [`Error::InvalidParameter`] without changing anything.

use alloc::vec::Vec;

use super::protocol::FeatureRef;
use crate::error::{Error, Result};

/// Guidance variants a sequence can have (cond, uncond, reformulated).
pub const VARIANTS: usize = 3;

/// No row.
const NONE: u32 = u32::MAX;

/// The rows of one sequence.
#[derive(Clone, Debug, Default)]
struct SeqRows {
    /// Condition rows per variant.
    cond: [u32; VARIANTS],
    /// Committed rows, `[index][variant]` (`NONE` where absent).
    committed: Vec<u32>,
    /// Committed raster indices with features: `0 .. committed_len`.
    committed_len: u32,
    /// Raster index of each input of the last target run.
    last_index: Vec<u32>,
    /// Rows of the last target run, `[input][variant]`.
    last: Vec<u32>,
    /// Variants of the last target run.
    last_variants: u32,
    /// Rows of the current drafting step's entries, `[entry][variant]`.
    entries: Vec<u32>,
}

/// Maps the [`FeatureRef`]s of any number of sequences to rows of a host-owned buffer (module
/// docs).
#[derive(Clone, Debug)]
pub struct FeatureStore {
    seqs: Vec<SeqRows>,
    /// Image tokens per sequence.
    tokens: u32,
    /// Rows handed out so far (the buffer size a host must hold).
    rows: u32,
    /// Released rows.
    free: Vec<u32>,
}

fn bad(name: &'static str, reason: &'static str) -> Error {
    Error::InvalidParameter { name, reason }
}

fn variant(var: usize) -> Result<usize> {
    if var >= VARIANTS {
        return Err(bad("variant", "guidance variant beyond reformulated"));
    }
    Ok(var)
}

impl FeatureStore {
    /// A store for sequences `0 .. seqs` of images of `tokens` tokens.
    pub fn new(seqs: usize, tokens: u32) -> Self {
        let seq = SeqRows {
            cond: [NONE; VARIANTS],
            committed: alloc::vec![NONE; tokens as usize * VARIANTS],
            ..Default::default()
        };
        FeatureStore {
            seqs: alloc::vec![seq; seqs],
            tokens,
            rows: 0,
            free: Vec::new(),
        }
    }

    /// Rows the host's buffer must hold: every row index handed out is below this.
    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    /// Number of sequences.
    pub fn sequences(&self) -> usize {
        self.seqs.len()
    }

    /// Image tokens per sequence.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    fn seq(&self, seq: u32) -> Result<&SeqRows> {
        self.seqs
            .get(seq as usize)
            .ok_or(bad("seq", "sequence beyond the feature store"))
    }

    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(r) => r,
            None => {
                self.rows += 1;
                self.rows - 1
            }
        }
    }

    fn release(free: &mut Vec<u32>, rows: &mut [u32]) {
        for r in rows.iter_mut() {
            if *r != NONE {
                free.push(*r);
                *r = NONE;
            }
        }
    }

    /// A [`Prefill`](super::Prefill) of sequence `seq` with `variants` guidance variants and
    /// `tokens` teacher-forced image tokens: every row of the sequence is released, then it gets
    /// a condition row per variant and a committed row per token and variant.
    pub fn prefill(&mut self, seq: u32, variants: usize, tokens: u32) -> Result<()> {
        self.seq(seq)?;
        if variants == 0 || variants > VARIANTS {
            return Err(bad("variants", "a prefill runs 1 to 3 guidance variants"));
        }
        if tokens > self.tokens {
            return Err(bad("tokens", "prefill longer than the image"));
        }
        let free = &mut self.free;
        let st = &mut self.seqs[seq as usize];
        Self::release(free, &mut st.cond);
        Self::release(free, &mut st.committed);
        Self::release(free, &mut st.last);
        Self::release(free, &mut st.entries);
        st.last.clear();
        st.last_index.clear();
        st.last_variants = 0;
        st.entries.clear();
        st.committed_len = tokens;
        for var in 0..variants {
            let r = self.alloc();
            self.seqs[seq as usize].cond[var] = r;
        }
        for i in 0..tokens as usize {
            for var in 0..variants {
                let r = self.alloc();
                self.seqs[seq as usize].committed[i * VARIANTS + var] = r;
            }
        }
        Ok(())
    }

    /// The `keep` of a target run of sequence `seq`: the listed inputs of the last target run
    /// become committed at their raster indices (their rows move; nothing is copied), every
    /// other input of that run is dropped. The last run is empty afterwards.
    pub fn keep(&mut self, seq: u32, keep: &[u32]) -> Result<()> {
        let st = self.seq(seq)?;
        let n = st.last_index.len();
        for (j, &k) in keep.iter().enumerate() {
            if k as usize >= n {
                return Err(bad("keep", "index beyond the last target run"));
            }
            if keep[..j].contains(&k) {
                return Err(bad("keep", "an input kept twice"));
            }
            if st.last_index[k as usize] >= self.tokens {
                return Err(bad("keep", "a kept input beyond the image"));
            }
        }
        let free = &mut self.free;
        let st = &mut self.seqs[seq as usize];
        for &k in keep {
            let index = st.last_index[k as usize] as usize;
            for var in 0..VARIANTS {
                let dst = &mut st.committed[index * VARIANTS + var];
                let src = &mut st.last[k as usize * VARIANTS + var];
                if *src != NONE {
                    if *dst != NONE {
                        free.push(*dst);
                    }
                    *dst = *src;
                    *src = NONE;
                }
            }
            st.committed_len = st.committed_len.max(index as u32 + 1);
        }
        Self::release(free, &mut st.last);
        st.last.clear();
        st.last_index.clear();
        Ok(())
    }

    /// A target run of sequence `seq` over inputs at raster `indices` with `variants` guidance
    /// variants (after its [`FeatureStore::keep`]): each input gets a row per variant.
    pub fn target_run(
        &mut self,
        seq: u32,
        indices: impl ExactSizeIterator<Item = u32> + Clone,
        variants: usize,
    ) -> Result<()> {
        self.seq(seq)?;
        if variants == 0 || variants > VARIANTS {
            return Err(bad(
                "variants",
                "a target run runs 1 to 3 guidance variants",
            ));
        }
        if indices.clone().any(|i| i >= self.tokens) {
            return Err(bad("index", "a target input beyond the image"));
        }
        let n = indices.len();
        let free = &mut self.free;
        let st = &mut self.seqs[seq as usize];
        Self::release(free, &mut st.last);
        st.last.clear();
        st.last.resize(n * VARIANTS, NONE);
        st.last_index.clear();
        st.last_index.extend(indices);
        st.last_variants = variants as u32;
        for k in 0..n {
            for var in 0..variants {
                let r = self.alloc();
                self.seqs[seq as usize].last[k * VARIANTS + var] = r;
            }
        }
        Ok(())
    }

    /// A drafter run of sequence `seq` with `new_step`: the entries of the previous step are
    /// released and numbering starts again at 0.
    pub fn new_draft_step(&mut self, seq: u32) -> Result<()> {
        self.seq(seq)?;
        let free = &mut self.free;
        let st = &mut self.seqs[seq as usize];
        Self::release(free, &mut st.entries);
        st.entries.clear();
        Ok(())
    }

    /// Draft entries of sequence `seq` whose states a drafter forward of `count` inputs with
    /// `variants` variants produced; returns the first one's number (they are numbered on).
    pub fn add_entries(&mut self, seq: u32, count: usize, variants: usize) -> Result<u32> {
        self.seq(seq)?;
        if variants == 0 || variants > VARIANTS {
            return Err(bad(
                "variants",
                "a drafter run runs 1 to 3 guidance variants",
            ));
        }
        let first = self.seqs[seq as usize].entries.len() / VARIANTS;
        self.seqs[seq as usize]
            .entries
            .resize((first + count) * VARIANTS, NONE);
        for e in first..first + count {
            for var in 0..variants {
                let r = self.alloc();
                self.seqs[seq as usize].entries[e * VARIANTS + var] = r;
            }
        }
        Ok(first as u32)
    }

    /// Entries of `seq`'s current drafting step so far.
    pub fn entry_count(&self, seq: u32) -> Result<u32> {
        Ok((self.seq(seq)?.entries.len() / VARIANTS) as u32)
    }

    /// The row of the condition feature of `seq`, variant `var` (written after a prefill).
    pub fn condition_row(&self, seq: u32, var: usize) -> Result<u32> {
        let r = self.seq(seq)?.cond[variant(var)?];
        if r == NONE {
            return Err(bad(
                "feature",
                "no condition feature (prefill this variant first)",
            ));
        }
        Ok(r)
    }

    /// The row of the committed input at raster `index` of `seq`, variant `var`.
    pub fn committed_row(&self, seq: u32, index: u32, var: usize) -> Result<u32> {
        let st = self.seq(seq)?;
        let var = variant(var)?;
        if index >= st.committed_len {
            return Err(bad(
                "feature",
                "Target feature of an index not committed yet",
            ));
        }
        match st.committed[index as usize * VARIANTS + var] {
            NONE => Err(bad(
                "feature",
                "Target feature of a variant that was not run",
            )),
            r => Ok(r),
        }
    }

    /// The row of input `k` of the last target run of `seq`, variant `var`.
    pub fn last_row(&self, seq: u32, k: u32, var: usize) -> Result<u32> {
        let st = self.seq(seq)?;
        let var = variant(var)?;
        match st.last.get(k as usize * VARIANTS + var) {
            Some(&r) if r != NONE => Ok(r),
            _ => Err(bad(
                "feature",
                "LastTarget feature beyond the last target run",
            )),
        }
    }

    /// The row of draft entry `e` of `seq`'s current step, variant `var`.
    pub fn entry_row(&self, seq: u32, e: u32, var: usize) -> Result<u32> {
        let st = self.seq(seq)?;
        let var = variant(var)?;
        match st.entries.get(e as usize * VARIANTS + var) {
            Some(&r) if r != NONE => Ok(r),
            _ => Err(bad(
                "feature",
                "Draft feature of an entry that does not exist yet",
            )),
        }
    }

    /// The row holding feature `f` of sequence `seq`, variant `var`.
    pub fn resolve(&self, seq: u32, f: FeatureRef, var: usize) -> Result<u32> {
        match f {
            FeatureRef::Condition => self.condition_row(seq, var),
            FeatureRef::Target(i) => self.committed_row(seq, i, var),
            FeatureRef::LastTarget(k) => self.last_row(seq, k, var),
            FeatureRef::Draft(e) => self.entry_row(seq, e, var),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row contents of a fake host: what produced each row.
    fn write(
        buf: &mut Vec<(char, u32, usize)>,
        store: &FeatureStore,
        row: u32,
        v: (char, u32, usize),
    ) {
        buf.resize(store.rows(), ('?', 0, 0));
        buf[row as usize] = v;
    }

    #[test]
    fn keep_moves_rows_and_the_free_list_bounds_the_buffer() {
        let mut s = FeatureStore::new(2, 16);
        let mut buf = Vec::new();
        s.prefill(1, 2, 3).unwrap();
        for var in 0..2 {
            let r = s.condition_row(1, var).unwrap();
            write(&mut buf, &s, r, ('c', 0, var));
            for i in 0..3 {
                let r = s.committed_row(1, i, var).unwrap();
                write(&mut buf, &s, r, ('t', i, var));
            }
        }
        assert!(s.committed_row(1, 3, 0).is_err());
        assert!(s.condition_row(1, 2).is_err(), "variant not prefilled");
        assert!(s.condition_row(0, 0).is_err(), "sequence not prefilled");
        let peak = s.rows();
        for step in 0..20u32 {
            let base = 3 + step;
            s.keep(1, if step == 0 { &[] } else { &[0] }).unwrap();
            s.target_run(1, [base, base + 1, base + 1].into_iter(), 2)
                .unwrap_or_else(|_| panic!("{base}"));
            for k in 0..3 {
                for var in 0..2 {
                    let r = s.last_row(1, k, var).unwrap();
                    write(&mut buf, &s, r, ('l', base * 10 + k, var));
                }
            }
            // The feature that predicted index base + 1 is input 0's state.
            let r = s.resolve(1, FeatureRef::LastTarget(0), 1).unwrap();
            assert_eq!(buf[r as usize], ('l', base * 10, 1));
            if base + 2 >= 16 {
                break;
            }
        }
        // Rows of dropped inputs are reused: the buffer never exceeds the live rows' peak
        // (conditions, every committed index, one run of 3 inputs; 2 variants each).
        assert!(
            peak < s.rows() && s.rows() <= 2 * (1 + 16 + 3),
            "{} rows",
            s.rows()
        );
    }

    #[test]
    fn committed_features_follow_their_inputs() {
        let mut s = FeatureStore::new(1, 8);
        s.prefill(0, 1, 0).unwrap();
        assert!(s.resolve(0, FeatureRef::Target(0), 0).is_err());
        s.target_run(0, [0u32, 1, 1].into_iter(), 1).unwrap();
        let (a, c) = (s.last_row(0, 0, 0).unwrap(), s.last_row(0, 2, 0).unwrap());
        // Inputs 0 and 2 (a tree: 2 is the accepted child at index 1) are kept.
        assert!(s.keep(0, &[0, 3]).is_err());
        assert!(s.keep(0, &[0, 0]).is_err());
        assert_eq!(
            s.last_row(0, 0, 0).unwrap(),
            a,
            "a rejected keep changes nothing"
        );
        s.keep(0, &[0, 2]).unwrap();
        assert_eq!(s.resolve(0, FeatureRef::Target(0), 0).unwrap(), a);
        assert_eq!(s.resolve(0, FeatureRef::Target(1), 0).unwrap(), c);
        assert!(s.resolve(0, FeatureRef::LastTarget(0), 0).is_err());
        assert!(s.resolve(0, FeatureRef::Target(2), 0).is_err());
        // Draft entries, numbered across the step's runs.
        s.new_draft_step(0).unwrap();
        assert_eq!(s.add_entries(0, 2, 1).unwrap(), 0);
        assert_eq!(s.add_entries(0, 3, 1).unwrap(), 2);
        assert!(s.resolve(0, FeatureRef::Draft(4), 0).is_ok());
        assert!(s.resolve(0, FeatureRef::Draft(5), 0).is_err());
        s.new_draft_step(0).unwrap();
        assert!(s.resolve(0, FeatureRef::Draft(0), 0).is_err());
        // A prefill releases everything of the sequence.
        s.prefill(0, 3, 2).unwrap();
        assert!(s.resolve(0, FeatureRef::Target(1), 2).is_ok());
        assert!(s.resolve(0, FeatureRef::Target(2), 0).is_err());
        assert!(s.prefill(0, 1, 9).is_err());
        assert!(s.target_run(0, [8u32].into_iter(), 1).is_err());
    }
}
