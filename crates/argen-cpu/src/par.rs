//! Caller-participating parallel loops over a small set of persistent helper threads.
//!
//! [`Workers::run`]`(n, f)` calls `f(i)` once for every `i < n`. The calling thread takes part:
//! it and the helpers claim indices from one atomic counter until none are left, so a helper
//! that wakes late simply claims fewer (or none) and the caller never waits idle for a wake-up
//! it could have spent working. With no helpers (`threads == 1`) the loop runs inline on the
//! caller: no thread hand-off, no synchronisation.
//!
//! Why not a rayon pool: `ThreadPool::install` from a thread outside the pool hands the job to
//! a worker and puts the caller to sleep, two thread switches per parallel section. A decode
//! step has ~70 parallel sections (GEMMs, attention) of 20–500 µs each; measured on the 2-core
//! dev box, the hand-off cost ~21 µs per section with one worker, ~1.5 ms per GPT-B step, 13 %
//! of the bf16 floor. Rayon's alternatives that let the caller participate (`in_place_scope`)
//! allocate a job per spawn, which the per-token paths must not do.
//!
//! Helpers spin briefly after each section (the next one usually follows within microseconds),
//! then yield, then sleep on a condition variable until the next job is published.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spin iterations (`spin_loop` hints) a helper polls for new work before yielding: ~40 µs on
/// the dev box (a `pause` takes ~75 ns there), longer than the serial gaps between the parallel
/// sections of a decode step (norms, RoPE, SiLU), shorter than the host's work between steps.
/// Spinning longer only burns CPU: a helper that wakes late costs the caller little, since
/// the caller takes its share of the indices meanwhile.
const SPIN: u32 = 1 << 9;
/// `yield_now` calls a helper makes after spinning, before it sleeps.
const YIELDS: u32 = 16;

/// The job being run: a lifetime-erased `&(dyn Fn(usize) + Sync)`.
#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn(usize) + Sync + 'static));
// SAFETY: the pointee is `Sync` and `run` keeps it alive until no helper uses it (see `run`).
unsafe impl Send for JobRef {}

struct Slot {
    /// The job helpers may join, `None` between jobs and once the caller stops admitting.
    job: Option<JobRef>,
    /// Bumped for every job; helpers wait for a change.
    epoch: u64,
    /// Helpers blocked on `wake`.
    sleepers: usize,
    /// Set when the `Workers` is dropped.
    quit: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    /// Mirror of `slot.epoch` for lock-free polling while spinning.
    epoch: AtomicU64,
    /// Next index to claim in the current job.
    next: AtomicUsize,
    /// Number of indices in the current job.
    len: AtomicUsize,
    /// Helpers currently inside the current job.
    active: AtomicUsize,
    /// A helper's `f` panicked during the current job.
    panicked: AtomicBool,
    /// A caller owns the helpers (a job is being published or run). Other callers — another
    /// thread sharing the `Workers`, or a nested `run` from inside `f` — run inline instead.
    busy: AtomicBool,
}

/// A set of `threads − 1` persistent helper threads; the calling thread is the last worker.
pub struct Workers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers {{ threads: {} }}", self.threads())
    }
}

