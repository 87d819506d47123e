//! A byte-budgeted expert cache that reads routed experts from the model's sources on demand.
//!
//! In the browser the model's bytes stay on the weights host: dense weights are read once at
//! load, but a routed expert (its gate, up and down slabs) is fetched only when the router picks
//! it, kept while it fits in the budget, and evicted least-recently-used first. The logits are
//! the same whatever the budget; only the bytes fetched change. Generic over the backend, so
//! the same cache feeds CPU weights (held in memory) or GPU buffers.
//!
//! The budget bounds the cache, not one layer: a layer's experts are kept alive while it runs,
//! so memory may exceed the budget by at most one layer's picks.

use crate::join::join_all;
use sluice_core::backend::{Backend, WeightBytes, WeightData};
use sluice_core::experts::{Expert, ExpertStore, StoreStats};
use sluice_core::gguf::{GgufModel, ModelTensor};
use sluice_core::model::Config;
use sluice_core::quant::GgmlType;
use sluice_core::source::{ByteSource, LocalBoxFuture};
use sluice_core::{Error, Result};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// The byte ranges `(offset, len)` to read from one part, and for each, `(index in the
/// missing list, slab index)`.
type PartReads = (Vec<(u64, usize)>, Vec<(usize, usize)>);

/// Where one of an expert's three matrices lies: expert `e`'s slab is `rows` rows of `cols`
/// elements at `base + e·stride` in part `part`.
#[derive(Clone, Debug)]
struct Slab {
    tensor: String,
    ty: GgmlType,
    cols: usize,
    rows: usize,
    part: usize,
    base: u64,
    stride: u64,
    bytes: u64,
}

impl Slab {
    /// `rows_per_expert` rows starting `row_offset` rows into each expert's block of
    /// `block_rows` rows of tensor `t`.
    fn new(t: &ModelTensor, rows: usize, row_offset: usize, block_rows: usize) -> Result<Slab> {
        let row_bytes = t.info.row_bytes().ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor {} has ggml type {}, which sluice cannot read",
                t.name(),
                t.info.ty
            ))
        })?;
        Ok(Slab {
            tensor: t.name().to_string(),
            ty: t.info.ty,
            cols: t.info.ne(0) as usize,
            rows,
            part: t.part,
            base: t.data_start + row_offset as u64 * row_bytes,
            stride: block_rows as u64 * row_bytes,
            bytes: rows as u64 * row_bytes,
        })
    }

    fn range(&self, e: u32) -> (u64, usize) {
        (self.base + e as u64 * self.stride, self.bytes as usize)
    }
}

/// The gate, up and down slabs of every MoE layer (`None` for dense layers).
#[derive(Clone, Debug)]
pub struct ExpertLayout {
    layers: Vec<Option<[Slab; 3]>>,
    n_expert: usize,
}

impl ExpertLayout {
    /// Finds the expert tensors of a `deepseek2` model and checks their shapes.
    pub fn of(gguf: &GgufModel, cfg: &Config) -> Result<ExpertLayout> {
        let ds = cfg
            .deepseek
            .as_ref()
            .ok_or_else(|| Error::model("experts can only be streamed for deepseek2 models"))?;
        let (n_embd, ff, ne) = (cfg.n_embd as u64, ds.n_ff_exp as u64, ds.n_expert as u64);
        let find = |l: usize, name: &str, shape: [u64; 3]| -> Result<Option<&ModelTensor>> {
            let full = format!("blk.{l}.{name}.weight");
            let Some(t) = gguf.tensor(&full) else {
                return Ok(None);
            };
            if (0..4).any(|i| t.info.ne(i) != shape.get(i).copied().unwrap_or(1)) {
                return Err(Error::model(format!(
                    "tensor {full} has shape {:?}, expected {shape:?}",
                    t.info.dims
                )));
            }
            Ok(Some(t))
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            if l < ds.n_dense {
                layers.push(None);
                continue;
            }
            let missing = |what: &str| Error::model(format!("layer {l}: {what} is missing"));
            let ff_rows = ds.n_ff_exp;
            let down = find(l, "ffn_down_exps", [ff, n_embd, ne])?
                .ok_or_else(|| missing("ffn_down_exps.weight"))?;
            let down = Slab::new(down, cfg.n_embd, 0, cfg.n_embd)?;
            let slabs = match find(l, "ffn_gate_up_exps", [n_embd, 2 * ff, ne])? {
                Some(fused) => [
                    Slab::new(fused, ff_rows, 0, 2 * ff_rows)?,
                    Slab::new(fused, ff_rows, ff_rows, 2 * ff_rows)?,
                    down,
                ],
                None => {
                    let gate = find(l, "ffn_gate_exps", [n_embd, ff, ne])?
                        .ok_or_else(|| missing("expert gate/up tensors"))?;
                    let up = find(l, "ffn_up_exps", [n_embd, ff, ne])?
                        .ok_or_else(|| missing("expert gate/up tensors"))?;
                    [
                        Slab::new(gate, ff_rows, 0, ff_rows)?,
                        Slab::new(up, ff_rows, 0, ff_rows)?,
                        down,
                    ]
                }
            };
            layers.push(Some(slabs));
        }
        Ok(ExpertLayout {
            layers,
            n_expert: ds.n_expert,
        })
    }

