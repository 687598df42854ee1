//! Helpers shared by the integration tests: a tiny deterministic generator for test data (not the
//! library's keyed RNG, so that test inputs do not depend on the code under test), row builders
//! and distribution arithmetic in `f64`.
#![allow(dead_code)]

use argen_core::accept::{Acceptance, NodeVerifier};
use argen_core::{process, Criterion, Dist, Draft, Guided, SamplerParams, Workspace};

/// SplitMix64 (Steele, Lea & Flood 2014): the generator of test inputs.
#[derive(Clone, Debug)]
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)` (tiny modulo bias is irrelevant for test inputs).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below((hi_inclusive - lo + 1) as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Gaussian-ish value (sum of uniforms), scaled.
    pub fn normal(&mut self, scale: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        s * scale * 1.7
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Processes one plain `f32` row, returning `(weights, total)`.
pub fn process_row(logits: &[f32], params: &SamplerParams) -> (Vec<u64>, u64) {
    let v = logits.len();
    let mut y = vec![0.0f32; v];
    let mut order = vec![0u32; v];
    let mut out = vec![0u64; v];
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut order,
    };
    let p = process(&Guided::Plain(logits), params, &mut ws, &mut out).expect("process");
    (out, p.total)
}

/// A random weight row of `v` entries with positive total. Mixes the shapes that stress the
/// acceptance rules: processed logits (with random truncation), small integers with zeros and
/// ties, one-hot rows, and huge weights near the `u64` limit.
pub fn random_row(rng: &mut TestRng, v: usize) -> Vec<u64> {
    loop {
        let row: Vec<u64> = match rng.below(6) {
            0 | 1 => {
                let scale = [0.5, 1.0, 2.0, 4.0, 8.0][rng.below(5) as usize];
                let logits: Vec<f32> = (0..v)
                    .map(|_| {
                        if rng.chance(0.1) {
                            f32::NEG_INFINITY
                        } else {
                            rng.normal(scale) as f32
                        }
                    })
                    .collect();
                if logits.iter().all(|l| *l == f32::NEG_INFINITY) {
                    continue;
                }
                let params = SamplerParams {
                    temperature: [0.5f32, 1.0, 1.3][rng.below(3) as usize],
                    top_k: rng.chance(0.3).then(|| rng.range(1, v) as u32),
                    top_p: rng
                        .chance(0.3)
                        .then(|| [0.5f32, 0.8, 0.95][rng.below(3) as usize]),
                    min_p: rng
                        .chance(0.2)
                        .then(|| [0.01f32, 0.1][rng.below(2) as usize]),
                };
                process_row(&logits, &params).0
            }
            2 => (0..v)
                .map(|_| [0u64, 0, 1, 1, 2, 3, 5, 8][rng.below(8) as usize])
                .collect(),
            3 => {
                let mut r = vec![0u64; v];
                r[rng.below(v as u64) as usize] = 1 + rng.below(1000);
                r
            }
            4 => {
                let cap = (1u64 << 62) / v as u64;
                (0..v)
                    .map(|_| if rng.chance(0.2) { 0 } else { rng.below(cap) })
                    .collect()
            }
            _ => (0..v).map(|_| rng.below(1 << 20)).collect(),
        };
        if row.iter().any(|&w| w > 0) {
            return row;
        }
    }
}

pub fn total(w: &[u64]) -> u64 {
    w.iter().sum()
}

pub fn to_f64(w: &[u64]) -> Vec<f64> {
    let z = total(w) as f64;
    w.iter().map(|&x| x as f64 / z).collect()
}

pub fn tv(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A random latent-neighbour table: each row is a random ordering of the other tokens, cut at `k`.
pub fn random_neighbours(rng: &mut TestRng, v: usize, k: usize) -> Vec<u32> {
    let mut ids = Vec::with_capacity(v * k);
    for t in 0..v {
        let mut others: Vec<u32> = (0..v as u32).filter(|&o| o as usize != t).collect();
        rng.shuffle(&mut others);
        ids.extend_from_slice(&others[..k]);
    }
    ids
}

/// A target/draft pair over `v` tokens where the draft is a noisy copy of the target (as a trained
/// drafter would be): `p = softmax(l)`, `q = softmax(l + noise)`, both processed at temperature 1.
pub fn related_pair(rng: &mut TestRng, v: usize) -> (Vec<u64>, Vec<u64>) {
    let scale = [1.0, 2.0, 4.0][rng.below(3) as usize];
    let noise = [0.1, 0.3, 1.0][rng.below(3) as usize];
    let l: Vec<f32> = (0..v).map(|_| rng.normal(scale) as f32).collect();
    let lq: Vec<f32> = l.iter().map(|&x| x + rng.normal(noise) as f32).collect();
    let params = SamplerParams::default();
    (process_row(&l, &params).0, process_row(&lq, &params).0)
}

/// How the siblings of the enumerated node are drafted.
pub enum Mode<'a> {
    /// `n` i.i.d. siblings drawn from `q`.
    Sampled { q: &'a [u64], n: usize },
    /// Fixed siblings, `q = 1_x` each.
    Point { siblings: &'a [u32] },
}

/// The output distribution of one node, by enumeration over the sibling sequence.
pub fn output_dist(crit: &Criterion<'_>, p: &[u64], mode: &Mode<'_>) -> Vec<f64> {
    let mut out = vec![0.0; p.len()];
    let mut prefix = Vec::new();
    enumerate(crit, p, mode, &mut prefix, 1.0, &mut out);
    let mass: f64 = out.iter().sum();
    assert!((mass - 1.0).abs() < 1e-12, "output mass {mass}");
    out
}

fn enumerate(
    crit: &Criterion<'_>,
    p: &[u64],
    mode: &Mode<'_>,
    prefix: &mut Vec<u32>,
    prob: f64,
    out: &mut [f64],
) {
    // Rebuild the node and replay the rejections of `prefix`.
    let mut w = p.to_vec();
    let draft = match mode {
        Mode::Sampled { q, .. } => Draft::Sampled(Dist::new(q).unwrap()),
        Mode::Point { .. } => Draft::PointMass,
    };
    let mut node = NodeVerifier::new(crit, &mut w, total(p), draft).unwrap();
    for &x in prefix.iter() {
        let acc = node.acceptance(x).unwrap();
        node.reject(x, &acc).unwrap();
    }
    let n = match mode {
        Mode::Sampled { n, .. } => *n,
        Mode::Point { siblings } => siblings.len(),
    };
    if prefix.len() == n {
        let r = node.residual().unwrap();
        let z = r.total() as f64;
        for (o, &wr) in out.iter_mut().zip(r.weights()) {
            *o += prob * wr as f64 / z;
        }
        return;
    }
    let choices: Vec<(u32, f64)> = match mode {
        Mode::Sampled { q, .. } => {
            let zq = total(q) as f64;
            (0..q.len() as u32)
                .filter(|&x| q[x as usize] > 0)
                .map(|x| (x, q[x as usize] as f64 / zq))
                .collect()
        }
        Mode::Point { siblings } => vec![(siblings[prefix.len()], 1.0)],
    };
    let accs: Vec<Acceptance> = choices
        .iter()
        .map(|&(x, _)| node.acceptance(x).unwrap())
        .collect();
    for (&(x, qx), acc) in choices.iter().zip(&accs) {
        assert!(acc.den > 0);
        let a = acc.probability();
        out[x as usize] += prob * qx * a;
        if acc.num < acc.den {
            prefix.push(x);
            enumerate(crit, p, mode, prefix, prob * qx * (1.0 - a), out);
            prefix.pop();
        }
    }
}
