//! The CPU backend: portable path, and the oracle the GPU backend is tested against.
//!
//! Weights are used in place (from the memory map) in their stored ggml type; matrix products
//! convert each activation row once to the weight type's activation format and call the
//! per-type dot kernel, the way ggml's CPU backend does, so logits track llama.cpp's closely.
//! Work is spread over a persistent rayon pool of `--threads` threads (sequential on wasm).

mod attention;
pub mod kernels;
mod matmul;
mod ops;
mod pool;

use crate::backend::{
    AttnParams, Backend, CacheSpec, ExpertJob, RopeParams, Segments, WeightBytes, WeightData,
};
use crate::source::LocalBoxFuture;
use crate::{Error, Result};
pub use attention::CpuCache;
pub use pool::Pool;

/// An activation tensor: `rows × cols` f32, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl CpuTensor {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// (rows, columns), for the shared shape rules.
    pub fn dims(&self) -> crate::shapes::Dims {
        (self.rows, self.cols)
    }
}

/// A weight: `mats` matrices of `rows × cols` elements of `ty`, in place or owned.
#[derive(Clone)]
pub struct CpuWeight {
    pub name: String,
    pub ty: crate::quant::GgmlType,
    pub cols: usize,
    pub rows: usize,
    pub mats: usize,
    pub row_bytes: usize,
    pub bytes: WeightBytes,
}

