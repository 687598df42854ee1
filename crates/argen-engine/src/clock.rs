//! The clock that `argen calibrate` and `argen bench` time with: wall clock or on-CPU time.
//!
//! # Why an on-CPU clock
//! The cost model predicts a decode's time as the sum of its model calls' calibrated costs
//! (`argen_core::cost`). On a machine whose cores are shared with other processes, a decode of
//! thousands of short calls loses time to preemption that a calibration's per-call median
//! misses (a call shorter than a scheduler slice is rarely preempted, a long one nearly always
//! is), so wall-clock predictions err by ±20 % there. Timing both the calibration and the
//! decode by the CPU time the runtime's threads actually consumed removes the other processes'
//! share from both sides: what remains is the work the decode does, the quantity the model
//! predicts.
//!
//! # What [`Clock::Cpu`] reads
//! A reading is in nanoseconds; only differences mean anything.
//!
//! * **1 thread**: the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`). The CPU runtime
//!   with one thread runs every kernel inline on the caller (`argen_cpu::par`), so this is all
//!   the work of the decode, the host's and decoder's included.
//! * **N > 1 threads**: the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, the sum over its
//!   threads) divided by N. The runtime keeps N − 1 helpers that join every parallel section
//!   and spin briefly between sections (`argen_cpu::par`); on an idle machine all N threads are
//!   on a core for the whole of a step, so the sum ÷ N equals the step's wall time there. On a
//!   loaded machine a preempted thread stops accruing, and so does its share of the wall time:
//!   the sum ÷ N is the wall time the same work would take with N undisturbed cores. Two
//!   caveats, the same for the calibration and for the decode (so they cancel in the
//!   prediction error): a helper that slept between steps does not count the host's serial
//!   work (sampling), which therefore counts 1/N of its wall time; and a thread spinning while
//!   it waits for a preempted sibling counts its wait. Per-thread sums would give the same
//!   number (the process clock *is* the per-thread sum), with N − 1 more system calls per
//!   reading. The process must not run other busy threads meanwhile; `argen` does not.
//!
//! The on-CPU clock is not meaningful for a CUDA device (the GPU's time is not CPU time): the
//! commands refuse the combination.
//!
//! Reading a CPU clock is a system call (~0.2 µs here), against calls of ≥ 20 µs.

use std::sync::OnceLock;
use std::time::Instant;

use argen_core::decode::{Action, Decoder, Observer};

use crate::Error;

/// Which clock times the calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time (the default).
    #[default]
    Wall,
    /// CPU time of the runtime's threads (module doc).
    Cpu,
}

impl Clock {
    /// `wall` or `cpu`, as written in profiles and reports.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::Cpu => "cpu",
        }
    }

    /// The clock named `s` (`wall` or `cpu`).
    pub fn parse(s: &str) -> Result<Clock, Error> {
        match s {
            "wall" => Ok(Clock::Wall),
            "cpu" => Ok(Clock::Cpu),
            _ => Err(Error::invalid(format!(
                "unknown clock {s:?}: expected \"wall\" or \"cpu\""
            ))),
        }
    }

    /// An error if this clock cannot time a runtime on `device` (`"cpu"` or `"cuda"`) on this
    /// platform.
    pub fn check(self, device: &str) -> Result<(), Error> {
        if self == Clock::Cpu {
            if device != "cpu" {
                return Err(Error::invalid(format!(
                    "the cpu clock measures CPU time and cannot time the {device} device (use \
                     --clock wall)"
                )));
            }
            if !cfg!(unix) {
                return Err(Error::invalid(
                    "the cpu clock needs a Unix system (clock_gettime)",
                ));
            }
        }
        Ok(())
    }

    /// A reading in nanoseconds for a runtime of `threads` threads (module doc); only the
    /// difference of two readings with the same `threads`, on the same thread, means anything.
    pub fn now(self, threads: usize) -> u64 {
        match self {
            Clock::Wall => {
                static ANCHOR: OnceLock<Instant> = OnceLock::new();
                let anchor = *ANCHOR.get_or_init(Instant::now);
                u64::try_from(anchor.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
            Clock::Cpu if threads <= 1 => cpu_nanos(CpuClock::Thread),
            Clock::Cpu => cpu_nanos(CpuClock::Process) / threads as u64,
        }
    }
}

#[derive(Clone, Copy)]
enum CpuClock {
    Thread,
    Process,
}

#[cfg(unix)]
fn cpu_nanos(which: CpuClock) -> u64 {
    let id = match which {
        CpuClock::Thread => libc::CLOCK_THREAD_CPUTIME_ID,
        CpuClock::Process => libc::CLOCK_PROCESS_CPUTIME_ID,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids are defined on every Unix that
    // libc supports (checked by `Clock::check` at the commands' start).
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(not(unix))]
fn cpu_nanos(_: CpuClock) -> u64 {
    0
}

/// An observer that measures one decode by a clock: from the host receiving the first action
/// to the decoder having handled the last answer (the span `argen bench` reports per image).
#[derive(Clone, Copy, Debug)]
pub struct DecodeSpan {
    clock: Clock,
    threads: usize,
    first: Option<u64>,
    last: Option<u64>,
}

impl DecodeSpan {
    /// A span timed by `clock` for a runtime of `threads` threads.
    pub fn new(clock: Clock, threads: usize) -> DecodeSpan {
        DecodeSpan {
            clock,
            threads,
            first: None,
            last: None,
        }
    }

    /// Seconds from the first action to the last handled answer (0 if none ran).
    pub fn seconds(&self) -> f64 {
        match (self.first, self.last) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
            _ => 0.0,
        }
    }
}

impl Observer for DecodeSpan {
    fn before(&mut self, _: &Action<'_>) {
        if self.first.is_none() {
            self.first = Some(self.clock.now(self.threads));
        }
    }

    fn after<D: Decoder>(&mut self, _: &D) {
        self.last = Some(self.clock.now(self.threads));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_bad_names_are_errors() {
        for c in [Clock::Wall, Clock::Cpu] {
            assert_eq!(Clock::parse(c.name()).unwrap(), c);
        }
        assert_eq!(Clock::default(), Clock::Wall);
        let e = Clock::parse("monotonic").unwrap_err();
        assert!(e.message().contains("unknown clock"), "{}", e.message());
    }

    #[test]
    fn cpu_clock_refuses_cuda() {
        assert!(Clock::Wall.check("cuda").is_ok());
        assert!(Clock::Wall.check("cpu").is_ok());
        let e = Clock::Cpu.check("cuda").unwrap_err();
        assert!(e.message().contains("cannot time the cuda device"));
        assert_eq!(Clock::Cpu.check("cpu").is_ok(), cfg!(unix));
    }

    #[test]
    fn readings_do_not_go_backwards() {
        for c in [Clock::Wall, Clock::Cpu] {
            for threads in [1, 2] {
                let a = c.now(threads);
                let mut x = 0u64;
                for i in 0..10_000u64 {
                    x = x.wrapping_add(std::hint::black_box(i));
                }
                std::hint::black_box(x);
                assert!(c.now(threads) >= a);
            }
        }
    }
}
