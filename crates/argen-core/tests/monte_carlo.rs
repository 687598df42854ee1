//! Monte Carlo checks of the *executed* keyed implementation (`sample`, `verify_siblings`) against
//! the exact output distributions of `exact_distribution.rs`.
//!
//! Each test draws `N` committed tokens with keys that vary the position (and seed), bins them,
//! and applies Pearson's chi-square goodness-of-fit test against the exact distribution (bins with
//! expected count below 5 are pooled). Significance level: **α = 1e-6 per test**; there are
//! 14 chi-square tests in this file, so a correct implementation would fail one of them with
//! probability below 1.4e-5 over a *random* choice of seeds. The seeds are fixed, so the outcome
//! is deterministic: these tests never flake, and a failure means the implementation's draws
//! disagree with the claimed distribution (or the RNG scheme changed).

mod support;

use argen_core::accept::{GroupedParams, LanternParams, NeighbourTable};
use argen_core::rng::Key;
use argen_core::{sample, verify_siblings, Criterion, Dist, Draft, NodeKeys, Outcome, Purpose};
use support::*;

const ALPHA: f64 = 1e-6;

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, n = 9; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularised upper incomplete gamma `Q(a, x)`: series for `x < a + 1`, else Lentz's continued
/// fraction.
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let lead = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut term, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * lead.exp()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        lead.exp() * h
    }
}

/// Pearson chi-square p-value of `counts` against `expected` probabilities (pooling small bins).
/// Panics (test failure) if a token with probability 0 was observed.
fn chi_square_p(counts: &[u64], expected: &[f64]) -> (f64, f64, usize) {
    let n: u64 = counts.iter().sum();
    let n = n as f64;
    let mut stat = 0.0;
    let mut bins = 0usize;
    let (mut pool_obs, mut pool_exp) = (0.0, 0.0);
    for (i, (&c, &e)) in counts.iter().zip(expected).enumerate() {
        if e <= 1e-15 {
            assert_eq!(c, 0, "token {i} has probability 0 but was drawn {c} times");
            continue;
        }
        let ex = e * n;
        if ex < 5.0 {
            pool_obs += c as f64;
            pool_exp += ex;
        } else {
            stat += (c as f64 - ex).powi(2) / ex;
            bins += 1;
        }
    }
    if pool_exp > 0.0 {
        stat += (pool_obs - pool_exp).powi(2) / pool_exp;
        bins += 1;
    }
    if bins < 2 {
        return (0.0, 1.0, bins);
    }
    (stat, gamma_q((bins - 1) as f64 / 2.0, stat / 2.0), bins)
}

fn check(name: &str, counts: &[u64], expected: &[f64]) {
    let (stat, p, bins) = chi_square_p(counts, expected);
    println!("{name}: chi2 = {stat:.2} over {bins} bins, p-value = {p:.4}");
    assert!(p >= ALPHA, "{name}: chi-square p-value {p:e} < α = {ALPHA:e}\ncounts {counts:?}\nexpected {expected:?}");
}

#[test]
fn chi_square_helper_is_calibrated() {
    // Q(k/2, x/2) is the chi-square survival function: known values.
    assert!((gamma_q(0.5, 3.841_458_820_694_124 / 2.0) - 0.05).abs() < 1e-9);
    assert!((gamma_q(4.5, 21.665_994_333_461_92 / 2.0) - 0.01).abs() < 1e-9);
    assert!((gamma_q(50.0, 149.449_252_779_7 / 2.0) - 0.001).abs() < 1e-7);
    // A grossly wrong histogram is rejected.
    let (_, p, _) = chi_square_p(&[600, 400], &[0.5, 0.5]);
    assert!(p < ALPHA);
}

/// Commits one token at a node: drafts `n` siblings from `q` with the DRAFT purpose (sampled
/// mode) or uses `fixed` (point-mass mode), then runs `verify_siblings`.
fn commit(
    crit: &Criterion<'_>,
    p: &[u64],
    q: Option<&[u64]>,
    n: usize,
    fixed: &[u32],
    keys: NodeKeys,
    scratch: &mut Vec<u64>,
) -> u32 {
    scratch.clear();
    scratch.extend_from_slice(p);
    let (draft, siblings): (Draft<'_>, Vec<u32>) = match q {
        Some(q) => {
            let dq = Dist::new(q).unwrap();
            let s = (0..n as u32)
                .map(|i| sample(&dq, keys.key(Purpose::DRAFT, i)).unwrap())
                .collect();
            (Draft::Sampled(dq), s)
        }
        None => (Draft::PointMass, fixed.to_vec()),
    };
    match verify_siblings(crit, scratch, total(p), draft, &siblings, keys).unwrap() {
        Outcome::Accepted { index } => siblings[index],
        Outcome::Rejected { token } => token,
    }
}

