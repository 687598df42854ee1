//! Shared inputs of the binding tests: deterministic pseudo-random rows, draft trees and
//! criteria, and the fixture's location.
#![allow(dead_code)]

use argen_core::rng::{Key, Purpose};
use half::{bf16, f16};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Codebook / embedding width of the tree cases.
pub const DIM: usize = 4;
/// Neighbours per token in the LANTERN table of the tree cases.
pub const TABLE_K: usize = 8;
/// Marks a root child.
pub const ROOT: u32 = u32::MAX;

/// `fixtures/ffi_rows_v1.json`.
pub fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ffi_rows_v1.json")
}

/// Element types of the cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dt {
    F32,
    F16,
    Bf16,
}

impl Dt {
    pub fn name(self) -> &'static str {
        match self {
            Dt::F32 => "f32",
            Dt::F16 => "f16",
            Dt::Bf16 => "bf16",
        }
    }
    pub fn from_name(s: &str) -> Dt {
        match s {
            "f32" => Dt::F32,
            "f16" => Dt::F16,
            _ => Dt::Bf16,
        }
    }
}

/// A stream of test words (purpose 100, never used by argen itself).
fn words(seed: u64, stream: u32) -> impl FnMut() -> u64 {
    let mut s = Key::new(seed, stream, Purpose(100), 0).stream();
    let mut pos = 0u32;
    move || match s.next_word() {
        Some(w) => w,
        None => {
            pos += 1;
            s = Key::new(seed, stream, Purpose(100), pos).stream();
            s.next_word().unwrap_or(0)
        }
    }
}

fn value(w: u64) -> f32 {
    ((w % 4001) as f32 - 2000.0) / 250.0
}

/// `rows × vocab` logits in `[-8, 8]` with 1/16 of them `-inf` when `masked`.
pub fn case_rows(seed: u64, rows: usize, vocab: usize, masked: bool) -> Vec<f32> {
    let mut next = words(seed, 1);
    (0..rows * vocab)
        .map(|_| {
            let w = next();
            if masked && (w >> 40) % 16 == 0 {
                f32::NEG_INFINITY
            } else {
                value(w)
            }
        })
        .collect()
}

/// Bit patterns of `values` stored as `dt`, as one hex string: 8 digits per f32, 4 per f16/bf16
/// (the rounded half), big-endian digits per element.
pub fn bits_of(dt: Dt, values: &[f32]) -> String {
    values
        .iter()
        .map(|&x| match dt {
            Dt::F32 => format!("{:08x}", x.to_bits()),
            Dt::F16 => format!("{:04x}", f16::from_f32(x).to_bits()),
            Dt::Bf16 => format!("{:04x}", bf16::from_f32(x).to_bits()),
        })
        .collect()
}

/// Parses [`bits_of`]'s hex string back into element bit patterns.
pub fn parse_bits(dt: Dt, hex: &str) -> Vec<u32> {
    let w = if dt == Dt::F32 { 8 } else { 4 };
    hex.as_bytes()
        .chunks(w)
        .map(|c| u32::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

/// A `vocab × DIM` codebook in `[-1, 1]`.
pub fn codebook(vocab: usize) -> Vec<f32> {
    let mut next = words(7, 2);
    (0..vocab * DIM)
        .map(|_| ((next() % 2001) as f32 - 1000.0) / 1000.0)
        .collect()
}

/// `(name, parents, sampled drafts)` of the tree cases.
pub fn tree_shapes() -> Vec<(&'static str, Vec<u32>, bool)> {
    vec![
        ("tree7", vec![ROOT, ROOT, ROOT, 0, 0, 1, 3], false),
        ("chain4", vec![ROOT, 0, 1, 2], false),
        ("chain4_sampled", vec![ROOT, 0, 1, 2], true),
        ("tree5_sampled", vec![ROOT, ROOT, 0, 0, 2], true),
    ]
}

/// Whether some node of `parents` has several children.
pub fn has_siblings(parents: &[u32]) -> bool {
    parents
        .iter()
        .enumerate()
        .any(|(i, p)| parents[..i].contains(p))
}

/// Target rows (slots `0..n+1`) then draft rows (`n+1..2n+2`), and the drafted tokens: the first
/// child of each slot is that slot's "hot" token, boosted by 5 nats in both rows of the slot, so
/// some drafts are accepted and some rejected.
pub fn tree_rows(case: u64, vocab: usize, parents: &[u32], _sampled: bool) -> (Vec<f32>, Vec<u32>) {
    let slots = parents.len() + 1;
    let mut values = case_rows(500 + case, 2 * slots, vocab, false);
    let mut next = words(900 + case, 3);
    let hot: Vec<u32> = (0..slots).map(|_| (next() % vocab as u64) as u32).collect();
    for s in 0..slots {
        values[s * vocab + hot[s] as usize] += 5.0;
        values[(slots + s) * vocab + hot[s] as usize] += 5.0;
    }
    let mut tokens = Vec::with_capacity(parents.len());
    for (i, &p) in parents.iter().enumerate() {
        let slot = if p == ROOT { 0 } else { p as usize + 1 };
        let earlier = parents[..i].iter().filter(|&&q| q == p).count() as u32;
        tokens.push((hot[slot] + 3 * earlier) % vocab as u32);
    }
    (values, tokens)
}

/// The acceptance criteria of the tree cases.
#[derive(Clone, Copy, Debug)]
pub enum CriterionSpec {
    Exact,
    Coupled,
    Lantern {
        k: usize,
        delta: f32,
        lambda: Option<f32>,
    },
    Grouped {
        window: usize,
        prob_tol: f32,
        dist_tol: f32,
    },
}

impl CriterionSpec {
    pub fn relaxed(&self) -> bool {
        matches!(
            self,
            CriterionSpec::Lantern { .. } | CriterionSpec::Grouped { .. }
        )
    }
    pub fn name(&self) -> &'static str {
        match self {
            CriterionSpec::Exact => "exact",
            CriterionSpec::Coupled => "coupled",
            CriterionSpec::Lantern { lambda: None, .. } => "lantern",
            CriterionSpec::Lantern { .. } => "lantern_pp",
            CriterionSpec::Grouped { .. } => "grouped",
        }
    }
    pub fn to_json(self) -> Value {
        match self {
            CriterionSpec::Exact => json!({"kind": "exact"}),
            CriterionSpec::Coupled => json!({"kind": "coupled"}),
            CriterionSpec::Lantern { k, delta, lambda } => {
                json!({"kind": "lantern", "k": k, "delta": delta, "lambda": lambda})
            }
            CriterionSpec::Grouped {
                window,
                prob_tol,
                dist_tol,
            } => json!({
                "kind": "grouped", "window": window, "prob_tol": prob_tol, "dist_tol": dist_tol
            }),
        }
    }
}

pub fn criterion_specs() -> Vec<CriterionSpec> {
    vec![
        CriterionSpec::Exact,
        CriterionSpec::Coupled,
        CriterionSpec::Lantern {
            k: 8,
            delta: 0.2,
            lambda: None,
        },
        CriterionSpec::Lantern {
            k: 4,
            delta: 0.3,
            lambda: Some(2.0),
        },
        CriterionSpec::Grouped {
            window: 7,
            prob_tol: 0.15,
            dist_tol: 0.5,
        },
    ]
}
