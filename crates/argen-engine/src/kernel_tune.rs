//! `argen calibrate --kernels`: choose the CPU kernels' speed-only settings
//! ([`argen_cpu::gemm::Tuning`]) for this machine by timing the model itself.
//!
//! # Why
//! The GEMM kernels' prefetch distances and kinds, input pairing, panels, column-block size and
//! ranges per thread are picked per CPU model from a table measured on the CPUs the project
//! has run on (`argen_cpu::gemm::tune`). Any other CPU gets [`Tuning::generic`], and on a CPU the
//! table has not seen that can be far from what it could do: on the Zen 5 dev box (AMD EPYC
//! family 1Ah model 2, one core), GPT-B's bf16 target calls of 2 / 8 / 16 rows cost 6.87 /
//! 15.90 / 24.64 ms with the generic entry against 5.56 / 8.45 / 16.32 ms with Zen 5's own
//! (`docs/runtime-performance.md`, session 15). The settings cannot change a result — every
//! kernel computes the documented reduction order whatever they are — so a calibration is free
//! to try any of them.
//!
//! # How
//! A coordinate descent over [`argen_cpu::gemm::search_space`] (the keys that can matter to the
//! model's weight dtype, f32 layout and thread count; [`argen_cpu::gemm::fast_search_space`]
//! where the model's calls run on the opt-in AVX512-BF16 class, `--fast-kernels`), from the
//! best of the tuning in force and the built-in table's whole entries
//! ([`argen_cpu::gemm::known_tables`], scored and confirmed as in step 2), so that a CPU the
//! table does not name starts from its nearest relative's:
//!
//! 1. the *score* of a tuning is the mean of the logarithms of the target model's call costs at
//!    [`KernelTuneOptions::rows`] (default 2, 8, 10 and 16 rows: the decode step with
//!    guidance, a γ = 4 chain draft's verification with guidance — the size where tall f32
//!    tiles and the even split of half-precision calls act, session 16 — and two more
//!    verification sizes), each measured exactly as `argen calibrate` measures a point
//!    ([`crate::calibrate::calibrate_models`]: real protocol actions, a warm-up, round-robin
//!    rounds, the median), with the tuning set through [`set_tuning`];
//! 2. for each key and each of its other values, the tuning with that one value changed is
//!    scored; a candidate that scores at least [`KernelTuneOptions::min_gain`] better is
//!    measured again *after the incumbent is measured again*, and replaces it only if it still
//!    wins by that margin (a burst of load from another process during one measurement
//!    cannot make a worse setting win);
//! 3. sweeps repeat until one changes nothing (at most [`KernelTuneOptions::max_sweeps`]);
//! 4. finally the starting tuning and the chosen one are scored twice more, alternately; the
//!    chosen one is kept only if it is faster on that comparison (else the start is), and the
//!    report gives its speed-up there.
//!
//! The chosen tuning stays in force in the process, and `argen calibrate --kernels` records
//! it ([`Tuning::spec`]) in the cost profile it then measures under it
//! ([`crate::cost_file::CostFile::kernel_tuning`]); [`apply_from`] sets it again in a later
//! process on the same CPU.

use std::path::Path;

use crate::calibrate::{calibrate_models, capacity, cpu_name, weight_dtype, CalibrateOptions};
use crate::cost_file::CostFile;
use crate::{Error, ModelDir};
use argen_cpu::gemm::{
    candidate, compose, fast_search_space, known_tables, search_space, set_tuning, tuning, Class,
    Tuning, SPEC_KEYS,
};
use argen_cpu::Cpu;
use argen_model::Gpt;

/// How to tune.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTuneOptions {
    /// Target row counts whose costs make the score (each as in
    /// [`CalibrateOptions::rows`]).
    pub rows: Vec<u32>,
    /// Seconds each scoring's measured rounds should take (3 to 6 rounds whatever the budget).
    pub budget_seconds: f64,
    /// The smallest relative gain of the score (geometric mean of the costs) that changes a
    /// setting, e.g. 0.02 for 2 %.
    pub min_gain: f64,
    /// Most sweeps over the keys.
    pub max_sweeps: u32,
}

impl Default for KernelTuneOptions {
    /// Rows 2, 8, 10 and 16, 0.15 s per scoring, 1 % gains, two sweeps.
    fn default() -> KernelTuneOptions {
        KernelTuneOptions {
            rows: vec![2, 8, 10, 16],
            budget_seconds: 0.15,
            min_gain: 0.01,
            max_sweeps: 2,
        }
    }
}

