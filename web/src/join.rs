//! Waiting for several futures at once on one thread (no async runtime is linked in).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Polls every future whenever any of them wakes; yields their outputs in the order given.
pub fn join_all<'a, T: 'a>(futures: Vec<Boxed<'a, T>>) -> impl Future<Output = Vec<T>> + 'a {
    JoinAll {
        done: futures.iter().map(|_| None).collect(),
        pending: futures.into_iter().map(Some).collect(),
    }
}

struct JoinAll<'a, T> {
    pending: Vec<Option<Boxed<'a, T>>>,
    done: Vec<Option<T>>,
}

// The outputs are never pinned: only the boxed futures are polled in place.
impl<T> Unpin for JoinAll<'_, T> {}

impl<T> Future for JoinAll<'_, T> {
    type Output = Vec<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let this = self.get_mut();
        let mut all_ready = true;
        for (slot, out) in this.pending.iter_mut().zip(this.done.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => all_ready = false,
                }
            }
        }
        if !all_ready {
            return Poll::Pending;
        }
        Poll::Ready(this.done.iter_mut().filter_map(Option::take).collect())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_their_order() {
        let futures: Vec<Boxed<'_, usize>> = (0usize..5)
            .map(|i| Box::pin(async move { i * 10 }) as Boxed<'_, usize>)
            .collect();
        assert_eq!(
            sluice_core::source::block_on(join_all(futures)),
            vec![0, 10, 20, 30, 40]
        );
        let none: Vec<Boxed<'_, u8>> = Vec::new();
        assert!(sluice_core::source::block_on(join_all(none)).is_empty());
    }
}
