//! Classifier-free guidance (CFG): combining conditional, unconditional and reformulated rows.
//!
//! * **Two-way** (Ho & Salimans 2022; LlamaGen, Sun et al. 2024): `l = u + s·(c − u)`, evaluated per
//!   element in `f32` exactly as written (one subtraction, one multiplication, one addition).
//! * **Three-way** (GridAR, Park et al.: layout-specified prompt reformulation): with
//!   `d_o = c − u` and `d_r = r − u`, the reformulated direction is made orthogonal to the original
//!   one, `d̃_r = d_r − ρ·d_o` with `ρ = ⟨d_r, d_o⟩ / ‖d_o‖²` (`ρ = 0` when `d_o = 0`), and
//!   `l = u + (w + 1)·d_o + w·d̃_r` (GridAR's release uses `w = 5`). The two reductions are
//!   computed with exact `f64` products summed in the canonical lane-tree order
//!   ([`crate::reduce`]); `ρ` is rounded to `f32`; the element formula is evaluated in `f32` as
//!   `(u + (w + 1)·d_o) + w·(d_r − ρ·d_o)`.
//!
//! A `−∞` (masked) entry in any input row makes the combined entry `−∞` and contributes nothing to
//! the reductions. NaN and `+∞` inputs are errors; a finite combination that overflows is
//! [`Error::Overflow`].

use crate::error::{Error, Result};
use crate::logit::Logit;
use crate::reduce::lane_tree_sum;

/// A row of logits together with the guidance that turns it into one row.
#[derive(Clone, Copy, Debug)]
pub enum Guided<'a, L> {
    /// No guidance: the row is used as it is.
    Plain(&'a [L]),
    /// Two-way CFG with scale `scale`.
    TwoWay {
        /// Conditional logits.
        cond: &'a [L],
        /// Unconditional logits.
        uncond: &'a [L],
        /// Guidance scale `s` (finite).
        scale: f32,
    },
    /// GridAR's three-way CFG with weight `w`.
    ThreeWay {
        /// Conditional logits (original prompt).
        cond: &'a [L],
        /// Unconditional logits.
        uncond: &'a [L],
        /// Logits conditioned on the reformulated (layout-specified) prompt.
        reformulated: &'a [L],
        /// Weight `w` (finite).
        w: f32,
    },
}

#[inline(always)]
fn load<L: Logit>(row: &[L], i: usize) -> Result<f32> {
    let v = row[i].to_f32();
    if v.is_nan() || v == f32::INFINITY {
        Err(Error::NonFiniteLogit { index: i })
    } else {
        Ok(v)
    }
}

#[inline(always)]
fn store(out: &mut f32, v: f32, index: usize) -> Result<()> {
    if v.is_finite() {
        *out = v;
        Ok(())
    } else {
        Err(Error::Overflow { index })
    }
}

fn check_param(value: f32, name: &'static str) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            reason: "must be finite",
        })
    }
}

impl<'a, L: Logit> Guided<'a, L> {
    /// The vocabulary size (length of the first row).
    pub fn vocab(&self) -> usize {
        match self {
            Guided::Plain(r) => r.len(),
            Guided::TwoWay { cond, .. } | Guided::ThreeWay { cond, .. } => cond.len(),
        }
    }

    /// Checks that the rows are non-empty and of equal length, and the parameters are finite.
    pub fn validate(&self) -> Result<usize> {
        let v = self.vocab();
        if v == 0 {
            return Err(Error::EmptyRow);
        }
        let same = |r: &[L]| {
            if r.len() == v {
                Ok(())
            } else {
                Err(Error::LengthMismatch {
                    expected: v,
                    found: r.len(),
                })
            }
        };
        match *self {
            Guided::Plain(_) => {}
            Guided::TwoWay { uncond, scale, .. } => {
                same(uncond)?;
                check_param(scale, "cfg_scale")?;
            }
            Guided::ThreeWay {
                uncond,
                reformulated,
                w,
                ..
            } => {
                same(uncond)?;
                same(reformulated)?;
                check_param(w, "cfg_w")?;
            }
        }
        Ok(v)
    }