/// What a kernel calibration chose.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTuneReport {
    /// The chosen tuning (in force when the calibration returns).
    pub tuning: Tuning,
    /// The tuning the calibration started from.
    pub start: Tuning,
    /// The settings it changed: key, value before, value after.
    pub changes: Vec<(&'static str, usize, usize)>,
    /// Tunings scored.
    pub scored: usize,
    /// The final comparison's costs per row count: (rows, start ns, chosen ns).
    pub costs: Vec<(u32, u64, u64)>,
}

impl KernelTuneReport {
    /// The chosen tuning's speed-up over the start in the final comparison (geometric mean
    /// over the row counts; above 1: faster).
    pub fn speedup(&self) -> f64 {
        (mean_ln(self.costs.iter().map(|c| c.1)) - mean_ln(self.costs.iter().map(|c| c.2))).exp()
    }
}

/// Tunes the CPU kernels for the target model `gpt` (weights of `dtype`: `"f32"`, `"bf16"` or
/// `"f16"`; capacity at least [`crate::calibrate::capacity`] of `opts`) on this machine, timing
/// its calls with `opts`'s clock, statistic, guidance and sampler (its rows and budget are
/// replaced by `tune`'s); reports progress lines to `progress`. Leaves the chosen tuning in
/// force ([`set_tuning`]); on an error, the tuning it started from.
pub fn tune_kernels(
    gpt: &mut Gpt<Cpu>,
    dtype: &str,
    opts: &CalibrateOptions,
    tune: &KernelTuneOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<KernelTuneReport, Error> {
    if !(tune.min_gain.is_finite() && tune.min_gain >= 0.0) {
        return Err(Error::invalid(format!(
            "the kernel calibration's minimum gain must be a finite number ≥ 0, not {}",
            tune.min_gain
        )));
    }
    if !(tune.budget_seconds.is_finite() && tune.budget_seconds > 0.0) {
        return Err(Error::invalid(format!(
            "the kernel calibration's budget must be a positive number of seconds, not {}",
            tune.budget_seconds
        )));
    }
    let start = tuning();
    let result = descend(gpt, dtype, opts, tune, start, progress);
    if result.is_err() {
        set_tuning(start);
    }
    result
}

/// [`tune_kernels`] from `start`.
fn descend(
    gpt: &mut Gpt<Cpu>,
    dtype: &str,
    opts: &CalibrateOptions,
    tune: &KernelTuneOptions,
    start: Tuning,
    progress: &mut dyn FnMut(&str),
) -> Result<KernelTuneReport, Error> {
    let mut o = opts.clone();
    o.rows = tune.rows.clone();
    o.budget_seconds = tune.budget_seconds;
    o.min_rounds = 3;
    o.max_rounds = 6;
    let mut sc = Scorer {
        gpt,
        opts: o,
        dtype,
        scored: 0,
        margin: (1.0 + tune.min_gain).ln(),
    };
    let mut best = start;
    let mut best_score = sc.score(best)?;
    // The class of kernels the model's calls ran on (known once a call has run): the
    // AVX512-BF16 class has settings of its own ([`fast_search_space`]); the AMX class reads
    // none of either set but attention's and the ranges', which the exact space has too.
    let fast = sc.gpt.compute().kernel_class() == Class::Avx512Bf16;
    let space_of = |t: &Tuning| {
        if fast {
            fast_search_space(opts.threads)
        } else {
            search_space(t, dtype, opts.threads)
        }
    };
    // Whole entries of the built-in table first (the f32 layout kept: it is the model's).
    for (name, table) in known_tables() {
        let t = Tuning {
            pack_f32_max_k: start.pack_f32_max_k,
            f32_class_major: start.f32_class_major,
            f16_class_major: start.f16_class_major,
            bf16_class_major: start.bf16_class_major,
            ..table
        };
        if t == best {
            continue;
        }
        if let Some(gain) = sc.offer(&mut best, &mut best_score, t)? {
            progress(&format!(
                "  starting from the table's {name} entry ({:+.1} %)",
                -gain * 100.0
            ));
        }
    }
    let space = space_of(&best);
    let keys: usize = space.iter().map(|(_, v)| v.len()).sum();
    progress(&format!(
        "tuning the kernels: {} settings ({keys} values) for {dtype} weights{} on {} thread(s), \
         scored on the target's calls of {} rows",
        space.len(),
        if fast { " (fast class)" } else { "" },
        opts.threads,
        join(&tune.rows)
    ));
    for sweep in 1..=tune.max_sweeps.max(1) {
        let mut changed = false;
        // Again each sweep: a setting turned on brings the ones that act with it.
        let space = space_of(&best);
        for (key, values) in &space {
            for &v in values {
                let was = best.get(key).unwrap_or(v);
                if was == v {
                    continue;
                }
                let cand = candidate(&best, key, v);
                if let Some(gain) = sc.offer(&mut best, &mut best_score, cand)? {
                    progress(&format!(
                        "  sweep {sweep}: {key} {} → {} ({:+.1} %)",
                        show(was),
                        show(v),
                        -gain * 100.0
                    ));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // The final comparison, alternating: start, chosen, start, chosen (the mean of the two).
    let mut costs: Vec<(u32, u64, u64)> = Vec::new();
    if best == start {
        costs = sc.measure(start)?.iter().map(|&(r, t)| (r, t, t)).collect();
    } else {
        let (a1, b1, a2, b2) = (
            sc.measure(start)?,
            sc.measure(best)?,
            sc.measure(start)?,
            sc.measure(best)?,
        );
        for (((&(r, x1), &(_, y1)), &(_, x2)), &(_, y2)) in a1.iter().zip(&b1).zip(&a2).zip(&b2) {
            costs.push((r, (x1 + x2) / 2, (y1 + y2) / 2));
        }
    }
    let mut report = KernelTuneReport {
        tuning: best,
        start,
        changes: changes(&start, &best),
        scored: sc.scored,
        costs,
    };
    // A choice that does not hold up in the final comparison is not kept.
    if best != start && report.speedup() <= 1.0 {
        progress(&format!(
            "the chosen settings ({}) were not faster than the start in the final comparison: \
             keeping the start",
            report
                .changes
                .iter()
                .map(|&(k, a, b)| format!("{k} {} → {}", show(a), show(b)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        report.tuning = start;
        report.changes.clear();
        for c in &mut report.costs {
            c.2 = c.1;
        }
    }
    set_tuning(report.tuning);
    progress(&format!(
        "kernels tuned: {} setting(s) changed, {} tunings scored; the chosen one against the \
         start: {}; {:.3}× in all",
        report.changes.len(),
        report.scored,
        report
            .costs
            .iter()
            .map(|&(r, a, b)| format!("{r} rows {:.3} → {:.3} ms", a as f64 / 1e6, b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", "),
        report.speedup()
    ));
    Ok(report)
}

/// Scores tunings on the loaded model ([`tune_kernels`], module docs).
struct Scorer<'a> {
    gpt: &'a mut Gpt<Cpu>,
    /// The measurement: the tune's rows and budget, 3 to 6 rounds.
    opts: CalibrateOptions,
    dtype: &'a str,
    /// Measurements made.
    scored: usize,
    /// `ln(1 + min_gain)`.
    margin: f64,
}

impl Scorer<'_> {
    /// The target's call costs `(rows, ns)` under tuning `t` (set, and left in force).
    fn measure(&mut self, t: Tuning) -> Result<Vec<(u32, u64)>, Error> {
        set_tuning(t);
        self.scored += 1;
        let file = calibrate_models(self.gpt, None, self.dtype, &self.opts, &mut |_| {})?;
        Ok(file.profile.target.points().collect())
    }

    /// The score of `t`: the mean logarithm of its call costs (lower is faster).
    fn score(&mut self, t: Tuning) -> Result<f64, Error> {
        Ok(mean_ln(self.measure(t)?.iter().map(|c| c.1)))
    }

    /// Offers `cand` to the incumbent `best` (scored `best_score`): scored once; if it wins by
    /// the margin, both are measured again — the incumbent first — and it must win by the
    /// margin again to replace the incumbent. Returns its gain (0.05: 5 % cheaper) when it
    /// did; the fresh scores replace `best_score` either way.
    fn offer(
        &mut self,
        best: &mut Tuning,
        best_score: &mut f64,
        cand: Tuning,
    ) -> Result<Option<f64>, Error> {
        if self.score(cand)? > *best_score - self.margin {
            return Ok(None);
        }
        let b = self.score(*best)?;
        let c = self.score(cand)?;
        if c < b - self.margin {
            *best = cand;
            *best_score = c;
            Ok(Some(1.0 - (c - b).exp()))
        } else {
            *best_score = b;
            Ok(None)
        }
    }
}

/// A stored layout of a dtype's matrices: its name and the settings that select it.
type Layout = (&'static str, fn(&mut Tuning));

/// The layouts a kernel calibration compares for `dtype` weights ([`tune_kernels_loading`]):
/// f32 row-major, packed in tiles of four rows, or class-major; half precision packed or
/// class-major.
fn layouts(dtype: &str) -> Vec<Layout> {
    match dtype {
        "f32" => vec![
            ("row-major", |t| t.pack_f32_max_k = 0),
            ("packed", |t| {
                t.pack_f32_max_k = usize::MAX;
                t.f32_class_major = false;
            }),
            ("class-major", |t| {
                t.pack_f32_max_k = usize::MAX;
                t.f32_class_major = true;
            }),
        ],
        "bf16" => vec![
            ("packed", |t| t.bf16_class_major = false),
            ("class-major", |t| t.bf16_class_major = true),
        ],
        _ => vec![
            ("packed", |t| t.f16_class_major = false),
            ("class-major", |t| t.f16_class_major = true),
        ],
    }
}

/// Whether `a` and `b` store `dtype` matrices alike ([`Tuning::f32_class_major`] acts only on
/// the f32 matrices that [`Tuning::pack_f32_max_k`] packs).
fn same_layout(a: &Tuning, b: &Tuning, dtype: &str) -> bool {
    match dtype {
        "f32" => {
            a.pack_f32_max_k == b.pack_f32_max_k
                && (a.pack_f32_max_k == 0 || a.f32_class_major == b.f32_class_major)
        }
        "bf16" => a.bf16_class_major == b.bf16_class_major,
        _ => a.f16_class_major == b.f16_class_major,
    }
}

/// [`tune_kernels`] for a model of `dtype` weights that `load` loads (each call a fresh copy,
/// with the tuning in force at the call: [`Tuning::pack_f32_max_k`],
/// [`Tuning::f32_class_major`], [`Tuning::f16_class_major`] and [`Tuning::bf16_class_major`]
/// decide the stored layout of the matrices at load). Every layout of the dtype is tuned —
/// the one in force, then each other (the model loaded again for each) — and another is
/// chosen only if its tuned costs beat the first's by [`KernelTuneOptions::min_gain`]
/// (geometric mean over the rows; the best such). A model whose bf16 weights run on an
/// opt-in fast class (which keeps its own layout) tunes once. Leaves the chosen tuning in
/// force.
pub fn tune_kernels_loading(
    load: &mut dyn FnMut() -> Result<Gpt<Cpu>, Error>,
    dtype: &str,
    opts: &CalibrateOptions,
    tune: &KernelTuneOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<KernelTuneReport, Error> {
    let start = tuning();
    let mut gpt = load()?;
    let first = tune_kernels(&mut gpt, dtype, opts, tune, progress)?;
    let fast = gpt.compute().kernel_class() != Class::Exact;
    drop(gpt);
    if fast {
        return Ok(first);
    }
    let mean = |r: &KernelTuneReport| mean_ln(r.costs.iter().map(|c| c.2));
    let (mut chosen, mut chosen_gain, mut why) = (None, 0.0, None);
    for (name, select) in layouts(dtype) {
        let mut other = first.tuning;
        select(&mut other);
        if same_layout(&other, &start, dtype) {
            continue;
        }
        progress(&format!(
            "tuning the kernels again with {dtype} matrices stored {name} (the model is loaded \
             again)"
        ));
        set_tuning(other);
        let result = load().and_then(|mut gpt| tune_kernels(&mut gpt, dtype, opts, tune, progress));
        let second = match result {
            Ok(r) => r,
            Err(e) => {
                set_tuning(first.tuning);
                return Err(e);
            }
        };
        let gain = (mean(&first) - mean(&second)).exp() - 1.0;
        progress(&format!(
            "  stored {name}: tuned costs {:+.1} % against the layout in force",
            -gain * 100.0
        ));
        if gain >= tune.min_gain && gain > chosen_gain {
            (chosen, chosen_gain, why) = (Some(second), gain, Some(name));
        }
    }
    let chosen = chosen.unwrap_or(first);
    progress(&match why {
        Some(name) => format!("keeping the {dtype} matrices stored {name}"),
        None => format!("keeping the {dtype} matrices in the layout in force"),
    });
    set_tuning(chosen.tuning);
    Ok(KernelTuneReport {
        start,
        changes: changes(&start, &chosen.tuning),
        ..chosen
    })
}

/// A setting's value for the progress lines (`usize::MAX` as "never").
fn show(v: usize) -> String {
    if v == usize::MAX {
        "never".into()
    } else {
        v.to_string()
    }
}

/// The mean of the logarithms of `costs` (ns, each at least 1): the log of their geometric
/// mean, the score's unit.
fn mean_ln(costs: impl ExactSizeIterator<Item = u64>) -> f64 {
    let n = costs.len().max(1) as f64;
    costs.map(|c| (c.max(1) as f64).ln()).sum::<f64>() / n
}

/// The settings that differ from `a` in `b`: key, value in `a`, value in `b`.
fn changes(a: &Tuning, b: &Tuning) -> Vec<(&'static str, usize, usize)> {
    SPEC_KEYS
        .iter()
        .filter_map(|&k| {
            let (x, y) = (a.get(k)?, b.get(k)?);
            (x != y).then_some((k, x, y))
        })
        .collect()
}

fn join(rows: &[u32]) -> String {
    rows.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`tune_kernels_loading`] for the target model of the model directory `dir` on `cpu`, with
/// [`KernelTuneOptions::default`] (`argen calibrate --kernels`' first part).
pub fn tune_dir(
    dir: &ModelDir,
    cpu: &Cpu,
    opts: &CalibrateOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<KernelTuneReport, Error> {
    let tune = KernelTuneOptions::default();
    let cfg = dir.gpt_config().map_err(Error::model)?;
    let cap = capacity(
        &cfg,
        &CalibrateOptions {
            rows: tune.rows.clone(),
            ..opts.clone()
        },
    );
    let dtype = weight_dtype(&dir.file("gpt.safetensors"));
    let mut load = || dir.gpt(cpu, &cfg, cap).map_err(Error::model);
    tune_kernels_loading(&mut load, &dtype, opts, &tune, progress)
}

/// [`apply_from`] with the cost profile of the model directory `dir`, if it has one that
/// reads; an error names the file and a malformed tuning (a profile that cannot be read at
/// all is left to `--draft auto`, which reports it when it needs it).
pub fn apply_in(dir: &Path) -> Result<Option<String>, String> {
    let path = crate::cost_file::path_in(dir);
    match crate::cost_file::read(&path) {
        Ok(Some(f)) => apply_from(&f).map_err(|e| format!("{}: {e}", path.display())),
        _ => Ok(None),
    }
}

/// Applies the kernel tuning recorded in `file` ([`CostFile::kernel_tuning`]) when the file
/// was measured on this machine's CPU (`device` `"cpu"` and `cpu` equal to [`cpu_name`]):
/// [`compose`] (the CPU's table, the file's settings, then `ARGEN_GEMM_TUNING`'s overrides) and
/// [`set_tuning`]. Returns the applied spec, `None` where the file has none or is another
/// machine's; an error names a malformed spec (the tuning in force is then left as it was).
pub fn apply_from(file: &CostFile) -> Result<Option<String>, String> {
    let Some(spec) = &file.kernel_tuning else {
        return Ok(None);
    };
    if file.device != "cpu" || file.cpu != cpu_name() {
        return Ok(None);
    }
    set_tuning(compose(spec)?);
    Ok(Some(spec.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argen_core::cost::{CostCurve, CostProfile};

    fn file(cpu: &str, device: &str, spec: Option<&str>) -> CostFile {
        CostFile {
            version: crate::cost_file::VERSION,
            cpu: cpu.into(),
            device: device.into(),
            kernels: "exact".into(),
            threads: 1,
            dtype: "f32".into(),
            context: 8,
            prefill: None,
            clock: "wall".into(),
            kernel_tuning: spec.map(str::to_string),
            profile: CostProfile {
                target: CostCurve::new(&[(2, 1000)]).unwrap(),
                drafter: None,
            },
        }
    }

    /// Only a tuning recorded on this CPU applies; a malformed one is an error that names it
    /// and leaves the tuning in force alone.
    #[test]
    fn a_recorded_tuning_applies_only_on_its_cpu() {
        let before = tuning();
        let here = cpu_name();
        let spec = Tuning {
            block_bytes: before.block_bytes + 4096,
            ..before
        }
        .spec();
        assert_eq!(apply_from(&file(&here, "cpu", None)), Ok(None));
        assert_eq!(
            apply_from(&file("another CPU", "cpu", Some(&spec))),
            Ok(None)
        );
        assert_eq!(apply_from(&file(&here, "cuda", Some(&spec))), Ok(None));
        assert_eq!(tuning(), before);
        let e = apply_from(&file(&here, "cpu", Some("block_bytes=x"))).unwrap_err();
        assert!(e.contains("block_bytes"), "{e}");
        assert_eq!(tuning(), before);
        assert_eq!(
            apply_from(&file(&here, "cpu", Some(&spec))),
            Ok(Some(spec.clone()))
        );
        // The recorded settings, under any `ARGEN_GEMM_TUNING` overrides of this process.
        assert_eq!(tuning(), compose(&spec).unwrap());
        set_tuning(before);
    }
}
