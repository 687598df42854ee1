//! The opt-in fast kernel class `amx-bf16`: Intel AMX tiles (`tdpbf16ps`) for bf16 weights.
//!
//! Used instead of [`crate::fast`]'s AVX512-BF16 class when `--fast-kernels` is on and the
//! CPU has AMX-TILE and AMX-BF16 and Linux grants the process the tile state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, requested once, at the first
//! [`unsupported`] call). Weights are repacked at load time into the tile layout below, so a
//! [`crate::Cpu`] decides its class when it loads a model and keeps it.
//!
//! # Weight layout ([`pack`])
//! Rows (output columns) in panels of 16, `k` padded with zeros to `K' = ⌈k/32⌉·32`; each
//! panel is `K'/32` blocks of 1 KiB, block `b` holding the B tile of `tdpbf16ps`: 16 tile rows
//! (pairs of input columns `32b + 2p, 32b + 2p + 1`), each with the 16 panel rows' two elements
//! side by side ([`index`]).
//!
//! # Reduction order of class `amx-bf16`
//! For each output element with `K` columns:
//! 1. every input element is rounded to bf16 (round-to-nearest-even), `x̂`; `x̂` and the weights
//!    are padded with zeros to `K'`;
//! 2. one accumulator, starting at `+0`, runs over `k = 0, 1, …, K' − 1` in order:
//!    `acc = F(x̂[k]·w[k] + acc)` — the even element of each pair first — with `F` the fused
//!    step of [`crate::fast::dp_step`] (round-to-nearest-even, subnormal inputs read as zero,
//!    subnormal results flushed to zero). This is `tdpbf16ps`'s per-element operation in the
//!    Intel ISA reference; the padding steps are included;
//! 3. the bias (if any) is added last.
//!
//! **Verification status:** the dev box (AMD Zen 4) has no AMX, so this kernel has not run
//! here: its test prints `SKIPPED amx-bf16: …` and holds the tiles to [`reference()`] bit for bit
//! wherever AMX exists. The AVX512-BF16 class was checked against its emulation on Zen 4.

use crate::par::Workers;
use half::bf16;
#[cfg(target_arch = "x86_64")]
use std::cell::RefCell;

/// Rows per panel, rows per A tile, and f32 columns per C tile.
pub const TILE: usize = 16;
/// Input columns per tile step (bf16 pairs × 16).
pub const KB: usize = 32;

/// `K'`: `k` padded to a multiple of [`KB`].
pub fn k_padded(k: usize) -> usize {
    k.div_ceil(KB) * KB
}

/// Elements of the tile layout of an `[n, k]` matrix.
pub fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(TILE) * TILE * k_padded(k)
}

/// Offset of element `(row, col)` of an `[n, k]` matrix in the tile layout (module docs).
#[inline]
pub fn index(row: usize, col: usize, k: usize) -> usize {
    let (panel, c) = (row / TILE, row % TILE);
    let (b, kk) = (col / KB, col % KB);
    panel * TILE * k_padded(k) + b * TILE * KB + (kk / 2) * 2 * TILE + c * 2 + kk % 2
}

/// Repacks a row-major `[n, k]` bf16 matrix into the tile layout, padding with zeros.
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack(w: &[bf16], n: usize, k: usize) -> crate::hugemem::Buf<bf16> {
    assert!(
        w.len() >= n * k,
        "amx::pack: {} elements for [{n}, {k}]",
        w.len()
    );
    let mut out = crate::hugemem::Buf::from_fn(packed_len(n, k), |_| bf16::ZERO);
    for r in 0..n {
        for c in 0..k {
            out[index(r, c, k)] = w[r * k + c];
        }
    }
    out
}

/// Scalar transcription of the class's reduction order for one output element (`x` already
/// rounded to bf16, `w` row-major; both of length `k`).
pub fn reference(x: &[bf16], w: &[bf16], k: usize, bias: Option<f32>) -> f32 {
    let mut acc = 0f32;
    for kk in 0..k_padded(k) {
        let (a, b) = if kk < k {
            (x[kk].to_f32(), w[kk].to_f32())
        } else {
            (0.0, 0.0)
        };
        acc = crate::fast::dp_step(a, b, acc);
    }
    bias.map_or(acc, |b| acc + b)
}

