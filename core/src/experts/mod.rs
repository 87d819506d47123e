//! The expert store: how the model reaches routed experts.
//!
//! A routed expert (layer `l`, expert `e`) is three weight slabs: its rows of
//! `ffn_gate_exps`, `ffn_up_exps` and `ffn_down_exps` (or of the fused `ffn_gate_up_exps`). The
//! forward pass never touches those tensors directly; it asks an [`ExpertStore`] for the experts
//! the router picked, so a store that pages experts from disk or over HTTP can replace the
//! fully resident one without any change to the model.
//!
//! * [`ResidentExperts`]: every expert sliced out of the (memory-mapped) stacked tensors at
//!   load; the OS page cache is the cache.
//! * [`StreamingExperts`]: experts read on demand from the model's byte sources (positioned
//!   reads, HTTP ranges, browser fetch) into budgeted cache tiers, with prefetch of the next
//!   layer's predicted experts. Same bytes, same kernels: the logits do not depend on the
//!   budget.
//! * [`TracingStore`]: wraps a store and records the routing trace, used to compare eviction
//!   policies offline ([`trace::simulate`]).

mod fetch;
pub mod layout;
pub mod policy;
mod stats;
mod streaming;
pub mod trace;

pub use layout::ExpertLayout;
pub use policy::PolicyKind;
pub use stats::StoreStats;
pub use streaming::{StreamingExperts, StreamingOptions};
pub use trace::{RoutingTrace, TracingStore};

use crate::backend::Backend;
use crate::source::LocalBoxFuture;
use crate::{Error, Result};
use std::sync::Arc;

/// One expert's three matrices, usable by the backend.
pub struct Expert<W> {
    pub gate: W,
    pub up: W,
    pub down: W,
}

/// Shared handles to experts, in the order they were asked for.
pub type ExpertHandles<W> = Vec<Arc<Expert<W>>>;

/// Where routed experts come from.
pub trait ExpertStore<B: Backend> {
    /// The experts `ids` of `layer`, in the order given, fetched first if needed.
    fn experts<'a>(
        &'a self,
        backend: &'a B,
        layer: usize,
        ids: &'a [u32],
    ) -> LocalBoxFuture<'a, Result<ExpertHandles<B::Weight>>>;

    /// Whether the model should predict upcoming experts and call [`ExpertStore::prefetch`].
    /// Predicting costs a router product per layer, so stores that cannot use the hint say no.
    fn wants_prefetch(&self) -> bool {
        false
    }

    /// A hint that `ids` of `layer` will probably be asked for soon (most likely first).
    fn prefetch(&self, _backend: &B, _layer: usize, _ids: &[u32]) {}

    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// The most experts of `layer` one [`ExpertStore::experts`] call should ask for, so that
    /// what a layer holds at once stays near the store's budget: a prompt batch can route
    /// its tokens to most of a layer's experts, and the model then runs them in groups of
    /// this size, releasing each group before fetching the next.
    fn experts_per_call(&self, _layer: usize) -> usize {
        usize::MAX
    }
}

/// Every expert of every layer held by the backend (memory-mapped on the CPU).
pub struct ResidentExperts<W> {
    /// `layers[l][e]`; empty for dense layers.
    layers: Vec<Vec<Arc<Expert<W>>>>,
    hits: std::cell::Cell<u64>,
}

impl<W> ResidentExperts<W> {
    pub fn new(layers: Vec<Vec<Arc<Expert<W>>>>) -> Self {
        Self {
            layers,
            hits: std::cell::Cell::new(0),
        }
    }
}

impl<B: Backend> ExpertStore<B> for ResidentExperts<B::Weight> {
    fn experts<'a>(
        &'a self,
        _backend: &'a B,
        layer: usize,
        ids: &'a [u32],
    ) -> LocalBoxFuture<'a, Result<ExpertHandles<B::Weight>>> {
        let result = ids
            .iter()
            .map(|&e| {
                self.layers
                    .get(layer)
                    .and_then(|l| l.get(e as usize))
                    .cloned()
                    .ok_or_else(|| Error::model(format!("layer {layer} has no expert {e}")))
            })
            .collect();
        self.hits.set(self.hits.get() + ids.len() as u64);
        Box::pin(std::future::ready(result))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            hits: self.hits.get(),
            ..Default::default()
        }
    }
}
