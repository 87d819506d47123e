//! The KV cache and causal attention on the CPU.
//!
//! Cached rows are stored in the cache type (`--cache-type-k/-v`: f32, f16, q8_0, …). For MLA
//! there is no V cache: V is the first `head_dim_v` values of each cached K row (the latent),
//! exactly as llama.cpp views it. Queries are converted to the cache type's dot-product format
//! before the dot products, as ggml does when it converts Q to K's dot type.

use super::kernels::{axpy, dot_kernel, quantize_activation, row_to_f32};
use super::pool::Pool;
use super::{shape_err, CpuTensor};
use crate::backend::{AttnParams, CacheSpec};
use crate::quant::GgmlType;
use crate::{Error, Result};

/// One layer's rows: up to `n_ctx` rows of `cols` values of `ty`. Memory grows with the
/// rows actually written, so a large `--ctx-size` costs nothing until it is used.
struct Rows {
    ty: GgmlType,
    row_bytes: usize,
    capacity: usize,
    data: Vec<u8>,
}

impl Rows {
    fn new(ty: GgmlType, cols: usize, n_ctx: usize) -> Result<Self> {
        let row_bytes = ty.row_bytes(cols as u64).ok_or_else(|| {
            Error::Invalid(format!("cache type {ty} cannot hold rows of {cols} values"))
        })? as usize;
        row_bytes
            .checked_mul(n_ctx)
            .ok_or_else(|| Error::Invalid(format!("a cache of {n_ctx} rows overflows")))?;
        Ok(Self {
            ty,
            row_bytes,
            capacity: n_ctx,
            data: Vec::new(),
        })
    }

    fn store(&mut self, pos: usize, values: &[f32]) -> Result<()> {
        let need = (pos + 1) * self.row_bytes;
        if need > self.data.len() {
            let grown = need
                .max(self.data.len() * 2)
                .min(self.capacity * self.row_bytes);
            self.data.resize(grown.max(need), 0);
        }
        let dst = &mut self.data[pos * self.row_bytes..(pos + 1) * self.row_bytes];
        super::kernels::quantize_row(self.ty, values, dst)
    }
}

/// A KV cache on the host.
pub struct CpuCache {
    spec: CacheSpec,
    k: Vec<Rows>,
    v: Vec<Rows>,
}

impl CpuCache {
    pub fn new(spec: &CacheSpec) -> Result<Self> {
        if spec.v_cols.is_none() && spec.k_type != spec.v_type {
            return Err(Error::Invalid(format!(
                "this model caches one latent row per token, so --cache-type-k ({}) and --cache-type-v ({}) must match",
                spec.k_type, spec.v_type
            )));
        }
        let mut k = Vec::with_capacity(spec.n_layer);
        let mut v = Vec::new();
        for _ in 0..spec.n_layer {
            k.push(Rows::new(spec.k_type, spec.k_cols, spec.n_ctx)?);
            if let Some(vc) = spec.v_cols {
                v.push(Rows::new(spec.v_type, vc, spec.n_ctx)?);
            }
        }
        Ok(Self {
            spec: spec.clone(),
            k,
            v,
        })
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|r| r.data.len()).sum()
    }

    pub fn store(
        &mut self,
        layer: usize,
        start: usize,
        k: &CpuTensor,
        v: Option<&CpuTensor>,
    ) -> Result<()> {
        if layer >= self.spec.n_layer
            || start + k.rows > self.spec.n_ctx
            || k.cols != self.spec.k_cols
        {
            return Err(shape_err(
                "cache_store",
                format!(
                    "layer {layer}, rows {start}+{} of {}",
                    k.rows, self.spec.n_ctx
                ),
            ));
        }
        for t in 0..k.rows {
            self.k[layer].store(start + t, k.row(t))?;
        }
        match (v, self.spec.v_cols) {
            (Some(v), Some(vc)) if v.cols == vc && v.rows == k.rows => {
                for t in 0..v.rows {
                    self.v[layer].store(start + t, v.row(t))?;
                }
                Ok(())
            }
            (None, None) => Ok(()),
            _ => Err(shape_err(
                "cache_store",
                "V rows do not match the cache".into(),
            )),
        }
    }
}

/// Per-thread scratch of attention tasks: scores, then one decoded value row.
struct TaskScratch {
    scores: Vec<f32>,
    value: Vec<f32>,
}

thread_local! {
    static TASK: std::cell::RefCell<TaskScratch> = const {
        std::cell::RefCell::new(TaskScratch { scores: Vec::new(), value: Vec::new() })
    };
}

