//! [`StreamingExperts`]: routed experts read on demand into budgeted cache tiers.
//!
//! Tiers, top down:
//!
//! 1. **backend tier** — `B::Weight` handles made by `backend.load_weight` from owned bytes:
//!    host RAM on the CPU backend, GPU memory on a GPU backend (`backend_budget`);
//! 2. **host tier** — raw slab bytes in RAM under the backend tier (`host_budget`), for GPU
//!    backends, so an expert evicted from GPU memory is re-uploaded, not re-read. Off (0) on
//!    the CPU, where the backend tier already is host RAM;
//! 3. **the source** — the GGUF part holding the expert (positioned file reads, a memory
//!    map, HTTP range requests, browser fetch).
//!
//! A miss reads the expert's slabs with one `read_many` call (HTTP merges them into few
//! requests), builds the weights, inserts them and evicts by the tier's policy (see
//! [`super::policy`]). Prefetch hints start reads of predicted experts in the background;
//! they wait in a small staging area (bounded by `prefetch_cap`) until their layer asks for
//! them, and predictions for a layer that has passed are dropped.
//!
//! The bytes are the file's bytes and the kernels are the same, so logits are bit-identical
//! to a fully resident run at any budget. The budget bounds what the tiers keep; experts a
//! running layer holds stay alive until it finishes, so a budget smaller than one layer's
//! experts still works (it just caches nothing).

use super::fetch::{Fetcher, Handle, Slabs};
use super::layout::{ExpertLayout, GateUp, LayerSlabs, SlabTensor};
use super::policy::{key, Key, PolicyKind, Tier};
use super::{Expert, ExpertHandles, ExpertStore, StoreStats};
use crate::backend::{Backend, WeightBytes, WeightData};
use crate::gguf::GgufModel;
use crate::source::{ByteSource, LocalBoxFuture};
use crate::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// How a [`StreamingExperts`] store caches and reads.
#[derive(Clone, Debug)]
pub struct StreamingOptions {
    /// Bytes of experts the backend tier keeps (`u64::MAX`: every expert once used).
    pub backend_budget: u64,
    /// Bytes of raw expert slabs kept in host RAM below the backend tier (0: none).
    pub host_budget: u64,
    /// Eviction policy (`None`: [`PolicyKind::default_for`] the model's expert count).
    pub policy: Option<PolicyKind>,
    /// Read predicted experts ahead of use (the model calls `prefetch` only when this is on).
    pub prefetch: bool,
    /// Most bytes of prefetched experts waiting for their layer (`None`: the largest expert
    /// × 2 × experts per token, i.e. two layers of a decode step).
    pub prefetch_cap: Option<u64>,
    /// Background I/O threads on native targets (0: reads run on the waiting thread).
    pub io_threads: usize,
    /// Millisecond clock for stall times (`None`: the monotonic clock on native, none on
    /// wasm, where the embedder should pass `performance.now`).
    pub clock: Option<fn() -> f64>,
}

