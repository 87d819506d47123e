//! The worker pool of the CPU backend: `--threads` persistent threads with a low-latency
//! hand-off, so that the ~200 small parallel regions of one decoded token cost microseconds,
//! not a thread spawn or a sleeping-thread wake-up each.
//!
//! # How a parallel region runs
//!
//! [`Pool::run`] publishes a job (a borrowed `Fn(task)` and a task count) under a new
//! *generation* number, then works on it itself: every participant claims task indices from one
//! atomic counter until none are left (dynamic scheduling, so a slow core — on a shared machine,
//! a descheduled one — does not hold the others up). Each worker acknowledges the generation
//! when it is done with the job; `run` returns only after all acknowledgements, so the borrowed
//! job outlives every use of it. Idle workers spin on the generation counter for a short while
//! (the next matrix product usually follows within microseconds) and then sleep on a condition
//! variable; the publisher only takes the lock when someone sleeps.
//!
//! On wasm (one thread) every call runs sequentially on the caller.
//!
//! # Safety
//!
//! The only `unsafe` here is the lifetime erasure of the job pointer handed to workers (the
//! scoped-thread argument above) and the disjoint chunk hand-out of [`Pool::for_chunks`]
//! (each task index is claimed exactly once, so the `&mut` chunks never alias).

use crate::source::MaybeSendSync;
use crate::Result;

/// A fixed-size pool of workers.
pub struct Pool {
    threads: usize,
    #[cfg(not(target_arch = "wasm32"))]
    native: Option<native::Workers>,
}

