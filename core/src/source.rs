//! Where model bytes come from.
//!
//! A [`ByteSource`] is one file-like object: a memory map, a file read with positioned reads,
//! an HTTP resource read by range requests, or a browser `fetch`. The GGUF parser and the
//! expert store only see this trait, so a new transport never touches them.
//!
//! Reads are futures without a `Send` bound: the browser is single-threaded and cannot block,
//! and native code drives them with a tiny executor ([`block_on`]) or a real runtime.

use crate::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future that need not be `Send`.
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// `Send + Sync` on native targets (sources are shared with compute threads); no bound on wasm,
/// where sources wrap JavaScript objects and there is one thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// A random-access, read-only byte source of known length.
pub trait ByteSource: MaybeSendSync {
    /// A human-readable name for errors (a path or URL).
    fn name(&self) -> &str;

    /// Total length in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole contents when they are addressable memory (a memory map or a buffer). Sources
    /// that return `Some` let tensors be used in place with no copy.
    fn as_slice(&self) -> Option<&[u8]> {
        None
    }

    /// Reads exactly `len` bytes at `offset`. A read past the end is an error naming the
    /// source, never a short result.
    fn read_at(&self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>>>;

    /// Reads several `(offset, len)` ranges asked for together (an expert's three slabs),
    /// returned in the order given. Remote sources override this to merge adjacent ranges
    /// and keep several requests in flight; the default reads them one after another.
    fn read_many<'a>(
        &'a self,
        ranges: &'a [(u64, usize)],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(ranges.len());
            for &(offset, len) in ranges {
                out.push(self.read_at(offset, len).await?);
            }
            Ok(out)
        })
    }
}

/// Checks that `offset..offset+len` lies inside a source of `total` bytes.
pub fn check_range(name: &str, total: u64, offset: u64, len: usize) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= total => Ok(()),
        _ => Err(Error::io(
            name,
            format!("read of {len} bytes at offset {offset} runs past the end ({total} bytes)"),
        )),
    }
}

/// A source backed by bytes in memory (a `Vec`, a memory map, a static slice).
pub struct MemorySource {
    name: String,
    bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
}

impl MemorySource {
    pub fn new(name: impl Into<String>, bytes: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        Self {
            name: name.into(),
            bytes,
        }
    }

    pub fn from_vec(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self::new(name, Arc::new(bytes))
    }
}

impl ByteSource for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        (*self.bytes).as_ref().len() as u64
    }

    fn as_slice(&self) -> Option<&[u8]> {
        Some((*self.bytes).as_ref())
    }

    fn read_at(&self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>>> {
        let result = check_range(&self.name, self.len(), offset, len).map(|()| {
            let start = offset as usize;
            (*self.bytes).as_ref()[start..start + len].to_vec()
        });
        Box::pin(std::future::ready(result))
    }
}

/// Drives a future to completion on the current thread.
///
/// Meant for futures that complete without an external reactor (memory and file sources, the
/// CPU backend). A future that waits on I/O driven elsewhere is parked between polls.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}
