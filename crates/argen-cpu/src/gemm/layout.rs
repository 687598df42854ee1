//! The packed weight layouts (module docs of [`super`]): tile streams of [`NR`] rows, and the
//! interleaved bf16 variant whose 64-byte lines widen with one shift or one mask.

use super::NR;
use crate::hugemem::Buf;
use half::bf16;

/// Elements of the packed layout of an `[n, k]` matrix: `⌈n/NR⌉` tiles of `NR·k`.
pub fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Offset of element `(row, col)` of an `[n, k]` matrix in the packed layout (module docs).
#[inline]
pub fn packed_index(row: usize, col: usize, k: usize) -> usize {
    let kb = k / 8 * 8;
    let (t, j) = (row / NR, row % NR);
    let tile = t * NR * k;
    if col < kb {
        tile + (col / 8) * NR * 8 + j * 8 + col % 8
    } else {
        tile + NR * kb + j * (k - kb) + (col - kb)
    }
}

/// Repacks a row-major `[n, k]` matrix into the packed layout (module docs); the padding rows
/// of the last tile are `zero`.
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack<T: Copy>(w: &[T], n: usize, k: usize, zero: T) -> Buf<T> {
    assert!(
        w.len() >= n * k,
        "pack: {} elements for [{n}, {k}]",
        w.len()
    );
    let kb = k / 8 * 8;
    let mut out = Vec::with_capacity(packed_len(n, k));
    let mut put = |r: usize, c0: usize, c1: usize| {
        if r < n {
            out.extend_from_slice(&w[r * k + c0..r * k + c1]);
        } else {
            out.extend(std::iter::repeat_n(zero, c1 - c0));
        }
    };
    for t in 0..n.div_ceil(NR) {
        for b in (0..kb).step_by(8) {
            for j in 0..NR {
                put(t * NR + j, b, b + 8);
            }
        }
        for j in 0..NR {
            put(t * NR + j, kb, k);
        }
    }
    Buf::from_slice(&out)
}

/// Offset of element `(row, col)` of an `[n, k]` bf16 matrix in the interleaved packed layout
/// of [`pack_bf16`] (module docs).
#[inline]
pub fn packed_index_bf16(row: usize, col: usize, k: usize) -> usize {
    let kb = k / 8 * 8;
    let (t, j) = (row / NR, row % NR);
    let tile = t * NR * k;
    if col < kb {
        tile + (col / 8) * NR * 8 + 2 * ((j % 2) * 8 + col % 8) + j / 2
    } else {
        tile + NR * kb + j * (k - kb) + (col - kb)
    }
}

/// Repacks a row-major `[n, k]` bf16 matrix into the interleaved packed layout
/// ([`packed_index_bf16`], module docs) that [`super::WRef::BF16Packed`] weights are in; the padding
/// rows of the last tile are zero.
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack_bf16(w: &[bf16], n: usize, k: usize) -> Buf<bf16> {
    assert!(
        w.len() >= n * k,
        "pack_bf16: {} elements for [{n}, {k}]",
        w.len()
    );
    let mut out = Buf::from_fn(packed_len(n, k), |_| bf16::ZERO);
    for r in 0..n {
        for (c, &v) in w[r * k..(r + 1) * k].iter().enumerate() {
            out[packed_index_bf16(r, c, k)] = v;
        }
    }
    out
}