impl Pool {
    /// `threads` workers; 0 means one per available core.
    pub fn new(threads: usize) -> Result<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let threads = if threads == 0 {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            } else {
                threads
            };
            let native = if threads > 1 {
                Some(native::Workers::start(threads - 1)?)
            } else {
                None
            };
            Ok(Self { threads, native })
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = threads;
            Ok(Self { threads: 1 })
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(task)` for every `task < n_tasks`, spread over the workers and the caller;
    /// returns when all calls have returned. A panic in a task is re-raised here.
    pub fn run<F>(&self, n_tasks: usize, f: F)
    where
        F: Fn(usize) + MaybeSendSync,
    {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(w) = &self.native {
            if n_tasks > 1 {
                w.run(n_tasks, &f);
                return;
            }
        }
        (0..n_tasks).for_each(f);
    }

    /// Calls `f(i, chunk)` for each `chunk_len`-sized chunk of `data` (the last may be
    /// shorter), in parallel.
    pub fn for_chunks<T: Send, F>(&self, data: &mut [T], chunk_len: usize, f: F)
    where
        F: Fn(usize, &mut [T]) + MaybeSendSync,
    {
        let chunk_len = chunk_len.max(1);
        let n_chunks = data.len().div_ceil(chunk_len);
        let len = data.len();
        self.for_ranges_by(
            data,
            n_chunks,
            |i| (i * chunk_len, ((i + 1) * chunk_len).min(len)),
            f,
        );
    }

    /// Calls `f(i, &mut data[bounds[i]..bounds[i + 1]])` for every `i < bounds.len() − 1`, in
    /// parallel. `bounds` must be non-decreasing and end within `data`; otherwise nothing runs
    /// and `false` is returned.
    pub fn for_ranges<T: Send, F>(&self, data: &mut [T], bounds: &[usize], f: F) -> bool
    where
        F: Fn(usize, &mut [T]) + MaybeSendSync,
    {
        let ordered = bounds.windows(2).all(|w| w[0] <= w[1]);
        if !ordered || bounds.last().is_some_and(|&e| e > data.len()) {
            return false;
        }
        let n = bounds.len().saturating_sub(1);
        self.for_ranges_by(data, n, |i| (bounds[i], bounds[i + 1]), f);
        true
    }

    /// `range(i)` must give disjoint in-bounds ranges for distinct `i < n` (checked by the
    /// two public callers).
    fn for_ranges_by<T: Send, R, F>(&self, data: &mut [T], n: usize, range: R, f: F)
    where
        R: Fn(usize) -> (usize, usize) + MaybeSendSync,
        F: Fn(usize, &mut [T]) + MaybeSendSync,
    {
        #[cfg(not(target_arch = "wasm32"))]
        if self.native.is_some() && n > 1 {
            let base = native::SendPtr(data.as_mut_ptr());
            self.run(n, |i| {
                let (start, end) = range(i);
                // SAFETY: `run` hands out each index once and the ranges of distinct indices
                // are disjoint parts of `data` (see the callers), which stays mutably borrowed
                // until `run` returns after every call.
                let chunk =
                    unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
                f(i, chunk)
            });
            return;
        }
        for i in 0..n {
            let (start, end) = range(i);
            f(i, &mut data[start..end]);
        }
    }

    /// How many items each task should take so that every worker gets a few tasks.
    pub fn chunk_for(&self, items: usize, min_chunk: usize) -> usize {
        let tasks = self.threads * 4;
        items.div_ceil(tasks.max(1)).max(min_chunk).max(1)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use crate::{Error, Result};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// How long an idle worker polls for the next job before it sleeps.
    const SPIN: Duration = Duration::from_micros(200);

    /// A raw pointer that may cross threads (the user guarantees disjoint access).
    pub(super) struct SendPtr<T>(pub(super) *mut T);
    impl<T> Clone for SendPtr<T> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<T> Copy for SendPtr<T> {}
    unsafe impl<T: Send> Send for SendPtr<T> {}
    unsafe impl<T: Send> Sync for SendPtr<T> {}
    impl<T> SendPtr<T> {
        pub(super) fn get(self) -> *mut T {
            self.0
        }
    }

    type Job = dyn Fn(usize) + Sync;

    struct Shared {
        /// Bumped once per published job.
        generation: AtomicU64,
        /// The job of the current generation, lifetime-erased (see the module's Safety).
        job: Mutex<Option<&'static Job>>,
        n_tasks: AtomicUsize,
        next_task: AtomicUsize,
        /// Workers that have not yet finished the current generation.
        busy: AtomicUsize,
        /// Workers asleep on `wake`.
        sleepers: AtomicUsize,
        wake: Condvar,
        sleep_lock: Mutex<()>,
        panicked: AtomicBool,
        shutdown: AtomicBool,
    }

    pub(super) struct Workers {
        shared: Arc<Shared>,
        handles: Vec<JoinHandle<()>>,
        /// One publisher at a time (the backend is shared by reference).
        publish: Mutex<()>,
    }

    impl Workers {
        pub(super) fn start(n: usize) -> Result<Self> {
            let shared = Arc::new(Shared {
                generation: AtomicU64::new(0),
                job: Mutex::new(None),
                n_tasks: AtomicUsize::new(0),
                next_task: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                sleepers: AtomicUsize::new(0),
                wake: Condvar::new(),
                sleep_lock: Mutex::new(()),
                panicked: AtomicBool::new(false),
                shutdown: AtomicBool::new(false),
            });
            let mut handles = Vec::with_capacity(n);
            for i in 0..n {
                let s = shared.clone();
                let h = std::thread::Builder::new()
                    .name(format!("sluice-cpu-{}", i + 1))
                    .spawn(move || worker(&s))
                    .map_err(|e| Error::Invalid(format!("cannot start CPU thread: {e}")))?;
                handles.push(h);
            }
            Ok(Self {
                shared,
                handles,
                publish: Mutex::new(()),
            })
        }

        pub(super) fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
            let _one = self.publish.lock().unwrap_or_else(|p| p.into_inner());
            let s = &*self.shared;
            // SAFETY: the reference is only used by workers between seeing this generation
            // and decrementing `busy`; we wait for `busy == 0` below before returning (even
            // when a task panics), and clear the slot, so no use outlives `f`.
            let erased: &'static Job =
                unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Job>(f) };
            *s.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(erased);
            s.n_tasks.store(n_tasks, Ordering::Relaxed);
            s.next_task.store(0, Ordering::Relaxed);
            s.busy.store(self.handles.len(), Ordering::Relaxed);
            s.generation.fetch_add(1, Ordering::Release);
            if s.sleepers.load(Ordering::SeqCst) > 0 {
                let _g = s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                s.wake.notify_all();
            }
            let caller =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim_tasks(s, f)));
            let mut spins = 0u32;
            while s.busy.load(Ordering::Acquire) != 0 {
                spins += 1;
                if spins < 1 << 14 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            *s.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if let Err(p) = caller {
                std::panic::resume_unwind(p);
            }
            if s.panicked.swap(false, Ordering::AcqRel) {
                panic!("a CPU worker thread panicked");
            }
        }
    }

    fn claim_tasks(s: &Shared, f: &(dyn Fn(usize) + Sync + '_)) {
        let n = s.n_tasks.load(Ordering::Relaxed);
        loop {
            let t = s.next_task.fetch_add(1, Ordering::Relaxed);
            if t >= n {
                break;
            }
            f(t);
        }
    }

    fn worker(s: &Shared) {
        let mut seen = 0u64;
        loop {
            // Wait for a new generation: poll, then sleep.
            let start = Instant::now();
            let mut polls = 0u32;
            let gen = loop {
                let g = s.generation.load(Ordering::Acquire);
                if g != seen || s.shutdown.load(Ordering::Relaxed) {
                    break g;
                }
                polls += 1;
                if !polls.is_multiple_of(64) || start.elapsed() < SPIN {
                    std::hint::spin_loop();
                    continue;
                }
                let mut guard = s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while s.generation.load(Ordering::SeqCst) == seen
                    && !s.shutdown.load(Ordering::SeqCst)
                {
                    guard = s.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                polls = 0;
            };
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            seen = gen;
            let job = *s.job.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(job) = job {
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim_tasks(s, job)));
                if r.is_err() {
                    s.panicked.store(true, Ordering::Release);
                }
            }
            s.busy.fetch_sub(1, Ordering::AcqRel);
        }
    }

    impl Drop for Workers {
        fn drop(&mut self) {
            self.shared.shutdown.store(true, Ordering::SeqCst);
            {
                let _g = self
                    .shared
                    .sleep_lock
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                self.shared.wake.notify_all();
            }
            for h in self.handles.drain(..) {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads).expect("pool");
            for n in [0usize, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n, |t| {
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn chunks_cover_the_data() {
        let pool = Pool::new(2).expect("pool");
        for _ in 0..100 {
            let mut data = vec![0usize; 103];
            pool.for_chunks(&mut data, 10, |i, c| c.iter_mut().for_each(|x| *x += i + 1));
            for (j, &x) in data.iter().enumerate() {
                assert_eq!(x, j / 10 + 1);
            }
        }
    }

    #[test]
    fn ranges_cover_their_parts() {
        let pool = Pool::new(2).expect("pool");
        let mut data = vec![0usize; 50];
        assert!(pool.for_ranges(&mut data, &[0, 5, 5, 17, 50], |i, c| c.fill(i + 1)));
        assert_eq!(data[4], 1);
        assert_eq!(data[5], 3);
        assert_eq!(data[49], 4);
        assert!(!pool.for_ranges(&mut data, &[0, 10, 5], |_, c| c.fill(9)));
        assert!(!pool.for_ranges(&mut data, &[0, 51], |_, c| c.fill(9)));
        assert!(data.iter().all(|&x| x != 9));
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2).expect("pool");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(8, |t| assert!(t != 5, "task five"));
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(8, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }
}
