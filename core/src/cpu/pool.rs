//! The worker pool of the CPU backend.
//!
//! Native builds keep one persistent rayon pool of `--threads` workers, so no thread is
//! spawned per token. On wasm (one thread) the same calls run sequentially.

use crate::source::MaybeSendSync;
#[cfg(not(target_arch = "wasm32"))]
use crate::Error;
use crate::Result;

/// A fixed-size pool of workers.
pub struct Pool {
    threads: usize,
    #[cfg(not(target_arch = "wasm32"))]
    pool: rayon::ThreadPool,
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
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("sluice-cpu-{i}"))
                .build()
                .map_err(|e| Error::Invalid(format!("cannot start {threads} CPU threads: {e}")))?;
            Ok(Self { threads, pool })
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

    /// Calls `f(i, chunk)` for each `chunk_len`-sized chunk of `data`, in parallel.
    pub fn for_chunks<T: Send, F>(&self, data: &mut [T], chunk_len: usize, f: F)
    where
        F: Fn(usize, &mut [T]) + MaybeSendSync,
    {
        let chunk_len = chunk_len.max(1);
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            if self.threads > 1 && data.len() > chunk_len {
                self.pool.install(|| {
                    data.par_chunks_mut(chunk_len)
                        .enumerate()
                        .for_each(|(i, c)| f(i, c))
                });
                return;
            }
        }
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }

    /// How many items each task should take so that every worker gets a few tasks.
    pub fn chunk_for(&self, items: usize, min_chunk: usize) -> usize {
        let tasks = self.threads * 4;
        items.div_ceil(tasks.max(1)).max(min_chunk).max(1)
    }
}
