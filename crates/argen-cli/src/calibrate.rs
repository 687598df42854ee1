//! `argen calibrate`: measure the model directory's cost profile on this machine
//! ([`argen_engine::calibrate`]) and write it (default `MODEL/cost-profile.json`,
//! [`argen_engine::cost_file`]); and [`profile_for`], which `argen bench` uses to read the
//! profile of a model directory or to calibrate when there is none.

use std::path::PathBuf;

use argen_cpu::Cpu;
use argen_engine::calibrate::{calibrate_dir, CalibrateOptions, Statistic};
use argen_engine::clock::Clock;
use argen_engine::cost_file::{self, CostFile};
use argen_engine::kernel_tune::tune_dir;
use argen_engine::model_dir::resolve;
use argen_engine::{Engine, Runtime};

use crate::args::{CalibrateArgs, DeviceArg, StatisticArg};

/// `argen calibrate`.
pub fn run(a: &CalibrateArgs) -> Result<(), String> {
    let dir = resolve(a.model.as_deref())?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| cost_file::path_in(&dir.dir));
    crate::generate::check_writable(&out)?;
    let mut progress = |line: &str| {
        if !a.quiet {
            crate::errln!("argen calibrate: {line}");
        }
    };
    let cpu = Cpu::new(a.threads).map_err(|e| e.to_string())?;
    let mut opts = CalibrateOptions::for_cpu(&cpu);
    opts.rows = a.rows.clone();
    opts.context = a.context;
    opts.budget_seconds = a.budget;
    opts.statistic = match a.statistic {
        StatisticArg::Median => Statistic::Median,
        StatisticArg::Mean => Statistic::Mean,
    };
    opts.clock = a.clock.clock();
    let device = match a.device {
        DeviceArg::Cpu => "cpu",
        DeviceArg::Cuda => "cuda",
    };
    opts.clock.check(device)?;
    if a.kernels && !matches!(a.device, DeviceArg::Cpu) {
        return Err("--kernels tunes the CPU kernels: it needs --device cpu".into());
    }
    let kernel_tuning = if a.kernels {
        Some(tune_dir(&dir, &cpu, &opts, &mut progress)?.tuning.spec())
    } else {
        None
    };
    let file = match a.device {
        DeviceArg::Cpu => CostFile {
            kernel_tuning,
            ..calibrate_dir(&dir, &cpu, &opts, &mut progress)?
        },
        DeviceArg::Cuda => {
            let c = crate::device::cuda_compute()?;
            opts.cpu = argen_cuda::launch::Executor::describe(c.executor());
            opts.device = "cuda".into();
            calibrate_dir(&dir, &c, &opts, &mut progress)?
        }
    };
    cost_file::write(&out, &file)?;
    progress(&format!("wrote {}", out.display()));
    Ok(())
}

/// Applies the kernel tuning recorded in the cost profile of model directory `dir` when it
/// was calibrated on this CPU (`argen calibrate --kernels`,
/// [`argen_engine::kernel_tune::apply_in`]); a malformed tuning is a warning, and the CPU's
/// built-in tuning stays.
pub fn apply_kernel_tuning(dir: &std::path::Path) {
    if let Err(e) = argen_engine::kernel_tune::apply_in(dir) {
        crate::errln!("argen: warning: {e}; the CPU's built-in kernel tuning is used");
    }
}

/// Where a bench's profile came from.
pub enum ProfileSource {
    /// Read from this file.
    File(PathBuf),
    /// Measured at the start of the run, for this reason.
    Calibrated(String),
}

/// Why the profile `f` cannot cost a run on `device` (`"cpu"` or `"cuda"`) with `threads`
/// threads, `kernels` and `clock` on `processor` ([`processor_for`]), or `None` if it can: it
/// must have been measured on the same device and processor, with the same thread count,
/// kernel class and clock.
pub fn mismatch(
    f: &CostFile,
    device: &str,
    processor: &str,
    threads: usize,
    kernels: &str,
    clock: Clock,
) -> Option<String> {
    let same_processor = f.cpu == processor;
    let same = same_processor
        && f.device == device
        && f.threads == threads
        && f.kernels == kernels
        && f.clock == clock.name();
    (!same).then(|| {
        let mut why = format!(
            "measured on {} with {} threads, {} kernels and the {} clock; this run uses {device} \
             with {threads} threads, {kernels} kernels and the {} clock",
            f.device,
            f.threads,
            f.kernels,
            f.clock,
            clock.name()
        );
        if !same_processor {
            why.push_str(&format!(
                ", on another processor ({}; this one: {processor})",
                f.cpu
            ));
        }
        why
    })
}

