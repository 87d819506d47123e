//! Threads and connections behind the range client.
//!
//! * [`ConnPool`]: keep-alive connections to one origin, at most `max` open at once; a caller
//!   that finds none idle and the limit reached waits for one to come back.
//! * [`spawn`]: a process-wide pool of worker threads that run blocking fetches, so that
//!   `ByteSource::read_at` futures make progress while the caller awaits others (several
//!   reads in flight even on a single-threaded executor). Workers start on demand and exit
//!   after a while idle.
//! * [`Receiver`]: the future side of a one-shot result slot filled by a worker.

use std::collections::VecDeque;
use std::future::Future;
use std::io::BufReader;
use std::net::{TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// One HTTP/1.1 connection (buffered for reading; writes go to the inner stream).
pub type Conn = BufReader<TcpStream>;

/// Opens a TCP connection to `authority` (`host:port`) with timeouts applied.
pub fn connect(
    authority: &str,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> std::io::Result<Conn> {
    let mut last_err = None;
    for addr in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, connect_timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(io_timeout))?;
                stream.set_write_timeout(Some(io_timeout))?;
                stream.set_nodelay(true)?;
                return Ok(BufReader::with_capacity(64 * 1024, stream));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "host resolves to no address")
    }))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their plain counters inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct PoolState {
    idle: Vec<Conn>,
    open: usize,
}

/// Keep-alive connections to one origin.
pub struct ConnPool {
    max: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

/// A connection slot taken from the pool. Dropping it closes the connection unless
/// [`Lease::keep`] was called after a complete exchange.
pub struct Lease<'a> {
    pool: &'a ConnPool,
    pub conn: Option<Conn>,
    /// Whether the connection had served an earlier exchange (it may have been closed by the
    /// server since; a failure before any response byte is then not the server's fault).
    pub reused: bool,
    keep: bool,
}

impl Lease<'_> {
    /// Marks the connection as reusable (the exchange ended cleanly at a message boundary).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.pool.state);
        match self.conn.take() {
            Some(conn) if self.keep => state.idle.push(conn),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.returned.notify_one();
    }
}

impl ConnPool {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Takes an idle connection, or opens a new one with `open` when under the limit, or
    /// waits for one to be returned.
    pub fn checkout(
        &self,
        open: impl FnOnce() -> std::io::Result<Conn>,
    ) -> std::io::Result<Lease<'_>> {
        let mut state = lock(&self.state);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                    reused: true,
                    keep: false,
                });
            }
            if state.open < self.max {
                state.open += 1;
                break;
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(state);
        // The slot is counted as open; a lease with no connection gives it back on drop.
        let mut lease = Lease {
            pool: self,
            conn: None,
            reused: false,
            keep: false,
        };
        lease.conn = Some(open()?);
        Ok(lease)
    }
}

type Job = Box<dyn FnOnce() + Send>;

struct Workers {
    queue: VecDeque<Job>,
    idle: usize,
    threads: usize,
}

struct Dispatcher {
    state: Mutex<Workers>,
    work: Condvar,
}

/// Most worker threads alive at once (jobs beyond that queue).
const MAX_WORKERS: usize = 64;
/// A worker with nothing to do for this long exits.
const WORKER_IDLE: Duration = Duration::from_secs(20);

fn dispatcher() -> &'static Dispatcher {
    static D: OnceLock<Dispatcher> = OnceLock::new();
    D.get_or_init(|| Dispatcher {
        state: Mutex::new(Workers {
            queue: VecDeque::new(),
            idle: 0,
            threads: 0,
        }),
        work: Condvar::new(),
    })
}

/// Runs `job` on a worker thread; its result arrives through the returned future.
pub fn spawn<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        panicked: false,
    }));
    let filler = Arc::clone(&slot);
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        let mut s = lock(&filler);
        match out {
            Ok(v) => s.value = Some(v),
            Err(_) => s.panicked = true,
        }
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    });
    let d = dispatcher();
    let mut state = lock(&d.state);
    state.queue.push_back(job);
    let start_thread = state.idle < state.queue.len() && state.threads < MAX_WORKERS;
    if start_thread {
        state.threads += 1;
    }
    drop(state);
    if start_thread {
        let spawned = std::thread::Builder::new()
            .name("sluice-http".into())
            .spawn(worker_loop);
        if spawned.is_err() {
            // The queued job still runs on an existing worker (or the next one started).
            lock(&d.state).threads -= 1;
        }
    }
    d.work.notify_one();
    Receiver(slot)
}

fn worker_loop() {
    let d = dispatcher();
    let mut state = lock(&d.state);
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job();
            state = lock(&d.state);
            continue;
        }
        state.idle += 1;
        let (s, timeout) = d
            .work
            .wait_timeout(state, WORKER_IDLE)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state = s;
        state.idle -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    panicked: bool,
}

/// The result of a job run by [`spawn`]. Resolves to `None` if the job panicked.
pub struct Receiver<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = lock(&self.0);
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.panicked {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_concurrently() {
        let start = std::time::Instant::now();
        let receivers: Vec<_> = (0..8)
            .map(|i| {
                spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    i * 2
                })
            })
            .collect();
        let results: Vec<_> = receivers
            .into_iter()
            .map(sluice_core::source::block_on)
            .collect();
        assert_eq!(results, (0..8).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert!(start.elapsed() < Duration::from_millis(1500));
        let panicking = spawn(|| -> u32 { panic!("job panics on purpose") });
        assert_eq!(sluice_core::source::block_on(panicking), None);
    }
}