    /// Writes the combined row into `out[..V]`.
    pub fn combine(&self, out: &mut [f32]) -> Result<()> {
        let v = self.validate()?;
        let found = out.len();
        let out = out
            .get_mut(..v)
            .ok_or(Error::BufferTooSmall { needed: v, found })?;
        match *self {
            Guided::Plain(row) => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = load(row, i)?;
                }
            }
            Guided::TwoWay {
                cond,
                uncond,
                scale,
            } => {
                for (i, o) in out.iter_mut().enumerate() {
                    let (c, u) = (load(cond, i)?, load(uncond, i)?);
                    if c == f32::NEG_INFINITY || u == f32::NEG_INFINITY {
                        *o = f32::NEG_INFINITY;
                    } else {
                        store(o, u + scale * (c - u), i)?;
                    }
                }
            }
            Guided::ThreeWay {
                cond,
                uncond,
                reformulated,
                w,
            } => {
                // Validate every input first so the reductions only see finite values or masks.
                for i in 0..v {
                    load(cond, i)?;
                    load(uncond, i)?;
                    load(reformulated, i)?;
                }
                let rho = three_way_rho(cond, uncond, reformulated);
                let w1 = w + 1.0;
                for (i, o) in out.iter_mut().enumerate() {
                    let (c, u, r) = (
                        cond[i].to_f32(),
                        uncond[i].to_f32(),
                        reformulated[i].to_f32(),
                    );
                    if c == f32::NEG_INFINITY || u == f32::NEG_INFINITY || r == f32::NEG_INFINITY {
                        *o = f32::NEG_INFINITY;
                    } else {
                        let d_o = c - u;
                        let d_r = r - u;
                        store(o, (u + w1 * d_o) + w * (d_r - rho * d_o), i)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `ρ = ⟨d_r, d_o⟩ / ‖d_o‖²` of three-way CFG, rounded to `f32` (0 when `‖d_o‖ = 0`).
/// Inputs must already be validated (finite or `−∞`).
fn three_way_rho<L: Logit>(cond: &[L], uncond: &[L], reformulated: &[L]) -> f32 {
    let diffs = |i: usize| -> (f64, f64) {
        let (c, u, r) = (
            cond[i].to_f32(),
            uncond[i].to_f32(),
            reformulated[i].to_f32(),
        );
        if c == f32::NEG_INFINITY || u == f32::NEG_INFINITY || r == f32::NEG_INFINITY {
            (0.0, 0.0)
        } else {
            ((c - u) as f64, (r - u) as f64)
        }
    };
    let n = cond.len();
    let dot = lane_tree_sum(n, |i| {
        let (d_o, d_r) = diffs(i);
        d_o * d_r
    });
    let norm = lane_tree_sum(n, |i| {
        let (d_o, _) = diffs(i);
        d_o * d_o
    });
    if norm > 0.0 {
        (dot / norm) as f32
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_formula() {
        let c = [1.0f32, 2.0, f32::NEG_INFINITY];
        let u = [0.5f32, 3.0, 1.0];
        let mut out = [0.0f32; 3];
        Guided::TwoWay {
            cond: &c,
            uncond: &u,
            scale: 4.0,
        }
        .combine(&mut out)
        .unwrap();
        assert_eq!(out, [2.5, -1.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn three_way_with_parallel_direction_is_two_way_with_scale_w_plus_one() {
        // d_r parallel to d_o: the orthogonal part vanishes.
        let u = [0.0f32, 1.0, 2.0, -1.0];
        let c = [1.0f32, 2.0, 0.0, -1.0];
        let r: [f32; 4] = core::array::from_fn(|i| u[i] + 2.0 * (c[i] - u[i]));
        let mut three = [0.0f32; 4];
        let mut two = [0.0f32; 4];
        Guided::ThreeWay {
            cond: &c,
            uncond: &u,
            reformulated: &r,
            w: 5.0,
        }
        .combine(&mut three)
        .unwrap();
        Guided::TwoWay {
            cond: &c,
            uncond: &u,
            scale: 6.0,
        }
        .combine(&mut two)
        .unwrap();
        assert_eq!(three, two);
    }

    #[test]
    fn three_way_orthogonal_direction_is_added_in_full() {
        let u = [0.0f32; 3];
        let c = [1.0f32, 0.0, 0.0];
        let r = [0.0f32, 2.0, 0.0];
        let mut out = [0.0f32; 3];
        Guided::ThreeWay {
            cond: &c,
            uncond: &u,
            reformulated: &r,
            w: 5.0,
        }
        .combine(&mut out)
        .unwrap();
        assert_eq!(out, [6.0, 10.0, 0.0]);
    }

    #[test]
    fn bad_rows_are_typed_errors() {
        let mut out = [0.0f32; 2];
        let e = Guided::Plain(&[1.0f32, f32::NAN]).combine(&mut out);
        assert_eq!(e, Err(Error::NonFiniteLogit { index: 1 }));
        let e = Guided::Plain(&[f32::INFINITY]).combine(&mut out);
        assert_eq!(e, Err(Error::NonFiniteLogit { index: 0 }));
        let e = Guided::TwoWay {
            cond: &[1.0f32],
            uncond: &[1.0f32, 2.0],
            scale: 1.0,
        }
        .combine(&mut out);
        assert_eq!(
            e,
            Err(Error::LengthMismatch {
                expected: 1,
                found: 2
            })
        );
        let e = Guided::<f32>::Plain(&[]).combine(&mut out);
        assert_eq!(e, Err(Error::EmptyRow));
        let e = Guided::TwoWay {
            cond: &[1.0f32],
            uncond: &[1.0f32],
            scale: f32::NAN,
        }
        .combine(&mut out);
        assert!(matches!(e, Err(Error::InvalidParameter { .. })));
        let e = Guided::TwoWay {
            cond: &[3e38f32],
            uncond: &[-3e38f32],
            scale: 10.0,
        }
        .combine(&mut out);
        assert_eq!(e, Err(Error::Overflow { index: 0 }));
        let e = Guided::Plain(&[1.0f32; 3]).combine(&mut out);
        assert_eq!(
            e,
            Err(Error::BufferTooSmall {
                needed: 3,
                found: 2
            })
        );
    }
}