impl Workers {
    /// `threads` workers in all: the caller of [`Workers::run`] and `threads − 1` helper
    /// threads named `argen-cpu-{i}` (`threads` is clamped to at least 1).
    pub fn new(threads: usize) -> std::io::Result<Workers> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                job: None,
                epoch: 0,
                sleepers: 0,
                quit: false,
            }),
            wake: Condvar::new(),
            epoch: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        });
        let mut w = Workers {
            shared,
            handles: Vec::new(),
        };
        for i in 1..threads.max(1) {
            let s = Arc::clone(&w.shared);
            // On error `w` is dropped, which stops the helpers already started.
            let h = std::thread::Builder::new()
                .name(format!("argen-cpu-{i}"))
                .spawn(move || helper(&s))?;
            w.handles.push(h);
        }
        Ok(w)
    }

    /// Number of workers, the caller included.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Calls `f(i)` exactly once for each `i < n`, on the calling thread and the helpers;
    /// returns when all calls have returned. Indices are claimed in increasing order, the
    /// caller claiming first. A panic in `f` is re-raised on the caller. While another call
    /// holds the helpers (from another thread sharing these workers, or `run` called inside
    /// `f`), this call runs all of its indices on the calling thread.
    pub fn run<F: Fn(usize) + Sync>(&self, n: usize, f: F) {
        let sh = &*self.shared;
        if self.handles.is_empty()
            || n <= 1
            || sh
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..n).for_each(f);
            return;
        }
        /// Releases the helpers, also when `run_owned` re-raises a panic.
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&sh.busy);
        self.run_owned(n, &f);
    }

    /// The parallel path of [`Workers::run`]; the caller holds `busy`.
    fn run_owned(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let sh = &*self.shared;
        let job: &(dyn Fn(usize) + Sync) = f;
        // SAFETY: only the lifetime is erased. The pointer is published below and withdrawn
        // (under the lock) before this function returns, and every helper that read it has
        // left the job (`active == 0`, awaited below) before then; helpers admitted only while
        // the job is published increment `active` under the same lock.
        let job = JobRef(unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync)>(
                job,
            )
        });
        sh.next.store(0, Ordering::Relaxed);
        sh.len.store(n, Ordering::Relaxed);
        sh.panicked.store(false, Ordering::Relaxed);
        {
            let mut s = lock(&sh.slot);
            s.job = Some(job);
            s.epoch += 1;
            sh.epoch.store(s.epoch, Ordering::Release);
            if s.sleepers > 0 {
                sh.wake.notify_all();
            }
        }
        // A panic in the caller's share must not unwind past the helpers still using `f`.
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(sh, f)));
        if mine.is_err() {
            sh.next.store(usize::MAX / 2, Ordering::Relaxed);
        }
        lock(&sh.slot).job = None;
        // Helpers still inside finish their last claimed index; that takes at most one item.
        let mut spins = 0u32;
        while sh.active.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Err(e) = mine {
            std::panic::resume_unwind(e);
        }
        if sh.panicked.load(Ordering::Relaxed) {
            panic!("argen-cpu: a parallel task panicked on a helper thread");
        }
    }

    /// Calls `f(i, chunk_i)` for the `chunk`-sized pieces of `out` (the last may be shorter),
    /// in parallel as [`Workers::run`].
    pub fn chunks_mut<F>(&self, out: &mut [f32], chunk: usize, f: F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let chunk = chunk.max(1);
        let len = out.len();
        let base = SendPtr(out.as_mut_ptr());
        self.run(len.div_ceil(chunk), |i| {
            let p = base;
            let lo = i * chunk;
            let hi = (lo + chunk).min(len);
            // SAFETY: `run` calls each index exactly once, so the ranges lo..hi are disjoint
            // pieces of `out`, which is exclusively borrowed for the whole call.
            let piece = unsafe { std::slice::from_raw_parts_mut(p.0.add(lo), hi - lo) };
            f(i, piece)
        });
    }

    /// Calls `f(first_row, rows_piece)` for pieces of whole `width`-element rows of `out`
    /// (two pieces per thread, the last may be shorter), in parallel as [`Workers::run`].
    pub fn rows_mut<F>(&self, out: &mut [f32], width: usize, f: F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let width = width.max(1);
        let per = (out.len() / width).div_ceil(2 * self.threads()).max(1);
        self.chunks_mut(out, per * width, |i, piece| f(i * per, piece));
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint pieces of one exclusively borrowed slice to the workers.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

fn lock(m: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // The slot holds plain data that is consistent at every unlock: recover from poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Claims and runs indices of the current job until none are left.
fn claim(sh: &Shared, f: &(dyn Fn(usize) + Sync)) {
    let n = sh.len.load(Ordering::Relaxed);
    loop {
        let i = sh.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        f(i);
    }
}

fn helper(sh: &Shared) {
    let mut seen = 0u64;
    loop {
        // Poll for a new epoch: spin, then yield, then sleep.
        let mut polls = 0u32;
        while sh.epoch.load(Ordering::Acquire) == seen && polls < SPIN + YIELDS {
            polls += 1;
            if polls < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let job = {
            let mut s = lock(&sh.slot);
            while s.epoch == seen && !s.quit {
                s.sleepers += 1;
                s = sh.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                s.sleepers -= 1;
            }
            if s.quit {
                return;
            }
            seen = s.epoch;
            let job = s.job;
            if job.is_some() {
                sh.active.fetch_add(1, Ordering::Relaxed);
            }
            job
        };
        if let Some(job) = job {
            // SAFETY: the job was published and this helper admitted (`active` incremented)
            // under the lock, so `run` keeps the closure alive until `active` is decremented
            // below.
            let f = unsafe { &*job.0 };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(sh, f))).is_err() {
                sh.panicked.store(true, Ordering::Relaxed);
                // Nothing more is claimed; the caller re-raises.
                sh.next.store(usize::MAX / 2, Ordering::Relaxed);
            }
            sh.active.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        lock(&self.shared.slot).quit = true;
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_index_runs_exactly_once() {
        for threads in [1, 2, 3, 5] {
            let w = Workers::new(threads).unwrap();
            assert_eq!(w.threads(), threads);
            for n in [0usize, 1, 2, 3, 7, 64, 1000] {
                for _ in 0..20 {
                    let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                    w.run(n, |i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(
                        hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                        "threads={threads} n={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn chunks_cover_the_slice_once() {
        let w = Workers::new(3).unwrap();
        for (len, chunk) in [(0usize, 4usize), (1, 4), (10, 3), (64, 8), (65, 8)] {
            let mut v = vec![0f32; len];
            w.chunks_mut(&mut v, chunk, |i, c| {
                for (j, x) in c.iter_mut().enumerate() {
                    *x += (i * chunk + j) as f32 + 1.0;
                }
            });
            for (j, x) in v.iter().enumerate() {
                assert_eq!(*x, j as f32 + 1.0, "len={len} chunk={chunk}");
            }
        }
    }

    #[test]
    fn concurrent_and_nested_callers_each_run_every_index_once() {
        let w = Workers::new(3).unwrap();
        std::thread::scope(|s| {
            for t in 0..3usize {
                let w = &w;
                s.spawn(move || {
                    for round in 0..200usize {
                        let n = 1 + (t * 7 + round) % 40;
                        let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                        w.run(n, |i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                            if i == 0 && round % 10 == 0 {
                                // Nested: runs inline on this thread.
                                let inner: Vec<AtomicU32> =
                                    (0..5).map(|_| AtomicU32::new(0)).collect();
                                w.run(5, |j| {
                                    inner[j].fetch_add(1, Ordering::Relaxed);
                                });
                                assert!(inner.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                            }
                        });
                        assert!(
                            hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                            "thread {t} round {round}"
                        );
                    }
                });
            }
        });
    }

    #[test]
    fn a_panic_on_a_helper_reaches_the_caller_and_the_workers_stay_usable() {
        let w = Workers::new(2).unwrap();
        let caller = std::thread::current().id();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.run(64, |_| {
                if std::thread::current().id() != caller {
                    panic!("boom");
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            })
        }));
        // The helper may not have joined before the caller took every index.
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(msg.contains("helper thread"), "{msg}");
        }
        let hits = AtomicU32::new(0);
        w.run(100, |_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 100);
    }
}
