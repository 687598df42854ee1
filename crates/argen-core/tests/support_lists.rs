//! A [`SliceBackend`] with support lists (`SliceStorage::backend`, `SliceBackend::with_supports`)
//! answers every question exactly as one without (`SliceBackend::new`): the same weight rows
//! (full rows compared), the same draws, the same tree verdicts, the same top-k, over many
//! steps that rewrite the same distribution rows with truncated, untruncated, greedy and
//! synthetic rows, with errors in between. The lists are kept from one `SliceStorage::backend`
//! call to the next, so the partial clears of later steps rest on lists recorded earlier.

use argen_core::backend::Fill;
use argen_core::dist::SUPPORT_CAP;
use argen_core::{
    Backend, Criterion, DraftTree, Key, NodeKeys, ProcessJob, Purpose, RowGuidance, SampleJob,
    SamplerParams, SliceBackend, SliceStorage, SupportList, TreeJob,
};

/// xorshift64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Caller-owned storage of a backend without lists (or with, via `with_supports`).
struct Plain {
    weights: Vec<u64>,
    totals: Vec<u64>,
    f: Vec<f32>,
    u: Vec<u32>,
    lists: Vec<SupportList>,
}

impl Plain {
    fn new(v: usize, rows: usize) -> Self {
        Plain {
            weights: vec![0; (rows + 1) * v],
            totals: vec![0; rows],
            f: vec![0.0; v],
            u: vec![0; v],
            lists: vec![SupportList::new(); rows],
        }
    }
    fn backend(&mut self, v: usize, lists: bool) -> SliceBackend<'_, f32> {
        let b = SliceBackend::new(
            v,
            &mut self.weights,
            &mut self.totals,
            &mut self.f,
            &mut self.u,
        )
        .unwrap();
        if lists {
            b.with_supports(&mut self.lists)
        } else {
            b
        }
    }
}

fn params(rng: &mut Rng, v: usize) -> SamplerParams {
    SamplerParams {
        temperature: [0.0, 1.0, 1.0, 0.8][rng.below(4) as usize],
        top_k: match rng.below(4) {
            0 => None,
            1 => Some(1),
            _ => Some(1 + rng.below(v as u64) as u32),
        },
        top_p: (rng.below(5) > 0).then(|| [0.3f32, 0.9, 0.99, 1.0][rng.below(4) as usize]),
        min_p: (rng.below(4) == 0).then(|| [0.0f32, 0.05, 0.5][rng.below(3) as usize]),
    }
}

/// Logits: wide (few survivors under top-p), narrow (many), or tied; now and then a NaN.
fn logits(rng: &mut Rng, v: usize, rows: usize) -> Vec<f32> {
    let spread = [40.0f32, 3.0, 0.0][rng.below(3) as usize];
    (0..v * rows)
        .map(|_| {
            if rng.below(50_000) == 0 {
                f32::NAN
            } else if spread == 0.0 {
                [1.0f32, 1.0, 0.5][rng.below(3) as usize]
            } else {
                (rng.unit() - 0.5) * spread
            }
        })
        .collect()
}