fn histogram(
    crit: &Criterion<'_>,
    p: &[u64],
    q: Option<&[u64]>,
    n: usize,
    fixed: &[u32],
    draws: u32,
    seed: u64,
) -> Vec<u64> {
    let mut counts = vec![0u64; p.len()];
    let mut scratch = Vec::with_capacity(p.len());
    for pos in 0..draws {
        let keys = NodeKeys {
            seed: seed + (pos % 3) as u64,
            stream: 11,
            position: pos,
        };
        counts[commit(crit, p, q, n, fixed, keys, &mut scratch) as usize] += 1;
    }
    counts
}

const DRAWS: u32 = 20_000;

#[test]
fn keyed_uniform_integers_are_uniform() {
    for n in [2u128, 3, 10, 37] {
        let mut counts = vec![0u64; n as usize];
        for pos in 0..DRAWS {
            let v = Key::new(99, 1, Purpose::SAMPLE, pos)
                .stream()
                .below(n)
                .unwrap();
            counts[v as usize] += 1;
        }
        check(
            &format!("below({n})"),
            &counts,
            &vec![1.0 / n as f64; n as usize],
        );
    }
}

#[test]
fn sample_matches_the_weights() {
    let mut rng = TestRng(0xc0ffee);
    for row in 0..2 {
        let v = 24;
        let p = related_pair(&mut rng, v).0;
        let d = Dist::new(&p).unwrap();
        let mut counts = vec![0u64; v];
        for pos in 0..DRAWS {
            counts[sample(&d, Key::new(7, row, Purpose::SAMPLE, pos)).unwrap() as usize] += 1;
        }
        check(&format!("sample row {row}"), &counts, &to_f64(&p));
    }
}

#[test]
fn exact_and_coupled_commit_the_target_distribution() {
    let mut rng = TestRng(0xbeef);
    let v = 16;
    let (p, q) = related_pair(&mut rng, v);
    let pf = to_f64(&p);
    let siblings = [3u32, 0, 9];
    let c = histogram(&Criterion::Exact, &p, Some(&q), 1, &[], DRAWS, 1);
    check("exact sampled x1", &c, &pf);
    let c = histogram(&Criterion::Exact, &p, Some(&q), 3, &[], DRAWS, 2);
    check("exact sampled x3", &c, &pf);
    let c = histogram(&Criterion::Exact, &p, None, 0, &siblings, DRAWS, 3);
    check("exact point-mass x3", &c, &pf);
    let c = histogram(&Criterion::Coupled, &p, Some(&q), 2, &[], DRAWS, 4);
    check("coupled sampled x2", &c, &pf);
}

#[test]
fn lantern_commits_its_exact_output_distribution() {
    let mut rng = TestRng(0xfeed);
    let v = 16;
    let (p, q) = related_pair(&mut rng, v);
    let ids = random_neighbours(&mut rng, v, 6);
    let table = NeighbourTable::new(&ids, v, 6).unwrap();
    let crit = Criterion::Lantern(LanternParams {
        neighbours: table,
        k: 6,
        delta: 0.3,
        lambda: None,
    });
    let siblings = [2u32, 7];
    let exact = output_dist(
        &crit,
        &p,
        &Mode::Point {
            siblings: &siblings,
        },
    );
    let c = histogram(&crit, &p, None, 0, &siblings, DRAWS, 5);
    check("lantern point-mass x2", &c, &exact);
    let exact = output_dist(&crit, &p, &Mode::Sampled { q: &q, n: 1 });
    let c = histogram(&crit, &p, Some(&q), 1, &[], DRAWS, 6);
    check("lantern sampled x1", &c, &exact);
}

#[test]
fn grouped_commits_its_exact_output_distribution() {
    let mut rng = TestRng(0xface);
    let v = 16;
    let (p, q) = related_pair(&mut rng, v);
    let emb: Vec<f32> = (0..v * 2).map(|_| rng.normal(0.4) as f32).collect();
    let g = GroupedParams {
        prob_tol: 0.3,
        ..GroupedParams::paper(&emb, 2)
    };
    let crit = Criterion::Grouped(g);
    let siblings = [1u32, 4, 12];
    let exact = output_dist(
        &crit,
        &p,
        &Mode::Point {
            siblings: &siblings,
        },
    );
    let c = histogram(&crit, &p, None, 0, &siblings, DRAWS, 7);
    check("grouped point-mass x3", &c, &exact);
    let exact = output_dist(&crit, &p, &Mode::Sampled { q: &q, n: 1 });
    let c = histogram(&crit, &p, Some(&q), 1, &[], DRAWS, 8);
    check("grouped sampled x1", &c, &exact);
}