    /// Bytes of one expert of `layer` (0 for a dense layer).
    pub fn expert_bytes(&self, layer: usize) -> u64 {
        self.layers
            .get(layer)
            .and_then(Option::as_ref)
            .map_or(0, |s| s.iter().map(|s| s.bytes).sum())
    }

    /// Bytes of every routed expert of the model.
    pub fn total_bytes(&self) -> u64 {
        (0..self.layers.len())
            .map(|l| self.expert_bytes(l) * self.n_expert as u64)
            .sum()
    }
}

struct Entry<W> {
    expert: Arc<Expert<W>>,
    bytes: u64,
    last_use: u64,
}

struct CacheState<W> {
    entries: HashMap<(usize, u32), Entry<W>>,
    used: u64,
    tick: u64,
}

/// Counters shared with whoever reports them (readable while a generation runs).
pub type SharedStats = Rc<Cell<StoreStats>>;

/// Routed experts read on demand from the model's sources and cached within a byte budget.
pub struct BudgetedExperts<B: Backend> {
    layout: ExpertLayout,
    sources: Vec<Arc<dyn ByteSource>>,
    budget: u64,
    /// Experts one token routes to (a layer never runs with fewer at once).
    k_used: usize,
    clock: fn() -> f64,
    state: RefCell<CacheState<B::Weight>>,
    stats: SharedStats,
}

impl<B: Backend> BudgetedExperts<B> {
    /// A cache of at most `budget` bytes over `gguf`'s expert tensors; `clock` (milliseconds)
    /// times the stalls.
    pub fn new(gguf: &GgufModel, cfg: &Config, budget: u64, clock: fn() -> f64) -> Result<Self> {
        Ok(Self {
            layout: ExpertLayout::of(gguf, cfg)?,
            sources: gguf.parts.iter().map(|p| p.source.clone()).collect(),
            budget,
            k_used: cfg.deepseek.as_ref().map_or(1, |d| d.n_expert_used.max(1)),
            clock,
            state: RefCell::new(CacheState {
                entries: HashMap::new(),
                used: 0,
                tick: 0,
            }),
            stats: Rc::default(),
        })
    }

    /// The live counters.
    pub fn shared_stats(&self) -> SharedStats {
        self.stats.clone()
    }

    pub fn layout(&self) -> &ExpertLayout {
        &self.layout
    }

    /// Bytes held now.
    pub fn used_bytes(&self) -> u64 {
        self.state.borrow().used
    }