/// The processor a profile for `device` names on this machine: the CPU's name
/// ([`argen_engine::calibrate::cpu_name`]) for `"cpu"`, else the device's `name`.
pub fn processor_for(device: &str, name: &str) -> String {
    if device == "cpu" {
        argen_engine::calibrate::cpu_name()
    } else {
        name.to_owned()
    }
}

/// The cost profile for a run of `engine` (on `device`, `"cpu"` or `"cuda"`, named `name`, with
/// `threads` threads, timed by `clock`): its model directory's `cost-profile.json` if it was
/// measured for the same device, processor, kernels, thread count and clock ([`mismatch`]);
/// otherwise a fresh calibration of the engine's own models
/// ([`argen_engine::Engine::calibrate`], not written). A malformed profile file is an error
/// naming it.
pub fn profile_for<C: Runtime>(
    engine: &mut Engine<C>,
    device: &str,
    name: &str,
    threads: usize,
    clock: Clock,
    mut progress: impl FnMut(&str),
) -> Result<(CostFile, ProfileSource), String> {
    let path = cost_file::path_in(&engine.model_dir().dir);
    let kernels = engine.compute().kernel_class();
    let why = match cost_file::read(&path)? {
        Some(f) => match mismatch(
            &f,
            device,
            &processor_for(device, name),
            threads,
            kernels,
            clock,
        ) {
            None => return Ok((f, ProfileSource::File(path))),
            Some(why) => format!("{} was {why}", path.display()),
        },
        None => format!("{} does not exist", path.display()),
    };
    let opts = calibrate_options(device, name, threads, clock)?;
    let file = engine.calibrate(&opts, &mut progress)?;
    Ok((file, ProfileSource::Calibrated(why)))
}

/// The options of a calibration for a run on `device` (named `name`) with `threads` threads,
/// timed by `clock` (for [`argen_engine::Engine::calibrate`]; `argen bench` builds them once
/// and calibrates with them again during an interleaved run).
pub fn calibrate_options(
    device: &str,
    name: &str,
    threads: usize,
    clock: Clock,
) -> Result<CalibrateOptions, String> {
    let cpu = Cpu::new(threads).map_err(|e| e.to_string())?;
    let mut opts = CalibrateOptions::for_cpu(&cpu);
    opts.device = device.into();
    opts.threads = threads;
    opts.clock = clock;
    opts.cpu = processor_for(device, name);
    Ok(opts)
}