impl CpuWeight {
    /// Bytes of row `r` (counted across matrices).
    pub fn row(&self, r: usize) -> &[u8] {
        &self.bytes.bytes()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Bytes of rows `r..r + count` (counted across matrices), or `None` past the end.
    pub fn rows(&self, r: usize, count: usize) -> Option<&[u8]> {
        self.bytes
            .bytes()
            .get(r * self.row_bytes..(r + count) * self.row_bytes)
    }

    /// Name and shape, for the shared shape rules.
    pub fn shape(&self) -> crate::shapes::WeightShape<'_> {
        crate::shapes::WeightShape {
            name: &self.name,
            mats: self.mats,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The CPU backend.
pub struct CpuBackend {
    pool: Pool,
    /// Scratch memory of the matrix products (one op runs at a time per backend).
    buffers: std::sync::Mutex<matmul::Buffers>,
}

impl CpuBackend {
    /// A backend computing on `threads` threads (0 = all cores).
    pub fn new(threads: usize) -> Result<Self> {
        Ok(Self {
            pool: Pool::new(threads)?,
            buffers: Default::default(),
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    fn buffers(&self) -> std::sync::MutexGuard<'_, matmul::Buffers> {
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn shape_err(op: &str, msg: String) -> Error {
    Error::Invalid(format!("cpu {op}: {msg}"))
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Weight = CpuWeight;
    type Cache = CpuCache;

    fn describe(&self) -> String {
        format!(
            "cpu ({} threads, {})",
            self.threads(),
            kernels::active_isa().name()
        )
    }

    fn load_weight(&self, w: WeightData) -> Result<CpuWeight> {
        let row_bytes = w.ty.row_bytes(w.cols as u64).ok_or_else(|| {
            Error::Unsupported(format!("{}: type {} with {} columns", w.name, w.ty, w.cols))
        })? as usize;
        let want = row_bytes as u64 * (w.rows * w.mats) as u64;
        if w.bytes.len() != want || w.bytes.bytes().len() as u64 != want {
            return Err(Error::model(format!(
                "{}: {} bytes of data, {want} expected",
                w.name,
                w.bytes.len()
            )));
        }
        Ok(CpuWeight {
            name: w.name,
            ty: w.ty,
            cols: w.cols,
            rows: w.rows,
            mats: w.mats,
            row_bytes,
            bytes: w.bytes,
        })
    }

    fn weight_rows(&self, w: &CpuWeight, first_row: usize, rows: usize) -> Result<CpuWeight> {
        if first_row + rows > w.rows * w.mats {
            return Err(shape_err(
                "weight_rows",
                format!("{}: rows {first_row}+{rows} of {}", w.name, w.rows * w.mats),
            ));
        }
        let bytes = w.bytes.slice(
            (first_row * w.row_bytes) as u64,
            (rows * w.row_bytes) as u64,
        );
        Ok(CpuWeight {
            name: w.name.clone(),
            ty: w.ty,
            cols: w.cols,
            rows,
            mats: 1,
            row_bytes: w.row_bytes,
            bytes,
        })
    }

    fn tensor(&self, rows: usize, cols: usize) -> CpuTensor {
        CpuTensor {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<CpuTensor> {
        if data.len() != rows * cols {
            return Err(shape_err(
                "upload",
                format!("{} values for {rows}×{cols}", data.len()),
            ));
        }
        Ok(CpuTensor {
            rows,
            cols,
            data: data.to_vec(),
        })
    }

    fn download<'a>(&'a self, t: &'a CpuTensor) -> LocalBoxFuture<'a, Result<Vec<f32>>> {
        Box::pin(std::future::ready(Ok(t.data.clone())))
    }

    fn shape(&self, t: &CpuTensor) -> (usize, usize) {
        (t.rows, t.cols)
    }

    fn new_cache(&self, spec: &CacheSpec) -> Result<CpuCache> {
        CpuCache::new(spec)
    }

    fn embed(&self, table: &CpuWeight, ids: &[u32], out: &mut CpuTensor) -> Result<()> {
        ops::embed(table, ids, out)
    }

    fn rms_norm(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        seg: Segments,
        eps: f32,
        out: &mut CpuTensor,
    ) -> Result<()> {
        ops::rms_norm(x, w, seg, eps, out)
    }

    fn matmul(&self, w: &CpuWeight, x: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        matmul::matmul(&self.pool, &mut self.buffers(), w, x, out)
    }

    fn matmul_groups(
        &self,
        w: &CpuWeight,
        x: &CpuTensor,
        x_seg: Segments,
        out: &mut CpuTensor,
        out_seg: Segments,
    ) -> Result<()> {
        matmul::matmul_groups(&self.pool, &mut self.buffers(), w, x, x_seg, out, out_seg)
    }

    fn rope(
        &self,
        x: &mut CpuTensor,
        seg: Segments,
        positions: &[u32],
        p: &RopeParams,
    ) -> Result<()> {
        ops::rope(x, seg, positions, p)
    }

    fn copy_segments(
        &self,
        src: &CpuTensor,
        src_seg: Segments,
        dst: &mut CpuTensor,
        dst_seg: Segments,
    ) -> Result<()> {
        ops::copy_segments(src, src_seg, dst, dst_seg)
    }

    fn copy_rows(&self, src: &CpuTensor, first: usize, dst: &mut CpuTensor) -> Result<()> {
        if src.cols != dst.cols || first + dst.rows > src.rows {
            return Err(shape_err(
                "copy_rows",
                format!("rows {first}+{} of {}×{}", dst.rows, src.rows, src.cols),
            ));
        }
        dst.data
            .copy_from_slice(&src.data[first * src.cols..(first + dst.rows) * src.cols]);
        Ok(())
    }

    fn cache_store(
        &self,
        cache: &mut CpuCache,
        layer: usize,
        start: usize,
        k: &CpuTensor,
        v: Option<&CpuTensor>,
    ) -> Result<()> {
        cache.store(layer, start, k, v)
    }

    fn attention(
        &self,
        cache: &CpuCache,
        layer: usize,
        q: &CpuTensor,
        start: usize,
        p: &AttnParams,
        out: &mut CpuTensor,
    ) -> Result<()> {
        attention::attention(
            &self.pool,
            &mut self.buffers().attn,
            cache,
            layer,
            q,
            start,
            p,
            out,
        )
    }

    fn swiglu(&self, gate: &CpuTensor, up: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        ops::swiglu(gate, up, out)
    }

    fn hadamard(&self, x: &mut CpuTensor, n: usize) -> Result<()> {
        ops::hadamard(x, n)
    }

    fn add_assign(&self, acc: &mut CpuTensor, x: &CpuTensor) -> Result<()> {
        if acc.data.len() != x.data.len() {
            return Err(shape_err(
                "add",
                format!("{}×{} += {}×{}", acc.rows, acc.cols, x.rows, x.cols),
            ));
        }
        acc.data.iter_mut().zip(&x.data).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn scale(&self, acc: &mut CpuTensor, s: f32) -> Result<()> {
        acc.data.iter_mut().for_each(|a| *a *= s);
        Ok(())
    }

    fn moe_experts(
        &self,
        jobs: &[ExpertJob<'_, CpuWeight>],
        x: &CpuTensor,
        out: &mut CpuTensor,
    ) -> Result<()> {
        matmul::moe_experts(&self.pool, &mut self.buffers(), jobs, x, out)
    }

    fn moe_combine(
        &self,
        slots: &CpuTensor,
        weights: &[f32],
        k_used: usize,
        out: &mut CpuTensor,
    ) -> Result<()> {
        ops::moe_combine(slots, weights, k_used, out)
    }
}
