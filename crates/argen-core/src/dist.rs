//! Fixed-point probability distributions.
//!
//! A distribution over a vocabulary of `V` tokens is a row of non-negative integer **weights**
//! `w[0..V]` (`u64`) with a positive **total** `Z = Σ w` (`Z < 2^64`): token `i` has probability
//! exactly `w[i] / Z`. Processed logits carry weights on the scale [`WEIGHT_ONE`] `= 2^40` (the most
//! likely token has weight exactly `2^40`); residual distributions are rescaled to totals near
//! `2^63` ([`crate::accept`]).
//!
//! Why integers: every sum of weights is exact, so the softmax normaliser, cumulative masses for
//! top-p, acceptance ratios and residuals are the same on every backend whatever the reduction order,
//! and the distribution that a draw samples from is *exactly* the one the acceptance rules reason
//! about — which lets the tests compute each criterion's output distribution exactly.
//!
//! # Rows with a known, small support
//!
//! A truncated row usually has few positive weights (top-p 0.9 over LlamaGen's 16384 logits
//! keeps a handful), yet the row is `V` weights wide. A [`SupportList`] records, beside one
//! weight row, the ids of its positive weights in ascending order when there are at most
//! [`SUPPORT_CAP`] of them. Row processing ([`crate::process::process_tracked_with`]) then
//! clears the previous result by zeroing only those entries instead of the whole row, and a
//! [`Dist`] built by [`SupportList::dist`] draws by walking the listed ids instead of the row.
//! The dense row stays complete and exact at all times (every other consumer — acceptance
//! rules, residuals, top-k — reads it as before), and a draw returns the same token: the
//! prefix sums of the specification (`prefix(t) = Σ_{i<t} w_i`, id order) gain nothing from a
//! zero weight, so the prefix at each listed id, walked in ascending id order, is exactly the
//! dense row's, and the located token (the first `t` with `r < prefix(t + 1)`) always has a
//! positive weight, hence is listed.

use crate::error::{Error, Result};

/// Weight of the most likely token of a processed row: `2^40`.
pub const WEIGHT_ONE: u64 = 1 << 40;

/// `2^32`, the fixed-point scale of every probability-valued parameter (top-p, min-p, LANTERN's
/// `δ` and `λ − 1`, the grouped criterion's `prob_tol`): a parameter `p` becomes the integer
/// `trunc(f64(p) · 2^32)`.
pub const PROB_SCALE: f64 = 4_294_967_296.0;

/// Weights per chunk skipped at once by [`Dist::locate`].
pub const LOCATE_CHUNK: usize = 128;

/// A borrowed fixed-point distribution: weights and their (checked) total, and, when it was
/// built by [`SupportList::dist`], the ascending ids of its positive weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dist<'a> {
    weights: &'a [u64],
    total: u64,
    support: Option<&'a [u32]>,
}

impl<'a> Dist<'a> {
    /// Wraps `weights`, computing and checking the total: the row must be non-empty, its sum must
    /// fit in a `u64` and be positive.
    pub fn new(weights: &'a [u64]) -> Result<Self> {
        if weights.is_empty() {
            return Err(Error::EmptyRow);
        }
        let mut total = 0u64;
        for &w in weights {
            total = total.checked_add(w).ok_or(Error::InvalidParameter {
                name: "weights",
                reason: "total weight must be below 2^64",
            })?;
        }
        if total == 0 {
            return Err(Error::ZeroMass);
        }
        Ok(Dist {
            weights,
            total,
            support: None,
        })
    }

    /// Wraps `weights` whose total the caller has already computed (as row processing does).
    /// Checks only that `total` is positive; a wrong total makes draws return
    /// [`Error::ZeroMass`] or skew the distribution, never panic.
    pub fn with_total(weights: &'a [u64], total: u64) -> Result<Self> {
        if weights.is_empty() {
            return Err(Error::EmptyRow);
        }
        if total == 0 {
            return Err(Error::ZeroMass);
        }
        Ok(Dist {
            weights,
            total,
            support: None,
        })
    }