impl Default for StreamingOptions {
    fn default() -> Self {
        Self {
            backend_budget: u64::MAX,
            host_budget: 0,
            policy: None,
            prefetch: true,
            prefetch_cap: None,
            io_threads: 4,
            clock: None,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn monotonic_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

#[cfg(target_arch = "wasm32")]
fn monotonic_ms() -> f64 {
    0.0
}

/// Raw slabs of one expert, in [`LayerSlabs::tensors`] order.
type HostSlabs = Arc<[Arc<Vec<u8>>]>;

/// A read of one expert: one handle per GGUF part its slabs live in (almost always one).
struct ExpertRead {
    /// `(indices into LayerSlabs::tensors, read of those slabs)`.
    parts: Vec<(Vec<usize>, Handle)>,
    n_slabs: usize,
}

impl ExpertRead {
    fn is_ready(&self) -> bool {
        self.parts.iter().all(|(_, h)| h.is_ready())
    }

    async fn finish(self) -> Result<HostSlabs> {
        let mut slabs: Vec<Option<Arc<Vec<u8>>>> = vec![None; self.n_slabs];
        for (which, handle) in self.parts {
            let got: Slabs = handle.await?;
            if got.len() != which.len() {
                return Err(Error::Invalid(format!(
                    "a batched read returned {} ranges for {}",
                    got.len(),
                    which.len()
                )));
            }
            for (i, bytes) in which.into_iter().zip(got) {
                slabs[i] = Some(Arc::new(bytes));
            }
        }
        slabs
            .into_iter()
            .map(|s| s.ok_or_else(|| Error::Invalid("expert slab not read".into())))
            .collect()
    }
}

struct Prefetched {
    read: ExpertRead,
    layer: usize,
    bytes: u64,
}

/// What a request turns into before its weights exist.
enum Step<W> {
    Ready(Arc<Expert<W>>),
    Bytes(HostSlabs),
    Read(ExpertRead),
}

/// A request once every read has finished.
enum Got<W> {
    Ready(Arc<Expert<W>>),
    Bytes(HostSlabs),
}

struct State<W> {
    /// Counts expert accesses (the policies' time).
    clock: u64,
    backend: Tier<Arc<Expert<W>>>,
    host: Tier<HostSlabs>,
    prefetched: HashMap<Key, Prefetched>,
    prefetched_bytes: u64,
    /// Predicted experts per upcoming layer, scored when the layer runs.
    predicted: HashMap<usize, Vec<u32>>,
    stats: StoreStats,
}

impl<W> State<W> {
    fn score_prediction(&mut self, layer: usize, used: &[u32]) {
        if let Some(pred) = self.predicted.remove(&layer) {
            self.stats.prefetch_predicted += pred.len() as u64;
            self.stats.prefetch_correct += pred.iter().filter(|e| used.contains(e)).count() as u64;
        }
    }

    /// Drops staged prefetches for `layer` and earlier: their layer ran without them.
    fn drop_stale_prefetches(&mut self, layer: usize) {
        let stale: Vec<Key> = self
            .prefetched
            .iter()
            .filter(|(_, p)| p.layer <= layer)
            .map(|(&k, _)| k)
            .collect();
        for k in stale {
            if let Some(p) = self.prefetched.remove(&k) {
                self.prefetched_bytes -= p.bytes;
            }
        }
        self.predicted.retain(|&l, _| l > layer);
    }
}

/// Routed experts streamed from the model's byte sources into budgeted tiers.
pub struct StreamingExperts<B: Backend> {
    layout: ExpertLayout,
    sources: Vec<Arc<dyn ByteSource>>,
    prefetch: bool,
    prefetch_cap: u64,
    clock: fn() -> f64,
    fetcher: Fetcher,
    state: RefCell<State<B::Weight>>,
}

impl<B: Backend> StreamingExperts<B> {
    /// A store over the experts of `gguf` (its parts' sources are shared, not copied).
    pub fn from_model(gguf: &GgufModel, opts: StreamingOptions) -> Result<Self> {
        let layout = ExpertLayout::from_model(gguf)?;
        let sources = gguf.parts.iter().map(|p| Arc::clone(&p.source)).collect();
        Self::new(layout, sources, opts)
    }

    /// A store reading the slabs of `layout` from `sources` (indexed by GGUF part).
    pub fn new(
        layout: ExpertLayout,
        sources: Vec<Arc<dyn ByteSource>>,
        opts: StreamingOptions,
    ) -> Result<Self> {
        for t in layout.layers.iter().flatten().flat_map(|l| l.tensors()) {
            let source = sources.get(t.part).ok_or_else(|| {
                Error::model(format!("tensor {} is in a part that is not open", t.name))
            })?;
            let end = t.data_start + t.slab_bytes * layout.n_expert as u64;
            if end > source.len() {
                return Err(Error::io(
                    source.name(),
                    format!(
                        "tensor {} ends at byte {end}, past the end ({} bytes)",
                        t.name,
                        source.len()
                    ),
                ));
            }
        }
        let n_total = layout.layers.iter().flatten().count() * layout.n_expert;
        let policy = opts.policy.unwrap_or(PolicyKind::default_for(n_total));
        let prefetch_cap = opts
            .prefetch_cap
            .unwrap_or(layout.max_expert_bytes() * 2 * layout.k_used.max(1) as u64);
        Ok(Self {
            prefetch: opts.prefetch && layout.has_experts(),
            prefetch_cap,
            clock: opts.clock.unwrap_or(monotonic_ms),
            fetcher: Fetcher::new(opts.io_threads),
            state: RefCell::new(State {
                clock: 0,
                backend: Tier::new(opts.backend_budget, policy),
                host: Tier::new(opts.host_budget, policy),
                prefetched: HashMap::new(),
                prefetched_bytes: 0,
                predicted: HashMap::new(),
                stats: StoreStats::default(),
            }),
            layout,
            sources,
        })
    }

    pub fn layout(&self) -> &ExpertLayout {
        &self.layout
    }

    /// Bytes held by the backend and host tiers.
    pub fn resident_bytes(&self) -> (u64, u64) {
        let st = self.state.borrow();
        (st.backend.used(), st.host.used())
    }

    /// Starts reading expert `e` of a layer: one `read_many` per part holding its slabs.
    fn start_read(&self, slabs: &LayerSlabs, e: u32, urgent: bool) -> ExpertRead {
        let tensors = slabs.tensors();
        // (part, indices into `tensors`, ranges to read there)
        type PartReads = (usize, Vec<usize>, Vec<(u64, usize)>);
        let mut by_part: Vec<PartReads> = Vec::new();
        for (i, t) in tensors.iter().enumerate() {
            let (part, offset, len) = t.range(e);
            let range = (offset, len as usize);
            match by_part.iter_mut().find(|(p, _, _)| *p == part) {
                Some((_, which, ranges)) => {
                    which.push(i);
                    ranges.push(range);
                }
                None => by_part.push((part, vec![i], vec![range])),
            }
        }
        ExpertRead {
            parts: by_part
                .into_iter()
                .map(|(part, which, ranges)| {
                    (
                        which,
                        self.fetcher.start(&self.sources[part], ranges, urgent),
                    )
                })
                .collect(),
            n_slabs: tensors.len(),
        }
    }

    /// Builds expert `e`'s weights from its slabs and puts them in the backend tier.
    fn install(
        &self,
        be: &B,
        st: &mut State<B::Weight>,
        layer: usize,
        e: u32,
        bytes: &HostSlabs,
    ) -> Result<Arc<Expert<B::Weight>>> {
        let slabs = self.layout.layer(layer)?;
        let expert = Arc::new(build_expert(be, slabs, e, bytes)?);
        st.stats.evictions +=
            st.backend
                .insert(key(layer, e), Arc::clone(&expert), slabs.expert_bytes());
        Ok(expert)
    }

    async fn fetch(
        &self,
        be: &B,
        layer: usize,
        ids: &[u32],
    ) -> Result<Vec<Arc<Expert<B::Weight>>>> {
        let slabs = self.layout.layer(layer)?;
        if let Some(bad) = ids.iter().find(|&&e| e as usize >= self.layout.n_expert) {
            return Err(Error::model(format!("layer {layer} has no expert {bad}")));
        }
        let size = slabs.expert_bytes();
        let mut plan = Vec::with_capacity(ids.len());
        {
            let mut st = self.state.borrow_mut();
            st.score_prediction(layer, ids);
            for &e in ids {
                let k = key(layer, e);
                st.clock += 1;
                let now = st.clock;
                if let Some(x) = st.backend.lookup(k, now) {
                    st.stats.hits += 1;
                    plan.push(Step::Ready(x));
                } else if let Some(b) = st.host.lookup(k, now) {
                    st.stats.host_hits += 1;
                    plan.push(Step::Bytes(b));
                } else if let Some(p) = st.prefetched.remove(&k) {
                    st.prefetched_bytes -= p.bytes;
                    st.stats.prefetch_useful += 1;
                    plan.push(Step::Read(p.read));
                } else {
                    st.stats.misses += 1;
                    st.stats.bytes_read += size;
                    plan.push(Step::Read(self.start_read(slabs, e, true)));
                }
            }
            st.drop_stale_prefetches(layer);
        }
        let waits = plan
            .iter()
            .any(|s| matches!(s, Step::Read(r) if !r.is_ready()));
        let t0 = (self.clock)();
        let mut got = Vec::with_capacity(plan.len());
        for (step, &e) in plan.into_iter().zip(ids) {
            got.push(match step {
                Step::Ready(x) => Got::Ready(x),
                Step::Bytes(b) => Got::Bytes(b),
                Step::Read(r) => {
                    Got::Bytes(r.finish().await.map_err(|err| in_expert(err, layer, e))?)
                }
            });
        }
        let mut st = self.state.borrow_mut();
        if waits {
            st.stats.stall_ms += ((self.clock)() - t0).max(0.0);
        }
        let mut out = Vec::with_capacity(ids.len());
        for (step, &e) in got.into_iter().zip(ids) {
            out.push(match step {
                Got::Ready(x) => x,
                Got::Bytes(b) => {
                    let k = key(layer, e);
                    if st.host.enabled() && !st.host.contains(k) {
                        st.host.insert(k, Arc::clone(&b), size);
                    }
                    self.install(be, &mut st, layer, e, &b)
                        .map_err(|err| in_expert(err, layer, e))?
                }
            });
        }
        Ok(out)
    }
}

/// Builds an expert's three weights from its slabs (the fused gate/up slab is cut in two).
fn build_expert<B: Backend>(
    be: &B,
    slabs: &LayerSlabs,
    e: u32,
    bytes: &HostSlabs,
) -> Result<Expert<B::Weight>> {
    let weight = |t: &SlabTensor, b: &Arc<Vec<u8>>| {
        be.load_weight(WeightData {
            name: format!("{} expert {e}", t.name),
            ty: t.ty,
            cols: t.cols,
            rows: t.rows,
            mats: 1,
            bytes: WeightBytes::Owned(Arc::clone(b)),
        })
    };
    let slab = |i: usize| {
        bytes
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("expert {e}: slab {i} missing")))
    };
    match &slabs.gate_up {
        GateUp::Separate { gate, up } => Ok(Expert {
            gate: weight(gate, slab(0)?)?,
            up: weight(up, slab(1)?)?,
            down: weight(&slabs.down, slab(2)?)?,
        }),
        GateUp::Fused(gu) => {
            let fused = weight(gu, slab(0)?)?;
            let half = gu.rows / 2;
            Ok(Expert {
                gate: be.weight_rows(&fused, 0, half)?,
                up: be.weight_rows(&fused, half, half)?,
                down: weight(&slabs.down, slab(1)?)?,
            })
        }
    }
}

/// Adds "layer l expert e" to an error, keeping its kind (an I/O error stays one, naming
/// its source).
fn in_expert(err: Error, layer: usize, e: u32) -> Error {
    match err {
        Error::Io { source_name, msg } => Error::Io {
            source_name,
            msg: format!("layer {layer} expert {e}: {msg}"),
        },
        other => Error::model(format!("layer {layer} expert {e}: {other}")),
    }
}

impl<B: Backend + 'static> ExpertStore<B> for StreamingExperts<B> {
    fn experts<'a>(
        &'a self,
        backend: &'a B,
        layer: usize,
        ids: &'a [u32],
    ) -> LocalBoxFuture<'a, Result<ExpertHandles<B::Weight>>> {
        Box::pin(self.fetch(backend, layer, ids))
    }

    fn wants_prefetch(&self) -> bool {
        self.prefetch
    }

    /// As many experts as the backend tier's budget holds, but never fewer than a token
    /// routes to (a decode step needs its `k` experts together).
    fn experts_per_call(&self, layer: usize) -> usize {
        let size = self.layout.expert_bytes(layer).max(1);
        let budget = self.state.borrow().backend.budget();
        ((budget / size).min(usize::MAX as u64) as usize).max(self.layout.k_used.max(1))
    }

    fn prefetch(&self, _backend: &B, layer: usize, ids: &[u32]) {
        if !self.prefetch {
            return;
        }
        let Ok(slabs) = self.layout.layer(layer) else {
            return;
        };
        let size = slabs.expert_bytes();
        let mut st = self.state.borrow_mut();
        st.predicted.insert(layer, ids.to_vec());
        for &e in ids {
            if e as usize >= self.layout.n_expert {
                continue;
            }
            let k = key(layer, e);
            if st.backend.contains(k) || st.host.contains(k) || st.prefetched.contains_key(&k) {
                continue;
            }
            if st.prefetched_bytes + size > self.prefetch_cap {
                break;
            }
            let read = self.start_read(slabs, e, false);
            st.prefetched.insert(
                k,
                Prefetched {
                    read,
                    layer,
                    bytes: size,
                },
            );
            st.prefetched_bytes += size;
            st.stats.prefetch_issued += 1;
            st.stats.bytes_read += size;
        }
    }

    fn stats(&self) -> StoreStats {
        self.state.borrow().stats
    }
}
