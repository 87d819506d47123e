//! [`WgpuBackend`]: sluice-core's [`Backend`] on a wgpu device.
//!
//! Tensors are storage buffers of `f32` rows; weights are repacked, possibly split buffers
//! (`weights`); the KV cache is one buffer per layer (and per K/V) in the cache type's GPU
//! layout. Ops are recorded into a command encoder (`recorder`) and run when a result is read
//! back, which is the only point where the host waits (asynchronously in the browser).

use crate::compose::ShaderKey;
use crate::formats::{grid_table, GpuFormat};
use crate::gpu::{Gpu, GpuOptions};
use crate::recorder::{Bind, Recorder};
use crate::weights::{self, GpuWeight};
use sluice_core::backend::{
    AttnParams, Backend, CacheSpec, ExpertJob, RopeParams, Segments, WeightData,
};
use sluice_core::source::LocalBoxFuture;
use sluice_core::{Error, Result};
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

/// An activation tensor: `rows × cols` f32 in a storage buffer.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub buf: wgpu::Buffer,
    pub rows: usize,
    pub cols: usize,
}

impl GpuTensor {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// (rows, columns), for the shared shape rules.
    pub fn dims(&self) -> sluice_core::shapes::Dims {
        (self.rows, self.cols)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A KV cache: per layer, a buffer of rows in the cache type's GPU layout. Buffers grow
/// (doubling, up to `n_ctx` rows) as positions are written, so a large context costs memory
/// only once it is used.
pub struct GpuCache {
    pub spec: CacheSpec,
    pub(crate) k: Vec<wgpu::Buffer>,
    pub(crate) v: Vec<wgpu::Buffer>,
    pub(crate) k_row_words: u64,
    pub(crate) v_row_words: u64,
    /// Rows every layer's buffers hold now.
    pub(crate) rows: usize,
}

/// Rows a new cache holds before it first grows.
const CACHE_START_ROWS: usize = 256;

/// The wgpu backend.
pub struct WgpuBackend {
    pub(crate) gpu: Gpu,
    pub(crate) grids: wgpu::Buffer,
    pub(crate) rec: RefCell<Recorder>,
    /// Weight parts hold `1 << chunk_shift` words.
    pub(crate) chunk_shift: u32,
    /// Weight parts one dispatch may bind.
    pub(crate) max_parts: usize,
    /// Intermediate buffers of multi-dispatch ops, reused by name.
    scratch: RefCell<HashMap<&'static str, wgpu::Buffer>>,
}

impl WgpuBackend {
    /// Opens the preferred adapter.
    pub async fn new(opts: GpuOptions) -> Result<Self> {
        Self::on(Gpu::open(&opts).await?)
    }

    /// A backend on an open device (one device can serve several backends in turn: tests
    /// that load many models do not open a device each).
    pub fn on(gpu: Gpu) -> Result<Self> {
        let table = grid_table();
        let grids = gpu.storage_with("sluice grids", table.words.len() as u64 * 4, |write| {
            write(0, bytemuck::cast_slice(&table.words))
        })?;
        let chunk_shift = weights::chunk_shift(&gpu.limits);
        // x, y, host data and grids take four storage bindings.
        let max_parts = (gpu.limits.max_storage_buffers_per_shader_stage as usize)
            .saturating_sub(4)
            .clamp(1, 8);
        let rec = RefCell::new(Recorder::new(&gpu));
        Ok(Self {
            gpu,
            grids,
            rec,
            chunk_shift,
            max_parts,
            scratch: RefCell::new(HashMap::new()),
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &crate::gpu::AdapterSummary {
        &self.gpu.adapter
    }

    /// Pipelines compiled so far.
    pub fn pipeline_count(&self) -> usize {
        self.rec.borrow().pipeline_count()
    }

    pub(crate) fn rec(&self) -> RefMut<'_, Recorder> {
        self.rec.borrow_mut()
    }

    /// The key of a kernel without a format, with subgroups where the kernel has a variant.
    pub(crate) fn key(&self, kernel: &'static str) -> ShaderKey {
        let reduces = crate::compose::KernelSpec::get(kernel).is_ok_and(|k| k.reduces);
        ShaderKey::plain(kernel, self.gpu.subgroups && reduces)
    }

    /// Overwrites a tensor with host values, after the work recorded so far (which may still
    /// read the old values) has been submitted.
    pub fn write_tensor(&self, t: &GpuTensor, data: &[f32]) -> Result<()> {
        if data.len() != t.len() {
            return Err(shape_err(
                "write_tensor",
                format!("{} values for {}×{}", data.len(), t.rows, t.cols),
            ));
        }
        self.flush()?;
        self.gpu
            .queue
            .write_buffer(&t.buf, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Submits all recorded work.
    pub fn flush(&self) -> Result<()> {
        self.rec().flush(&self.gpu)
    }

    /// A scratch buffer of at least `floats` values, reused across calls under `name`.
    pub(crate) fn scratch(&self, name: &'static str, floats: usize) -> wgpu::Buffer {
        let bytes = (floats as u64 * 4).max(16);
        let mut map = self.scratch.borrow_mut();
        match map.get(name) {
            Some(b) if b.size() >= bytes => b.clone(),
            _ => {
                let b = self.gpu.storage(name, bytes.next_power_of_two());
                map.insert(name, b.clone());
                b
            }
        }
    }

    pub(crate) fn copy(
        &self,
        src: &wgpu::Buffer,
        src_at: u64,
        dst: &wgpu::Buffer,
        dst_at: u64,
        bytes: u64,
    ) {
        self.rec().copy(&self.gpu, src, src_at, dst, dst_at, bytes);
    }

    /// Grows every layer of `cache` to hold at least `need` rows (keeping what it holds).
    pub(crate) fn grow_cache(&self, cache: &mut GpuCache, need: usize) {
        if need <= cache.rows {
            return;
        }
        let rows = need.max(cache.rows * 2).min(cache.spec.n_ctx);
        for (bufs, row_words) in [
            (&mut cache.k, cache.k_row_words),
            (&mut cache.v, cache.v_row_words),
        ] {
            for b in bufs.iter_mut() {
                let grown = self.gpu.storage("kv cache", rows as u64 * row_words * 4);
                self.copy(b, 0, &grown, 0, cache.rows as u64 * row_words * 4);
                *b = grown;
            }
        }
        cache.rows = rows;
    }

    pub(crate) fn bind<'a>(t: &'a GpuTensor) -> Bind<'a> {
        Bind::Buf(&t.buf)
    }
}

pub(crate) fn shape_err(op: &str, msg: String) -> Error {
    Error::Invalid(format!("gpu {op}: {msg}"))
}

impl Backend for WgpuBackend {
    type Tensor = GpuTensor;
    type Weight = GpuWeight;
    type Cache = GpuCache;

    fn describe(&self) -> String {
        let a = &self.gpu.adapter;
        let mut extras = Vec::new();
        if self.gpu.subgroups {
            extras.push("subgroups");
        }
        if a.shader_f16 {
            extras.push("shader-f16");
        }
        // Browsers may hide the adapter's name; say what kind of device it is instead.
        let name = if a.name.is_empty() {
            format!("{} adapter", a.device_type.to_lowercase())
        } else {
            a.name.clone()
        };
        if extras.is_empty() {
            format!("{}: {name}", a.backend)
        } else {
            format!("{}: {name} [{}]", a.backend, extras.join(", "))
        }
    }

    fn load_weight(&self, w: WeightData) -> Result<GpuWeight> {
        weights::upload(&self.gpu, w, self.chunk_shift)
    }

    fn weight_rows(&self, w: &GpuWeight, first_row: usize, rows: usize) -> Result<GpuWeight> {
        if first_row + rows > w.total_rows() {
            return Err(shape_err(
                "weight_rows",
                format!("{}: rows {first_row}+{rows} of {}", w.name, w.total_rows()),
            ));
        }
        Ok(GpuWeight {
            rows,
            mats: 1,
            base: w.base + first_row as u64 * w.row_words,
            ..w.clone()
        })
    }

    fn tensor(&self, rows: usize, cols: usize) -> GpuTensor {
        GpuTensor {
            buf: self.gpu.storage("tensor", (rows * cols) as u64 * 4),
            rows,
            cols,
        }
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<GpuTensor> {
        if data.len() != rows * cols {
            return Err(shape_err(
                "upload",
                format!("{} values for {rows}×{cols}", data.len()),
            ));
        }
        let buf = self
            .gpu
            .storage_with("tensor", data.len() as u64 * 4, |write| {
                write(0, bytemuck::cast_slice(data))
            })?;
        Ok(GpuTensor { buf, rows, cols })
    }

    fn download<'a>(&'a self, t: &'a GpuTensor) -> LocalBoxFuture<'a, Result<Vec<f32>>> {
        if let Err(e) = self.flush() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let read = self.gpu.read_back(&t.buf, 0, t.len() as u64 * 4);
        Box::pin(async move {
            let bytes = read.await?;
            Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        })
    }

    fn shape(&self, t: &GpuTensor) -> (usize, usize) {
        (t.rows, t.cols)
    }

    fn new_cache(&self, spec: &CacheSpec) -> Result<GpuCache> {
        if spec.v_cols.is_none() && spec.k_type != spec.v_type {
            return Err(Error::Invalid(format!(
                "this model caches one latent row per token, so --cache-type-k ({}) and --cache-type-v ({}) must match",
                spec.k_type, spec.v_type
            )));
        }
        let row_words = |ty, cols: usize| -> Result<u64> {
            let f = GpuFormat::of(ty)
                .filter(|f| f.store.is_some())
                .ok_or_else(|| Error::Unsupported(format!("cache type {ty} on the GPU")))?;
            f.row_words(cols).map(|w| w as u64).ok_or_else(|| {
                Error::Invalid(format!("cache type {ty} cannot hold rows of {cols} values"))
            })
        };
        let k_row_words = row_words(spec.k_type, spec.k_cols)?;
        let v_row_words = match spec.v_cols {
            Some(vc) => row_words(spec.v_type, vc)?,
            None => k_row_words,
        };
        let rows = spec.n_ctx.min(CACHE_START_ROWS);
        let mut k = Vec::with_capacity(spec.n_layer);
        let mut v = Vec::new();
        for _ in 0..spec.n_layer {
            k.push(self.gpu.storage("k cache", rows as u64 * k_row_words * 4));
            if spec.v_cols.is_some() {
                v.push(self.gpu.storage("v cache", rows as u64 * v_row_words * 4));
            }
        }
        Ok(GpuCache {
            spec: spec.clone(),
            k,
            v,
            k_row_words,
            v_row_words,
            rows,
        })
    }

    fn embed(&self, table: &GpuWeight, ids: &[u32], out: &mut GpuTensor) -> Result<()> {
        self.op_embed(table, ids, out)
    }

    fn rms_norm(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        seg: Segments,
        eps: f32,
        out: &mut GpuTensor,
    ) -> Result<()> {
        self.op_rms_norm(x, w, seg, eps, out)
    }

    fn matmul(&self, w: &GpuWeight, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        self.op_matmul(w, x, out)
    }

    fn matmul_groups(
        &self,
        w: &GpuWeight,
        x: &GpuTensor,
        x_seg: Segments,
        out: &mut GpuTensor,
        out_seg: Segments,
    ) -> Result<()> {
        self.op_matmul_groups(w, x, x_seg, out, out_seg)
    }

    fn rope(
        &self,
        x: &mut GpuTensor,
        seg: Segments,
        positions: &[u32],
        p: &RopeParams,
    ) -> Result<()> {
        self.op_rope(x, seg, positions, p)
    }

    fn copy_segments(
        &self,
        src: &GpuTensor,
        src_seg: Segments,
        dst: &mut GpuTensor,
        dst_seg: Segments,
    ) -> Result<()> {
        self.op_copy_segments(src, src_seg, dst, dst_seg)
    }

    fn copy_rows(&self, src: &GpuTensor, first: usize, dst: &mut GpuTensor) -> Result<()> {
        if src.cols != dst.cols || first + dst.rows > src.rows {
            return Err(shape_err(
                "copy_rows",
                format!("rows {first}+{} of {}×{}", dst.rows, src.rows, src.cols),
            ));
        }
        self.copy(
            &src.buf,
            (first * src.cols) as u64 * 4,
            &dst.buf,
            0,
            dst.len() as u64 * 4,
        );
        Ok(())
    }

    fn cache_store(
        &self,
        cache: &mut GpuCache,
        layer: usize,
        start: usize,
        k: &GpuTensor,
        v: Option<&GpuTensor>,
    ) -> Result<()> {
        self.op_cache_store(cache, layer, start, k, v)
    }

    fn attention(
        &self,
        cache: &GpuCache,
        layer: usize,
        q: &GpuTensor,
        start: usize,
        p: &AttnParams,
        out: &mut GpuTensor,
    ) -> Result<()> {
        self.op_attention(cache, layer, q, start, p, out)
    }

    fn swiglu(&self, gate: &GpuTensor, up: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        self.op_swiglu(gate, up, out)
    }

    fn hadamard(&self, x: &mut GpuTensor, n: usize) -> Result<()> {
        self.op_hadamard(x, n)
    }

    fn add_assign(&self, acc: &mut GpuTensor, x: &GpuTensor) -> Result<()> {
        self.op_add(acc, x)
    }

    fn scale(&self, acc: &mut GpuTensor, s: f32) -> Result<()> {
        self.op_scale(acc, s)
    }

    fn moe_experts(
        &self,
        jobs: &[ExpertJob<'_, GpuWeight>],
        x: &GpuTensor,
        out: &mut GpuTensor,
    ) -> Result<()> {
        self.op_moe_experts(jobs, x, out)
    }

    fn moe_combine(
        &self,
        slots: &GpuTensor,
        weights: &[f32],
        k_used: usize,
        out: &mut GpuTensor,
    ) -> Result<()> {
        self.op_moe_combine(slots, weights, k_used, out)
    }
}
