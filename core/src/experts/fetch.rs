//! Reads of expert slabs, in the background where threads exist.
//!
//! A read is one `read_many` call on one byte source (an expert's slabs, so remote sources
//! merge them into few requests). [`Fetcher::start`] returns a [`Handle`] at once:
//!
//! * native: the read runs on a small pool of I/O threads (sources are `Send + Sync` there),
//!   demand reads ahead of prefetches, so the forward pass computes while reads proceed;
//! * wasm (or `io_threads = 0`): the read is the source's future, polled once to start it (a
//!   browser `fetch` then proceeds on its own) and finished by whoever awaits the handle.

use crate::source::{ByteSource, LocalBoxFuture};
use crate::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The slabs of one read, in the order asked for.
pub type Slabs = Vec<Vec<u8>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Slots hold plain data; a panic elsewhere cannot leave them half-written.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A one-shot result filled by an I/O thread.
#[derive(Default)]
pub struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    result: Option<Result<Slabs>>,
    /// Set by the first fill; later fills (the panic guard's) are ignored.
    filled: bool,
    waker: Option<Waker>,
}

// Only I/O threads fill slots; wasm has none.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl Slot {
    fn fill(&self, r: Result<Slabs>) {
        let waker = {
            let mut s = lock(&self.state);
            if s.filled {
                return;
            }
            s.filled = true;
            s.result = Some(r);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_filled(&self) -> bool {
        lock(&self.state).filled
    }
}

/// Fills its slot with an error if dropped unfilled (a read that panicked), so no waiter hangs.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
struct Filler {
    slot: Arc<Slot>,
    what: String,
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.slot.fill(Err(Error::io(
            &self.what,
            "expert read abandoned (I/O thread panicked or shut down)",
        )));
    }
}

/// A read in progress (or done).
pub enum Handle {
    /// Filled by an I/O thread.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Shared(Arc<Slot>),
    /// Driven by whoever awaits it.
    Local(LocalBoxFuture<'static, Result<Slabs>>),
    Ready(Option<Result<Slabs>>),
}

impl Handle {
    /// Whether awaiting would not wait.
    pub fn is_ready(&self) -> bool {
        match self {
            Handle::Shared(slot) => slot.is_filled(),
            Handle::Local(_) => false,
            Handle::Ready(_) => true,
        }
    }
}

impl Future for Handle {
    type Output = Result<Slabs>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Slabs>> {
        let this = self.get_mut();
        let done = |r: Option<Result<Slabs>>| {
            r.unwrap_or_else(|| Err(Error::Invalid("expert read awaited twice".into())))
        };
        match this {
            Handle::Shared(slot) => {
                let mut s = lock(&slot.state);
                match s.result.take() {
                    Some(r) => Poll::Ready(r),
                    None => {
                        s.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
            Handle::Local(f) => f.as_mut().poll(cx),
            Handle::Ready(r) => Poll::Ready(done(r.take())),
        }
    }
}

/// Starts reads.
pub struct Fetcher {
    #[cfg(not(target_arch = "wasm32"))]
    pool: Option<pool::IoPool>,
}

impl Fetcher {
    /// A fetcher with `io_threads` background threads (ignored on wasm; 0 = reads are futures
    /// driven by their waiter).
    pub fn new(io_threads: usize) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Fetcher {
                pool: (io_threads > 0).then(|| pool::IoPool::new(io_threads)),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = io_threads;
            Fetcher {}
        }
    }

    /// Starts reading `ranges` of `source`; `urgent` reads (a layer is waiting) go ahead of
    /// prefetches.
    pub fn start(
        &self,
        source: &Arc<dyn ByteSource>,
        ranges: Vec<(u64, usize)>,
        urgent: bool,
    ) -> Handle {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = &self.pool {
            let slot = Arc::new(Slot::default());
            let filler = Filler {
                slot: Arc::clone(&slot),
                what: source.name().to_string(),
            };
            let source = Arc::clone(source);
            pool.submit(
                urgent,
                Box::new(move || {
                    let r = crate::source::block_on(source.read_many(&ranges));
                    filler.slot.fill(r);
                }),
            );
            return Handle::Shared(slot);
        }
        let _ = urgent;
        let source = Arc::clone(source);
        let mut future: LocalBoxFuture<'static, Result<Slabs>> =
            Box::pin(async move { source.read_many(&ranges).await });
        // One poll starts the read (and finishes it for sources that complete at once).
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(r) => Handle::Ready(Some(r)),
            Poll::Pending => Handle::Local(future),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod pool {
    //! A few named threads running blocking reads, urgent jobs first.

    use super::lock;
    use std::collections::VecDeque;
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;

    type Job = Box<dyn FnOnce() + Send>;

    #[derive(Default)]
    struct Queues {
        urgent: VecDeque<Job>,
        background: VecDeque<Job>,
        closed: bool,
    }

    #[derive(Default)]
    struct Shared {
        queues: Mutex<Queues>,
        ready: Condvar,
    }

    pub struct IoPool {
        shared: Arc<Shared>,
        threads: Vec<JoinHandle<()>>,
    }

    impl IoPool {
        pub fn new(n: usize) -> Self {
            let shared = Arc::new(Shared::default());
            let threads = (0..n)
                .filter_map(|i| {
                    let shared = Arc::clone(&shared);
                    std::thread::Builder::new()
                        .name(format!("sluice-expert-io-{i}"))
                        .spawn(move || worker(&shared))
                        .ok()
                })
                .collect();
            IoPool { shared, threads }
        }

        pub fn submit(&self, urgent: bool, job: Job) {
            let mut q = lock(&self.shared.queues);
            if self.threads.is_empty() {
                // No thread could be started: run the read here rather than never.
                drop(q);
                job();
                return;
            }
            if urgent {
                q.urgent.push_back(job);
            } else {
                q.background.push_back(job);
            }
            drop(q);
            self.shared.ready.notify_one();
        }
    }

    fn worker(shared: &Shared) {
        loop {
            let job = {
                let mut q = lock(&shared.queues);
                loop {
                    if let Some(j) = q.urgent.pop_front().or_else(|| q.background.pop_front()) {
                        break j;
                    }
                    if q.closed {
                        return;
                    }
                    q = shared
                        .ready
                        .wait(q)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            };
            job();
        }
    }

    impl Drop for IoPool {
        fn drop(&mut self) {
            {
                let mut q = lock(&self.shared.queues);
                q.closed = true;
                // Queued reads nobody waits for any more are dropped (their slots fill with
                // an error); running ones finish.
                q.urgent.clear();
                q.background.clear();
            }
            self.shared.ready.notify_all();
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}