    /// The weights.
    pub fn weights(&self) -> &'a [u64] {
        self.weights
    }

    /// The total weight `Z`.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The ids of the positive weights in ascending order, when the distribution was built by
    /// [`SupportList::dist`] from a row whose support is listed (every other weight is 0).
    pub fn support(&self) -> Option<&'a [u32]> {
        self.support
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.weights.len()
    }

    /// Weight of `token`, or an error if it is out of range.
    pub fn weight(&self, token: u32) -> Result<u64> {
        self.weights
            .get(token as usize)
            .copied()
            .ok_or(Error::TokenOutOfRange {
                token,
                vocab: self.weights.len(),
            })
    }

    /// Probability of `token` as `f64` (rounded; the exact value is `weight / total`).
    pub fn prob(&self, token: u32) -> Result<f64> {
        Ok(self.weight(token)? as f64 / self.total as f64)
    }

    /// The token `t` with `prefix(t) <= r < prefix(t + 1)`, where `prefix` sums weights in index
    /// order (saturating at `u64::MAX`); this is the inverse-CDF step of every draw.
    ///
    /// Implementation: whole chunks of [`LOCATE_CHUNK`] weights are skipped by their exact sum
    /// ([`portable_skip_chunks`]), the prefix kept exactly in `u128`; only the chunk holding
    /// `r` is walked.
    /// The saturating prefix reaches `u64::MAX` only where the exact one does, and no `r` is
    /// below `u64::MAX` there unless it was below the exact prefix already, so the exact prefix
    /// gives the same token (and `r = u64::MAX` is never located, as with saturation).
    pub fn locate(&self, r: u64) -> Result<u32> {
        self.locate_with(&crate::process::PORTABLE, r)
    }

    /// [`Dist::locate`] with the chunk skipping of `kernels`
    /// ([`crate::RowKernels::skip_chunks`], e.g. argen-cpu's SIMD): the same token, since every
    /// implementation returns the same exact chunk prefix.
    ///
    /// With a listed support ([`Dist::support`]) only the listed weights are walked, in their
    /// (ascending id) order: the same prefixes at every positive weight, so the same token
    /// (module documentation).
    pub fn locate_with(&self, kernels: &dyn crate::RowKernels, r: u64) -> Result<u32> {
        if r == u64::MAX {
            return Err(Error::ZeroMass);
        }
        let r = r as u128;
        if let Some(ids) = self.support {
            let mut acc = 0u128;
            for &i in ids {
                // A listed id is in range (`SupportList` lists only ids of its own row); `get`
                // keeps a broken list from panicking.
                acc += self.weights.get(i as usize).copied().unwrap_or(0) as u128;
                if r < acc {
                    return Ok(i);
                }
            }
            return Err(Error::ZeroMass);
        }
        let (start, mut acc) = kernels.skip_chunks(self.weights, r);
        for (i, &w) in self.weights.iter().enumerate().skip(start) {
            acc += w as u128;
            if r < acc {
                return Ok(i as u32);
            }
        }
        Err(Error::ZeroMass)
    }
}

/// The whole chunks of [`LOCATE_CHUNK`] weights that [`Dist::locate`] skips before `r`: with
/// `S_c` the exact sum of the first `c` chunks, the first `c` with `r < S_{c+1}` (or the number
/// of whole chunks if there is none), returned as `(c · LOCATE_CHUNK, S_c)`.
///
/// A chunk's exact sum is a plain `u64` sum when every weight of the chunk is below `2^56`
/// (as processed rows' are: 128 of them sum below `2^63`), else the low and high 32-bit
/// halves summed separately; both vectorise and cannot overflow.
pub fn portable_skip_chunks(weights: &[u64], r: u128) -> (usize, u128) {
    let mut acc = 0u128;
    let mut start = 0usize;
    for ws in weights.chunks_exact(LOCATE_CHUNK) {
        // Two plain reductions (each vectorises).
        let sum = ws.iter().fold(0u64, |a, &x| a.wrapping_add(x));
        let any = ws.iter().fold(0u64, |a, &x| a | x);
        let sum = chunk_sum(ws, sum, any);
        if r < acc + sum {
            break;
        }
        acc += sum;
        start += LOCATE_CHUNK;
    }
    (start, acc)
}