/// Why this CPU or OS cannot run the `amx-bf16` class; `None` if it can. The first call
/// requests the tile state from Linux; the answer is kept for the process.
pub fn unsupported() -> Option<&'static str> {
    static STATE: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *STATE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> Option<&'static str> {
    use std::arch::x86_64::__cpuid_count;
    // SAFETY: CPUID is available on every x86_64 CPU (the intrinsic is safe in newer Rust).
    #[allow(unused_unsafe)]
    let l7 = unsafe { __cpuid_count(7, 0) };
    if (l7.edx >> 24) & 1 == 0 || (l7.edx >> 22) & 1 == 0 {
        return Some("the CPU lacks AMX-TILE / AMX-BF16");
    }
    if !std::is_x86_feature_detected!("xsave") {
        return Some("the CPU lacks XSAVE");
    }
    // SAFETY: CPUID leaf 1 is available on every x86_64 CPU; XGETBV is only executed when the
    // OS enabled it (OSXSAVE, bit 27 of ECX).
    let xcr0 = unsafe {
        if (std::arch::x86_64::__cpuid(1).ecx >> 27) & 1 == 0 {
            return Some("the OS has not enabled XSAVE");
        }
        let (lo, hi): (u32, u32);
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
        ((hi as u64) << 32) | lo as u64
    };
    if (xcr0 >> 17) & 3 != 3 {
        return Some("the OS does not manage the AMX tile state (XCR0)");
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM only changes this process's permitted
    // extended state; it takes no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if rc != 0 {
        return Some("Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)");
    }
    None
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> Option<&'static str> {
    Some("AMX needs x86_64 Linux")
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The activations rounded to bf16, `⌈rows/16⌉·16 × K'`, zero padded (grows once).
    static XB: RefCell<Vec<bf16>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct OutPtr(*mut f32);
