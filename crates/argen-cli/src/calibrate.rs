//! `argen calibrate`: measure the model directory's cost profile on this machine
//! ([`argen_engine::calibrate`]) and write it (default `MODEL/cost-profile.json`,
//! [`argen_engine::cost_file`]); and [`profile_for`], which `argen bench` uses to read the
//! profile of a model directory or to calibrate when there is none.

use std::path::PathBuf;

use argen_cpu::Cpu;
use argen_engine::calibrate::{calibrate_dir, CalibrateOptions, Statistic};
use argen_engine::clock::Clock;
use argen_engine::cost_file::{self, CostFile};
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
    let file = match a.device {
        DeviceArg::Cpu => calibrate_dir(&dir, &cpu, &opts, &mut progress)?,
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

/// Where a bench's profile came from.
pub enum ProfileSource {
    /// Read from this file.
    File(PathBuf),
    /// Measured at the start of the run, for this reason.
    Calibrated(String),
}

/// Why the profile `f` cannot cost a run on `device` (`"cpu"` or `"cuda"`) with `threads`
/// threads, `kernels` and `clock`, or `None` if it can: it must have been measured on the same
/// device, with the same thread count, kernel class and clock.
pub fn mismatch(
    f: &CostFile,
    device: &str,
    threads: usize,
    kernels: &str,
    clock: Clock,
) -> Option<String> {
    let same = f.device == device
        && f.threads == threads
        && f.kernels == kernels
        && f.clock == clock.name();
    (!same).then(|| {
        format!(
            "measured on {} with {} threads, {} kernels and the {} clock; this run uses {device} \
             with {threads} threads, {kernels} kernels and the {} clock",
            f.device,
            f.threads,
            f.kernels,
            f.clock,
            clock.name()
        )
    })
}

/// The cost profile for a run of `engine` (on `device`, `"cpu"` or `"cuda"`, named `name`, with
/// `threads` threads, timed by `clock`): its model directory's `cost-profile.json` if it was
/// measured for the same device, kernels, thread count and clock ([`mismatch`]); otherwise a
/// fresh calibration of the engine's own models ([`argen_engine::Engine::calibrate`], not
/// written). A malformed profile file is an error naming it.
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
        Some(f) => match mismatch(&f, device, threads, kernels, clock) {
            None => return Ok((f, ProfileSource::File(path))),
            Some(why) => format!("{} was {why}", path.display()),
        },
        None => format!("{} does not exist", path.display()),
    };
    let cpu = Cpu::new(threads).map_err(|e| e.to_string())?;
    let mut opts = CalibrateOptions::for_cpu(&cpu);
    opts.device = device.into();
    opts.threads = threads;
    opts.clock = clock;
    if device != "cpu" {
        opts.cpu = name.into();
    }
    let file = engine.calibrate(&opts, &mut progress)?;
    Ok((file, ProfileSource::Calibrated(why)))
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
            profile: CostProfile {
                target: CostCurve::new(&[(2, 100)]).unwrap(),
                drafter: None,
            },
        }
    }

    #[test]
    fn a_profile_of_another_clock_is_recalibrated() {
        let (w, c) = (file("wall"), file("cpu"));
        assert_eq!(mismatch(&w, "cpu", 1, "exact", Clock::Wall), None);
        assert_eq!(mismatch(&c, "cpu", 1, "exact", Clock::Cpu), None);
        let why = mismatch(&w, "cpu", 1, "exact", Clock::Cpu).unwrap();
        assert!(
            why.contains("the wall clock") && why.ends_with("the cpu clock"),
            "{why}"
        );
        assert!(mismatch(&c, "cpu", 1, "exact", Clock::Wall).is_some());
        // The other conditions still count.
        assert!(mismatch(&c, "cpu", 2, "exact", Clock::Cpu).is_some());
        assert!(mismatch(&c, "cuda", 1, "exact", Clock::Cpu).is_some());
        assert!(mismatch(&c, "cpu", 1, "avx512-bf16", Clock::Cpu).is_some());
    }
}