/// The exact sum of one chunk of at most [`LOCATE_CHUNK`] weights (see
/// [`portable_skip_chunks`]), given its wrapping `u64` sum and the OR of its weights: the
/// wrapping sum itself when every weight is below `2^56` (then it cannot have wrapped), else
/// the low and high 32-bit halves summed separately. Shared by every `skip_chunks` kernel.
#[inline]
pub fn chunk_sum(ws: &[u64], wrapping_sum: u64, or: u64) -> u128 {
    if or < 1 << 56 {
        wrapping_sum as u128
    } else {
        let (mut lo, mut hi) = (0u64, 0u64);
        for &w in ws {
            lo += w & 0xffff_ffff;
            hi += w >> 32;
        }
        ((hi as u128) << 32) + lo as u128
    }
}

/// Most positive weights a [`SupportList`] lists.
pub const SUPPORT_CAP: usize = 64;

/// `SupportList::len` of a list that knows nothing about its row.
const UNKNOWN: u32 = u32::MAX;

/// The ids of the positive weights of one weight row, when there are at most [`SUPPORT_CAP`]
/// of them (module documentation, "Rows with a known, small support").
///
/// A list describes the row it was last recorded for (by
/// [`crate::process::process_tracked_with`]); it remembers that row's address and length, and
/// for any other row it knows nothing (full clears, dense draws: never a wrong weight). Whoever
/// writes the row by other means must call [`SupportList::forget`] first. A list never
/// allocates: the ids live inline (`SUPPORT_CAP` `u32`s).
#[derive(Clone, Debug)]
pub struct SupportList {
    /// Number of listed ids, or [`UNKNOWN`].
    len: u32,
    /// Address and length of the described row.
    row: (usize, usize),
    /// The listed ids, ascending, in `ids[..len]`.
    ids: [u32; SUPPORT_CAP],
}

impl Default for SupportList {
    fn default() -> Self {
        Self::new()
    }
}

impl SupportList {
    /// A list that knows nothing about any row.
    pub const fn new() -> Self {
        SupportList {
            len: UNKNOWN,
            row: (0, 0),
            ids: [0; SUPPORT_CAP],
        }
    }

    /// Forgets the row (call it before writing the row other than through the processing that
    /// records the list).
    pub fn forget(&mut self) {
        self.len = UNKNOWN;
    }

    /// The listed ids (ascending) if the list describes `row`: then every weight of `row`
    /// outside them is 0.
    pub fn ids_for(&self, row: &[u64]) -> Option<&[u32]> {
        (self.len != UNKNOWN && self.row == (row.as_ptr() as usize, row.len()))
            .then(|| &self.ids[..self.len as usize])
    }

    /// The distribution of `weights` with total `total` ([`Dist::with_total`]), drawing over
    /// the listed ids when the list describes `weights` (the same tokens, faster).
    pub fn dist<'a>(&'a self, weights: &'a [u64], total: u64) -> Result<Dist<'a>> {
        let mut d = Dist::with_total(weights, total)?;
        d.support = self.ids_for(weights);
        Ok(d)
    }

    /// Zeroes `row` — only the listed entries when the list describes it, else every entry —
    /// and forgets it. `row` must be the row the list will describe afterwards.
    pub(crate) fn clear(&mut self, row: &mut [u64]) {
        match self.ids_for(row) {
            Some(ids) => {
                for &i in ids {
                    if let Some(w) = row.get_mut(i as usize) {
                        *w = 0;
                    }
                }
            }
            None => row.fill(0),
        }
        self.len = UNKNOWN;
    }

    /// Whether the list describes `row` (see [`SupportList::ids_for`]).
    pub(crate) fn describes(&self, row: &[u64]) -> bool {
        self.ids_for(row).is_some()
    }

    /// Records the support of `row` from `ids`, which must hold every id of a positive weight
    /// of `row` (and may hold ids of zero weights and repeat none): lists the positive ones in
    /// ascending order if there are at most [`SUPPORT_CAP`], else forgets.
    pub(crate) fn record(&mut self, row: &[u64], ids: &[u32]) {
        self.len = UNKNOWN;
        let mut n = 0usize;
        for &i in ids {
            if row.get(i as usize).is_some_and(|&w| w > 0) {
                if n == SUPPORT_CAP {
                    return;
                }
                self.ids[n] = i;
                n += 1;
            }
        }
        self.ids[..n].sort_unstable();
        self.row = (row.as_ptr() as usize, row.len());
        self.len = n as u32;
    }
}