// SAFETY: used only to write disjoint output columns from different tasks (see `gemm`).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// `out[..rows·n] = x · wᵀ (+ bias)` in the class's reduction order, `w` an `[n, k]` matrix in
/// the tile layout ([`pack`]), panels of 16 columns split into `tasks` ranges on `workers`.
///
/// # Panics
/// If the CPU or OS cannot run AMX ([`unsupported`]) or a buffer is too small.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    workers: &Workers,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(unsupported().is_none(), "amx kernels: {:?}", unsupported());
    assert!(
        x.len() >= rows * k
            && out.len() >= rows * n
            && w.len() >= packed_len(n, k)
            && bias.is_none_or(|b| b.len() >= n),
        "gemm buffers too small"
    );
    if rows == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    XB.with(|cell| {
        let kp = k_padded(k);
        let rp = rows.div_ceil(TILE) * TILE;
        let mut xb = cell.borrow_mut();
        if xb.len() < rp * kp {
            xb.resize(rp * kp, bf16::ZERO);
        }
        for r in 0..rp {
            for c in 0..kp {
                xb[r * kp + c] = if r < rows && c < k {
                    bf16::from_f32(x[r * k + c])
                } else {
                    bf16::ZERO
                };
            }
        }
        let xb: &[bf16] = &xb;
        let ptr = OutPtr(out.as_mut_ptr());
        let panels = n.div_ceil(TILE);
        let tasks = tasks.clamp(1, panels);
        let per = panels.div_ceil(tasks);
        workers.run(tasks, |t| {
            let p0 = t * per;
            let p1 = ((t + 1) * per).min(panels);
            if p0 < p1 {
                // SAFETY: AMX is usable (asserted above); task t writes only the columns of
                // panels p0..p1, disjoint from other tasks'; `xb` holds rp·kp and `w` the tile
                // layout of [n, k] (asserted above).
                unsafe { tiles::task(xb, rows, kp, w, n, p0, p1, bias, ptr) };
            }
        });
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (workers, tasks, bias, OutPtr(out.as_mut_ptr()));
}

#[cfg(target_arch = "x86_64")]
mod tiles {
    use super::{OutPtr, KB, TILE};
    use half::bf16;
    use std::arch::asm;

    /// Tile configuration (palette 1): tmm0 = C (16 × 16 f32), tmm1 = A (16 rows × 32 bf16),
    /// tmm2 = B (16 pair rows × 16 columns × 2 bf16); 64 bytes per row each.
    #[repr(C, align(64))]
    struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    /// Panels `p0..p1` of the output for every row.
    ///
    /// # Safety
    /// AMX is usable by this thread (permission granted); `xb` holds `⌈rows/16⌉·16 × kp`
    /// bf16, `w` the tile layout; this call is the only writer of the panels' columns.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn task(
        xb: &[bf16],
        rows: usize,
        kp: usize,
        w: &[bf16],
        n: usize,
        p0: usize,
        p1: usize,
        bias: Option<&[f32]>,
        out: OutPtr,
    ) {
        let mut cfg = Config {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..3 {
            cfg.colsb[t] = 64;
            cfg.rows[t] = TILE as u8;
        }
        let mut c = [0f32; TILE * TILE];
        let stride_x = kp * 2;
        // SAFETY: the configuration is valid for palette 1; every tile load reads 16 rows of
        // 64 bytes inside `xb` (row block r0..r0+16 ≤ ⌈rows/16⌉·16, columns b·32..b·32+32 ≤
        // kp) or inside block b of panel p of `w`; the store writes 16 rows of 64 bytes into
        // `c`.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &cfg as *const Config, options(nostack, readonly));
            let mut r0 = 0;
            while r0 < rows {
                for p in p0..p1 {
                    asm!("tilezero tmm0", options(nostack, nomem));
                    let panel = w.as_ptr().add(p * TILE * kp);
                    for b in 0..kp / KB {
                        let a = xb.as_ptr().add(r0 * kp + b * KB);
                        let bt = panel.add(b * TILE * KB);
                        asm!("tileloadd tmm1, [{a} + {s} * 1]", a = in(reg) a, s = in(reg) stride_x,
                            options(nostack, readonly));
                        asm!("tileloadd tmm2, [{b} + {s} * 1]", b = in(reg) bt, s = in(reg) 64usize,
                            options(nostack, readonly));
                        asm!("tdpbf16ps tmm0, tmm1, tmm2", options(nostack, nomem));
                    }
                    asm!("tilestored [{c} + {s} * 1], tmm0", c = in(reg) c.as_mut_ptr(),
                        s = in(reg) 64usize, options(nostack));
                    for m in 0..TILE.min(rows - r0) {
                        for j in 0..TILE.min(n - p * TILE) {
                            let col = p * TILE + j;
                            let v = c[m * TILE + j];
                            *out.0.add((r0 + m) * n + col) = bias.map_or(v, |b| v + b[col]);
                        }
                    }
                }
                r0 += TILE;
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_a_bijection_onto_the_unpadded_elements() {
        for (n, k) in [(1usize, 1usize), (5, 31), (16, 32), (17, 33), (40, 100)] {
            let mut seen = vec![false; packed_len(n, k)];
            for r in 0..n {
                for c in 0..k {
                    let i = index(r, c, k);
                    assert!(!seen[i], "n={n} k={k} ({r},{c}) collides");
                    seen[i] = true;
                }
            }
            assert_eq!(seen.iter().filter(|s| **s).count(), n * k);
        }
    }

    #[test]
    fn amx_matches_its_documented_order() {
        if let Some(why) = unsupported() {
            println!("SKIPPED amx-bf16: {why}");
            return;
        }
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut r = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let pools: Vec<(Workers, usize)> = [(1, 1), (3, 8)]
            .iter()
            .map(|&(t, tasks)| (Workers::new(t).unwrap(), tasks))
            .collect();
        for &(k, n) in &[(1usize, 3usize), (32, 16), (77, 36), (300, 5)] {
            let x: Vec<f32> = (0..40 * k).map(|_| r()).collect();
            let w: Vec<bf16> = (0..n * k).map(|_| bf16::from_f32(r())).collect();
            let bias: Vec<f32> = (0..n).map(|_| r()).collect();
            let wp = pack(&w, n, k);
            let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            for (pool, tasks) in &pools {
                for rows in [1usize, 2, 15, 16, 17, 40] {
                    let mut out = vec![f32::NAN; rows * n];
                    gemm(pool, *tasks, &x, rows, k, &wp, n, Some(&bias), &mut out);
                    for (e, got) in out.iter().enumerate() {
                        let (ri, ni) = (e / n, e % n);
                        let want = reference(&xb[ri * k..], &w[ni * k..], k, Some(bias[ni]));
                        assert_eq!(got.to_bits(), want.to_bits(), "k={k} n={n} rows={rows}");
                    }
                }
            }
        }
    }
}