    fn bump(&self, f: impl FnOnce(&mut StoreStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Reads the slabs of `missing` experts of `layer`, one batched read per part.
    async fn fetch(
        &self,
        backend: &B,
        layer: usize,
        missing: &[u32],
    ) -> Result<Vec<(u32, Arc<Expert<B::Weight>>, u64)>> {
        let slabs = self.layout.layers[layer]
            .as_ref()
            .ok_or_else(|| Error::model(format!("layer {layer} has no routed experts")))?;
        // (expert index in `missing`, slab index) of each read, grouped by part.
        let mut per_part: HashMap<usize, PartReads> = HashMap::new();
        for (i, &e) in missing.iter().enumerate() {
            for (k, slab) in slabs.iter().enumerate() {
                let entry = per_part.entry(slab.part).or_default();
                entry.0.push(slab.range(e));
                entry.1.push((i, k));
            }
        }
        let parts: Vec<(usize, PartReads)> = per_part.into_iter().collect();
        let mut reads = Vec::with_capacity(parts.len());
        for (part, (ranges, _)) in &parts {
            let source = self.sources.get(*part).ok_or_else(|| {
                Error::model(format!("expert slab in part {part}, which was not opened"))
            })?;
            reads.push(source.read_many(ranges));
        }
        let mut bytes: Vec<[Option<Vec<u8>>; 3]> =
            missing.iter().map(|_| [None, None, None]).collect();
        for ((_, (_, owners)), result) in parts.iter().zip(join_all(reads).await) {
            for (&(i, k), data) in owners.iter().zip(result?) {
                bytes[i][k] = Some(data);
            }
        }
        let mut out = Vec::with_capacity(missing.len());
        for (&e, three) in missing.iter().zip(bytes) {
            let [g, u, d] = three;
            let weight = |k: usize, data: Option<Vec<u8>>| -> Result<B::Weight> {
                let slab = &slabs[k];
                let data = data
                    .ok_or_else(|| Error::model(format!("{}: expert {e} not read", slab.tensor)))?;
                backend.load_weight(WeightData {
                    name: format!("{} (expert {e})", slab.tensor),
                    ty: slab.ty,
                    cols: slab.cols,
                    rows: slab.rows,
                    mats: 1,
                    bytes: WeightBytes::Owned(Arc::new(data)),
                })
            };
            let expert = Expert {
                gate: weight(0, g)?,
                up: weight(1, u)?,
                down: weight(2, d)?,
            };
            out.push((e, Arc::new(expert), self.layout.expert_bytes(layer)));
        }
        Ok(out)
    }

    /// Drops least-recently-used entries (never those used at `keep_tick`) until the cache
    /// fits its budget.
    fn evict(state: &mut CacheState<B::Weight>, budget: u64, keep_tick: Option<u64>) {
        while state.used > budget {
            let victim = state
                .entries
                .iter()
                .filter(|(_, v)| Some(v.last_use) != keep_tick)
                .min_by_key(|(_, v)| v.last_use)
                .map(|(k, _)| *k);
            let Some(key) = victim else { break };
            if let Some(old) = state.entries.remove(&key) {
                state.used -= old.bytes;
            }
        }
    }
}

impl<B: Backend> ExpertStore<B> for BudgetedExperts<B> {
    /// As many experts as the budget holds, never fewer than one token's.
    fn experts_per_call(&self, layer: usize) -> usize {
        let size = self.layout.expert_bytes(layer).max(1);
        ((self.budget / size).min(usize::MAX as u64) as usize).max(self.k_used)
    }

    fn experts<'a>(
        &'a self,
        backend: &'a B,
        layer: usize,
        ids: &'a [u32],
    ) -> LocalBoxFuture<'a, Result<Vec<Arc<Expert<B::Weight>>>>> {
        Box::pin(async move {
            if let Some(&bad) = ids.iter().find(|&&e| e as usize >= self.layout.n_expert) {
                return Err(Error::model(format!("layer {layer} has no expert {bad}")));
            }
            let tick = {
                let mut st = self.state.borrow_mut();
                // What the last call kept beyond the budget (its own experts) goes first.
                Self::evict(&mut st, self.budget, None);
                st.tick += 1;
                st.tick
            };
            let mut missing: Vec<u32> = Vec::new();
            let mut hits = 0u64;
            {
                let mut st = self.state.borrow_mut();
                for &e in ids {
                    match st.entries.get_mut(&(layer, e)) {
                        Some(entry) => {
                            entry.last_use = tick;
                            hits += 1;
                        }
                        None if !missing.contains(&e) => missing.push(e),
                        None => {}
                    }
                }
            }
            self.bump(|s| s.hits += hits);
            let mut fetched = HashMap::new();
            if !missing.is_empty() {
                let t0 = (self.clock)();
                let got = self.fetch(backend, layer, &missing).await?;
                let stall = (self.clock)() - t0;
                let bytes: u64 = got.iter().map(|g| g.2).sum();
                self.bump(|s| {
                    s.misses += missing.len() as u64;
                    s.bytes_read += bytes;
                    s.stall_ms += stall;
                });
                let mut st = self.state.borrow_mut();
                for (e, expert, bytes) in got {
                    fetched.insert(e, expert.clone());
                    st.used += bytes;
                    if let Some(old) = st.entries.insert(
                        (layer, e),
                        Entry {
                            expert,
                            bytes,
                            last_use: tick,
                        },
                    ) {
                        st.used -= old.bytes;
                    }
                }
                Self::evict(&mut st, self.budget, Some(tick));
            }
            let st = self.state.borrow();
            ids.iter()
                .map(|&e| {
                    fetched
                        .get(&e)
                        .cloned()
                        .or_else(|| st.entries.get(&(layer, e)).map(|v| v.expert.clone()))
                        .ok_or_else(|| {
                            Error::model(format!("layer {layer}: expert {e} was not kept"))
                        })
                })
                .collect()
        })
    }

    fn stats(&self) -> StoreStats {
        self.stats.get()
    }
}