/// A synthetic distribution row written by [`crate::Backend::fill_dist`] (Jacobi decoding's draft
/// rows: the distribution a window token was initialised from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Fill {
    /// Every token has weight [`WEIGHT_ONE`]: uniform over the vocabulary.
    Uniform,
    /// Only this token has weight (exactly [`WEIGHT_ONE`]): a point mass.
    OneHot(u32),
}

/// Writes `fill` into `weights` and returns the row total: `V · 2^40` (uniform) or `2^40`
/// (one-hot). Errors if the row is empty, the one-hot token is out of range, or the vocabulary
/// exceeds [`crate::MAX_VOCAB`].
pub fn fill(weights: &mut [u64], fill: Fill) -> Result<u64> {
    let vocab = weights.len();
    if vocab == 0 {
        return Err(Error::EmptyRow);
    }
    if vocab > crate::MAX_VOCAB {
        return Err(Error::VocabTooLarge { vocab });
    }
    match fill {
        Fill::Uniform => {
            weights.fill(WEIGHT_ONE);
            Ok(vocab as u64 * WEIGHT_ONE)
        }
        Fill::OneHot(token) => {
            if token as usize >= vocab {
                return Err(Error::TokenOutOfRange { token, vocab });
            }
            weights.fill(0);
            weights[token as usize] = WEIGHT_ONE;
            Ok(WEIGHT_ONE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward saturating walk that [`Dist::locate`] must agree with.
    fn locate_reference(w: &[u64], r: u64) -> Result<u32> {
        let mut acc = 0u64;
        for (i, &x) in w.iter().enumerate() {
            acc = acc.saturating_add(x);
            if r < acc {
                return Ok(i as u32);
            }
        }
        Err(Error::ZeroMass)
    }

    #[test]
    fn locate_equals_the_saturating_walk() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for case in 0..4000 {
            let v = [1usize, 3, 31, 127, 128, 129, 257, 300, 1000][case % 9];
            let huge = case % 5 == 0;
            let mut w = [0u64; 1000];
            for x in &mut w[..v] {
                *x = match next() % 4 {
                    0 => 0,
                    _ if huge => next() >> (next() % 4),
                    _ => next() >> 20,
                };
            }
            let w = &w[..v];
            let d = Dist {
                weights: w,
                total: 1,
                support: None,
            };
            let exact: u128 = w.iter().map(|&x| x as u128).sum();
            let sat = exact.min(u64::MAX as u128) as u64;
            let mut rs = [0, 1, sat.saturating_sub(1), sat, u64::MAX, u64::MAX - 1];
            for r in &mut rs[..2] {
                *r = next() % sat.max(1);
            }
            for r in rs {
                assert_eq!(d.locate(r), locate_reference(w, r), "case {case} r={r}");
            }
            // Every prefix boundary.
            let mut acc = 0u64;
            for &x in w.iter().take(300) {
                acc = acc.saturating_add(x);
                for r in [acc.saturating_sub(1), acc] {
                    assert_eq!(d.locate(r), locate_reference(w, r), "case {case} r={r}");
                }
            }
        }
    }

    #[test]
    fn fills() {
        let mut w = [7u64; 4];
        assert_eq!(fill(&mut w, Fill::Uniform).unwrap(), 4 * WEIGHT_ONE);
        assert_eq!(w, [WEIGHT_ONE; 4]);
        assert_eq!(fill(&mut w, Fill::OneHot(2)).unwrap(), WEIGHT_ONE);
        assert_eq!(w, [0, 0, WEIGHT_ONE, 0]);
        assert_eq!(
            fill(&mut w, Fill::OneHot(4)),
            Err(Error::TokenOutOfRange { token: 4, vocab: 4 })
        );
        assert_eq!(fill(&mut [], Fill::Uniform), Err(Error::EmptyRow));
    }
}