/// Causal attention over the cached rows, without decoding the cache: each query head is
/// converted once to the dot-product format of the cache type (F16 → f16, as ggml rounds Q for
/// an F16 cache; Q8_0/Q4_0/… → Q8_0 or Q8_1, as ggml's flash attention does for quantized
/// caches), scores use the kernel dot product on the stored rows, and value rows are decoded
/// one at a time into a per-thread buffer.
///
/// Work is split into (token, group of heads) tasks. Every head of a group reads the same
/// cached row right after the others (with MLA's single KV head, the very same bytes), so a
/// row is fetched from memory once per task rather than once per head.
pub fn attention(
    pool: &Pool,
    acts: &mut Vec<u8>,
    cache: &CpuCache,
    layer: usize,
    q: &CpuTensor,
    start: usize,
    p: &AttnParams,
    out: &mut CpuTensor,
) -> Result<()> {
    let (dk, dv) = (p.head_dim_k, p.head_dim_v);
    let t_n = q.rows;
    let n_kv = start + t_n;
    if layer >= cache.spec.n_layer
        || n_kv > cache.spec.n_ctx
        || q.cols != p.n_head * dk
        || out.cols != p.n_head * dv
        || out.rows != t_n
        || p.n_head_kv == 0
        || p.n_head % p.n_head_kv != 0
        || cache.spec.k_cols != p.n_head_kv * dk
    {
        return Err(shape_err(
            "attention",
            format!("{p:?} on a cache of {} columns", cache.spec.k_cols),
        ));
    }
    let keys = &cache.k[layer];
    let (values, v_head_bytes) = match cache.spec.v_cols {
        Some(vc) if vc == p.n_head_kv * dv => {
            let v = &cache.v[layer];
            (v, head_bytes(v.ty, dv)?)
        }
        Some(_) => return Err(shape_err("attention", "V cache width mismatch".into())),
        None if dv <= dk && p.n_head_kv == 1 => (keys, head_bytes(keys.ty, dv)?),
        None => {
            return Err(shape_err(
                "attention",
                "a latent cache needs one KV head".into(),
            ))
        }
    };
    if keys.data.len() < n_kv * keys.row_bytes || values.data.len() < n_kv * values.row_bytes {
        return Err(shape_err("attention", "rows beyond those stored".into()));
    }
    let k_head_bytes = head_bytes(keys.ty, dk)?;
    let kernel = dot_kernel(keys.ty).ok_or_else(|| {
        shape_err(
            "attention",
            format!("no dot product for cache type {}", keys.ty),
        )
    })?;
    // Query heads in the kernel's activation format: row (t, h).
    let q_stride = kernel
        .act
        .row_bytes(dk as u64)
        .ok_or_else(|| shape_err("attention", format!("{dk} values per head")))?
        as usize;
    acts.clear();
    acts.resize(t_n * p.n_head * q_stride, 0);
    let convert = |i: usize, o: &mut [u8]| {
        let (t, h) = (i / p.n_head, i % p.n_head);
        // Sizes were checked above, so the conversion cannot fail.
        let _ = quantize_activation(kernel.act, &q.row(t)[h * dk..(h + 1) * dk], o);
    };
    if t_n * p.n_head * dk >= 1 << 16 {
        pool.for_chunks(acts, q_stride, convert);
    } else {
        acts.chunks_exact_mut(q_stride)
            .enumerate()
            .for_each(|(i, o)| convert(i, o));
    }
    let acts = &acts[..];
    let group = p.n_head / p.n_head_kv;
    // Heads per task: a quarter of a worker's share of one token's heads, within one KV head.
    let per = {
        let want = p.n_head.div_ceil(pool.threads() * 4).max(1);
        let mut per = want.min(group);
        while group % per != 0 {
            per -= 1;
        }
        per
    };
    let (k_row, v_row, v_ty) = (keys.row_bytes, values.row_bytes, values.ty);
    pool.for_chunks(&mut out.data, per * dv, |i, o| {
        let heads_per_token = p.n_head / per;
        let (t, h0) = (i / heads_per_token, (i % heads_per_token) * per);
        let kvh = h0 / group;
        let visible = start + t + 1;
        TASK.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let TaskScratch { scores, value } = &mut *scratch;
            scores.clear();
            scores.resize(per * visible, 0.0);
            let qa = |h: usize| {
                let r = t * p.n_head + h0 + h;
                &acts[r * q_stride..(r + 1) * q_stride]
            };
            for s in 0..visible {
                let row = &keys.data[s * k_row + kvh * k_head_bytes..][..k_head_bytes];
                for h in 0..per {
                    scores[h * visible + s] = (kernel.vec_dot)(dk, row, qa(h)) * p.scale;
                }
            }
            let mut inv = [0f32; 64];
            let mut inv_big = Vec::new();
            let inv: &mut [f32] = if per <= 64 {
                &mut inv[..per]
            } else {
                inv_big.resize(per, 0.0);
                &mut inv_big
            };
            for (h, sc) in scores.chunks_exact_mut(visible).enumerate() {
                let max = sc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0.0f64;
                for v in sc.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v as f64;
                }
                inv[h] = (1.0 / sum) as f32;
            }
            o.fill(0.0);
            value.resize(dv, 0.0);
            for s in 0..visible {
                let bytes = &values.data[s * v_row + kvh * v_head_bytes..][..v_head_bytes];
                if row_to_f32(v_ty, bytes, value).is_err() {
                    value.fill(f32::NAN);
                }
                for (h, oh) in o.chunks_exact_mut(dv).enumerate() {
                    axpy(oh, scores[h * visible + s], value);
                }
            }
            for (h, oh) in o.chunks_exact_mut(dv).enumerate() {
                oh.iter_mut().for_each(|a| *a *= inv[h]);
            }
        });
    });
    Ok(())
}

/// Bytes of the first `n` values of a row of `ty` (whole blocks only).
fn head_bytes(ty: GgmlType, n: usize) -> Result<usize> {
    ty.row_bytes(n as u64)
        .map(|b| b as usize)
        .ok_or_else(|| shape_err("attention", format!("{n} values are not whole {ty} blocks")))
}