/// The profile whose every point (target and drafter curves, prefill) is the median, over
/// `files`, of that point's cost (the upper median of an even count): the calibrations of one
/// run taken at several moments, merged so that a change of the machine's speed partway
/// through weighs as much as it lasted. Files measured at other points, or an empty slice,
/// give the first file unchanged (`None` for an empty slice).
pub fn median_profile(files: &[CostFile]) -> Option<CostFile> {
    use argen_core::cost::CostCurve;
    let first = files.first()?;
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let curve = |pick: &dyn Fn(&CostFile) -> Option<&CostCurve>| -> Option<Option<CostCurve>> {
        let Some(c0) = pick(first) else {
            return Some(None);
        };
        let rows: Vec<u32> = c0.points().map(|(r, _)| r).collect();
        let mut columns = vec![Vec::with_capacity(files.len()); rows.len()];
        for f in files {
            let c = pick(f)?;
            let points: Vec<(u32, u64)> = c.points().collect();
            if points.len() != rows.len() || points.iter().zip(&rows).any(|(p, r)| p.0 != *r) {
                return None;
            }
            for (col, p) in columns.iter_mut().zip(points) {
                col.push(p.1);
            }
        }
        let merged: Vec<(u32, u64)> = rows
            .into_iter()
            .zip(columns.into_iter().map(median))
            .collect();
        CostCurve::new(&merged).ok().map(Some)
    };
    let (Some(Some(target)), Some(drafter)) = (
        curve(&|f: &CostFile| Some(&f.profile.target)),
        curve(&|f: &CostFile| f.profile.drafter.as_ref()),
    ) else {
        return Some(first.clone());
    };
    let prefill = if files.iter().all(|f| f.prefill.is_some()) {
        first
            .prefill
            .map(|_| median(files.iter().filter_map(|f| f.prefill).collect()))
    } else {
        first.prefill
    };
    let mut out = first.clone();
    out.profile.target = target;
    out.profile.drafter = drafter;
    out.prefill = prefill;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argen_core::cost::{CostCurve, CostProfile};

    fn file(clock: &str) -> CostFile {
        CostFile {
            version: cost_file::VERSION,
            cpu: "AMD EPYC".into(),
            device: "cpu".into(),
            kernels: "exact".into(),
            threads: 1,
            dtype: "f32".into(),
            context: 8,
            prefill: None,
            clock: clock.into(),
            kernel_tuning: None,
            profile: CostProfile {
                target: CostCurve::new(&[(2, 100)]).unwrap(),
                drafter: None,
            },
        }
    }

    fn curve_file(
        target: &[(u32, u64)],
        drafter: Option<&[(u32, u64)]>,
        prefill: Option<u64>,
    ) -> CostFile {
        let mut f = file("wall");
        f.profile.target = CostCurve::new(target).unwrap();
        f.profile.drafter = drafter.map(|d| CostCurve::new(d).unwrap());
        f.prefill = prefill;
        f
    }

    #[test]
    fn the_median_profile_takes_each_points_median() {
        let a = curve_file(&[(1, 10), (2, 20)], Some(&[(1, 5)]), Some(100));
        let b = curve_file(&[(1, 30), (2, 21)], Some(&[(1, 7)]), Some(300));
        let c = curve_file(&[(1, 20), (2, 90)], Some(&[(1, 6)]), Some(200));
        let m = median_profile(&[a.clone(), b.clone(), c]).unwrap();
        assert_eq!(
            m.profile.target.points().collect::<Vec<_>>(),
            [(1, 20), (2, 21)]
        );
        assert_eq!(
            m.profile.drafter.unwrap().points().collect::<Vec<_>>(),
            [(1, 6)]
        );
        assert_eq!(m.prefill, Some(200));
        // Two files: the upper median.
        let m2 = median_profile(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            m2.profile.target.points().collect::<Vec<_>>(),
            [(1, 30), (2, 21)]
        );
        // One file, or files measured at other points: the first unchanged.
        assert_eq!(median_profile(std::slice::from_ref(&a)).unwrap(), a);
        let other = curve_file(&[(1, 1), (4, 2)], Some(&[(1, 5)]), Some(100));
        assert_eq!(median_profile(&[a.clone(), other]).unwrap(), a);
        let no_drafter = curve_file(&[(1, 10), (2, 20)], None, Some(100));
        assert_eq!(median_profile(&[a.clone(), no_drafter]).unwrap(), a);
        assert!(median_profile(&[]).is_none());
    }

    #[test]
    fn a_profile_of_another_clock_is_recalibrated() {
        let (w, c) = (file("wall"), file("cpu"));
        assert_eq!(
            mismatch(&w, "cpu", "AMD EPYC", 1, "exact", Clock::Wall),
            None
        );
        assert_eq!(
            mismatch(&c, "cpu", "AMD EPYC", 1, "exact", Clock::Cpu),
            None
        );
        let why = mismatch(&w, "cpu", "AMD EPYC", 1, "exact", Clock::Cpu).unwrap();
        assert!(
            why.contains("the wall clock") && why.ends_with("the cpu clock"),
            "{why}"
        );
        assert!(mismatch(&c, "cpu", "AMD EPYC", 1, "exact", Clock::Wall).is_some());
        // The other conditions still count.
        assert!(mismatch(&c, "cpu", "AMD EPYC", 2, "exact", Clock::Cpu).is_some());
        assert!(mismatch(&c, "cuda", "AMD EPYC", 1, "exact", Clock::Cpu).is_some());
        assert!(mismatch(&c, "cpu", "AMD EPYC", 1, "avx512-bf16", Clock::Cpu).is_some());
        // Another processor (here another generation under the same name) as well, and says so.
        let why = mismatch(
            &c,
            "cpu",
            "AMD EPYC (family 26, model 2)",
            1,
            "exact",
            Clock::Cpu,
        )
        .unwrap();
        assert!(
            why.ends_with(
                "on another processor (AMD EPYC; this one: AMD EPYC (family 26, model 2))"
            ),
            "{why}"
        );
    }
}
