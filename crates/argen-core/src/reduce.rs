//! Canonical reductions: the one summation order every backend reproduces.
//!
//! Floating-point addition is not associative, so "the sum of a row" is only well defined together
//! with an order. argen uses two kinds of sums:
//!
//! * **Probability mass** is never summed in floating point. Distributions are fixed-point integer
//!   weights ([`crate::dist`]); their sums are exact, so every order — a sequential loop, a SIMD
//!   reduction, GPU atomics — gives the same bits.
//! * **Real-valued sums** (the dot products of three-way CFG) use the **lane tree**, defined here:
//!   with `LANES = 256`, lane `j` accumulates the terms `j, j + 256, j + 512, …` in ascending index
//!   order, in `f64`; then for `w = 128, 64, …, 1`, lane `j < w` adds lane `j + w`; the result is
//!   lane 0. This is exactly the reduction a 256-thread GPU block performs with a strided loop and a
//!   shared-memory halving tree, and it vectorises on a CPU.

/// Number of lanes of the canonical lane-tree reduction.
pub const LANES: usize = 256;

/// The canonical lane-tree sum of `term(0), …, term(n − 1)` (see the module documentation).
#[inline]
pub fn lane_tree_sum(n: usize, mut term: impl FnMut(usize) -> f64) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let mut base = 0;
    while base < n {
        let end = (base + LANES).min(n);
        for (lane, i) in lanes.iter_mut().zip(base..end) {
            *lane += term(i);
        }
        base = end;
    }
    let mut width = LANES / 2;
    while width >= 1 {
        let (low, high) = lanes.split_at_mut(width);
        for (a, b) in low.iter_mut().zip(high.iter()) {
            *a += *b;
        }
        width /= 2;
    }
    lanes[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, spelled out naively, for comparison.
    fn naive_lane_tree(terms: &[f64]) -> f64 {
        let mut lanes = [0.0f64; LANES];
        for (i, t) in terms.iter().enumerate() {
            lanes[i % LANES] += t;
        }
        let mut w = LANES / 2;
        while w >= 1 {
            for j in 0..w {
                lanes[j] += lanes[j + w];
            }
            w /= 2;
        }
        lanes[0]
    }

    #[test]
    fn matches_the_definition_bit_for_bit() {
        for n in [0usize, 1, 5, 255, 256, 257, 1000, 16384] {
            let data: std::vec::Vec<f64> = (0..n)
                .map(|i| ((i * 7919 % 1013) as f64 - 500.5) * 1.000_1f64.powi(i as i32))
                .collect();
            let ours = lane_tree_sum(n, |i| data[i]);
            assert_eq!(ours.to_bits(), naive_lane_tree(&data).to_bits(), "n={n}");
        }
    }
}