#[test]
fn backends_with_and_without_support_lists_agree() {
    let mut rng = Rng(0x5117_0a57_0000_0001);
    let (mut sparse_rows, mut draws) = (0usize, 0usize);
    for case in 0..24 {
        let v = [64usize, 300, 1024, 4096][case % 4];
        let rows = 6usize;
        let mut kept = SliceStorage::new(v, rows);
        let mut caller = Plain::new(v, rows);
        let mut dense = Plain::new(v, rows);
        for step in 0..30 {
            let logit_rows = 3usize;
            let l = logits(&mut rng, v, logit_rows);
            let mut jobs = Vec::new();
            for _ in 0..1 + rng.below(rows as u64) {
                let rows_g = match rng.below(3) {
                    0 => RowGuidance::Plain { row: 0 },
                    _ => RowGuidance::TwoWay {
                        cond: 1,
                        uncond: 2,
                        scale: 3.0,
                    },
                };
                jobs.push(ProcessJob {
                    rows: rows_g,
                    params: params(&mut rng, v),
                    out: rng.below(rows as u64) as u32,
                });
            }
            let fill = (rng.below(6) == 0).then(|| {
                let r = rng.below(rows as u64) as u32;
                let f = match rng.below(2) {
                    0 => Fill::Uniform,
                    _ => Fill::OneHot(rng.below(v as u64) as u32),
                };
                (r, f)
            });
            let what = format!("case {case} v={v} step {step}");
            let mut a = kept.backend::<f32>().unwrap();
            let mut b = caller.backend(v, true);
            let mut c = dense.backend(v, false);
            let ra = a.process(&l, &jobs);
            assert_eq!(ra, b.process(&l, &jobs), "{what}");
            assert_eq!(ra, c.process(&l, &jobs), "{what}");
            if let Some((r, f)) = fill {
                a.fill_dist(r, f).unwrap();
                b.fill_dist(r, f).unwrap();
                c.fill_dist(r, f).unwrap();
            }
            for row in 0..rows as u32 {
                let (da, db, dc) = (a.dist(row), b.dist(row), c.dist(row));
                let (Ok(da), Ok(db), Ok(dc)) = (da, db, dc) else {
                    continue; // a row never written (total 0)
                };
                assert_eq!(da.weights(), dc.weights(), "{what} row {row}");
                assert_eq!(db.weights(), dc.weights(), "{what} row {row}");
                assert_eq!(dc.support(), None);
                if let Some(ids) = da.support() {
                    let positive: Vec<u32> = (0..v as u32)
                        .filter(|&i| dc.weights()[i as usize] > 0)
                        .collect();
                    assert_eq!(ids, &positive[..], "{what} row {row}");
                    assert!(ids.len() <= SUPPORT_CAP);
                    sparse_rows += 1;
                }
                // `with_supports` forgets at every new backend: only rows written since.
                if let Some(ids) = db.support() {
                    assert_eq!(Some(ids), da.support(), "{what} row {row}");
                }
            }
            // Draws from every row, many keys.
            let sj: Vec<SampleJob> = (0..rows as u32)
                .flat_map(|row| {
                    (0..8).map(move |pos| SampleJob {
                        row,
                        key: Key::new(case as u64, step, Purpose::SAMPLE, pos),
                    })
                })
                .collect();
            let (mut oa, mut ob, mut oc) =
                (vec![0; sj.len()], vec![0; sj.len()], vec![0; sj.len()]);
            let (sa, sb, sc) = (
                a.sample(&sj, &mut oa),
                b.sample(&sj, &mut ob),
                c.sample(&sj, &mut oc),
            );
            assert_eq!(sa, sc, "{what}");
            assert_eq!(sb, sc, "{what}");
            if sc.is_ok() {
                assert_eq!(oa, oc, "{what}");
                assert_eq!(ob, oc, "{what}");
                draws += sj.len();
            }
            // Top-k of a row and a point-mass tree over rows 0..3 (leaf draws sample a row).
            let row = rng.below(rows as u64) as u32;
            let (mut ta, mut tc) = (vec![0u32; 3], vec![0u32; 3]);
            let (mut pa, mut pc) = (vec![0f64; 3], vec![0f64; 3]);
            assert_eq!(
                a.top_k(row, &mut ta, &mut pa),
                c.top_k(row, &mut tc, &mut pc),
                "{what}"
            );
            assert_eq!((ta, pa), (tc, pc), "{what}");
            let tokens: Vec<u32> = (0..3).map(|_| rng.below(v as u64) as u32).collect();
            let job = TreeJob {
                tree: DraftTree {
                    tokens: &tokens,
                    parents: &[u32::MAX, 0, 1],
                },
                target_base: 0,
                draft_base: None,
                keys: NodeKeys {
                    seed: case as u64,
                    stream: 1,
                    position: step,
                },
            };
            for criterion in [Criterion::Exact, Criterion::Coupled] {
                let (mut qa, mut qc) = ([0u32; 3], [0u32; 3]);
                assert_eq!(
                    a.verify_tree(&job, &criterion, &mut qa),
                    c.verify_tree(&job, &criterion, &mut qc),
                    "{what}"
                );
                assert_eq!(qa, qc, "{what}");
            }
        }
    }
    // The listed path ran (far below what this seed gives).
    assert!(sparse_rows > 500 && draws > 10_000, "{sparse_rows} {draws}");
}
