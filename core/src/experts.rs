//! The expert store: how the model reaches routed experts.
//!
//! A routed expert (layer `l`, expert `e`) is three weight slabs: its rows of
//! `ffn_gate_exps`, `ffn_up_exps` and `ffn_down_exps` (or of the fused `ffn_gate_up_exps`). The
//! forward pass never touches those tensors directly; it asks an [`ExpertStore`] for the experts
//! the router picked, so a store that pages experts from disk or over HTTP can replace the
//! fully resident one without any change to the model.

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

/// Counters every store reports (a resident store only counts hits).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StoreStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub stall_ms: f64,
    pub prefetch_issued: u64,
    pub prefetch_useful: u64,
}

/// Where routed experts come from.
pub trait ExpertStore<B: Backend> {
    /// The experts `ids` of `layer`, in the order given, fetched first if needed.
    fn experts<'a>(
        &'a self,
        backend: &'a B,
        layer: usize,
        ids: &'a [u32],
    ) -> LocalBoxFuture<'a, Result<ExpertHandles<B::Weight>>>;

    /// A hint that `ids` of `layer` will probably be asked for soon.
    fn prefetch(&self, _backend: &B, _layer: usize, _ids: &[u32]) {}

    fn stats(&self) -> StoreStats {
        StoreStats::default()
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
