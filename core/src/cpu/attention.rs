//! The KV cache and causal attention on the CPU.
//!
//! Cached rows are stored in the cache type (`--cache-type-k/-v`: f32, f16, q8_0, …). For MLA
//! there is no V cache: V is the first `head_dim_v` values of each cached K row (the latent),
//! exactly as llama.cpp views it. Queries are rounded to the cache's precision before the
//! dot products, as ggml does when it converts Q to K's dot type.

use super::pool::Pool;
use super::{shape_err, CpuTensor};
use crate::backend::{AttnParams, CacheSpec};
use crate::quant::GgmlType;
use crate::{Error, Result};

/// One layer's rows: up to `n_ctx` rows of `cols` values of `ty`. Memory grows with the
/// rows actually written, so a large `--ctx-size` costs nothing until it is used.
struct Rows {
    ty: GgmlType,
    cols: usize,
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
            cols,
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

    /// Rows `0..n` as f32.
    fn floats(&self, n: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; n * self.cols];
        self.ty
            .dequantize(&self.data[..n * self.row_bytes], &mut out)?;
        Ok(out)
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

/// Rounds a query row to the precision the cache type's dot product uses.
fn round_query(ty: GgmlType, q: &mut [f32]) {
    if ty == GgmlType::F16 {
        q.iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32());
    } else if ty == GgmlType::BF16 {
        q.iter_mut()
            .for_each(|x| *x = half::bf16::from_f32(*x).to_f32());
    }
}

pub fn attention(
    pool: &Pool,
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
    let keys = cache.k[layer].floats(n_kv)?;
    let values = match cache.spec.v_cols {
        Some(vc) if vc == p.n_head_kv * dv => Some(cache.v[layer].floats(n_kv)?),
        Some(_) => return Err(shape_err("attention", "V cache width mismatch".into())),
        None if dv <= dk && p.n_head_kv == 1 => None,
        None => {
            return Err(shape_err(
                "attention",
                "a latent cache needs one KV head".into(),
            ))
        }
    };
    let (k_cols, k_ty) = (cache.spec.k_cols, cache.spec.k_type);
    let v_cols = cache.spec.v_cols.unwrap_or(k_cols);
    let group = p.n_head / p.n_head_kv;
    pool.for_chunks(&mut out.data, dv, |i, o| {
        let (t, h) = (i / p.n_head, i % p.n_head);
        let kvh = h / group;
        let visible = start + t + 1;
        let mut qh = q.row(t)[h * dk..(h + 1) * dk].to_vec();
        round_query(k_ty, &mut qh);
        let mut scores = Vec::with_capacity(visible);
        let mut max = f32::NEG_INFINITY;
        for s in 0..visible {
            let k = &keys[s * k_cols + kvh * dk..s * k_cols + (kvh + 1) * dk];
            let dot: f32 = qh.iter().zip(k).map(|(a, b)| a * b).sum();
            let sc = dot * p.scale;
            max = max.max(sc);
            scores.push(sc);
        }
        let mut sum = 0.0f64;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc as f64;
        }
        let inv = (1.0 / sum) as f32;
        o.fill(0.0);
        for (s, &w) in scores.iter().enumerate() {
            let v = match &values {
                Some(vals) => &vals[s * v_cols + kvh * dv..s * v_cols + (kvh + 1) * dv],
                None => &keys[s * k_cols..s * k_cols + dv],
            };
            o.iter_mut().zip(v).for_each(|(a, &b)| *a += w * b);
        }
        o.iter_mut().for_each(|a| *a *= inv);
    });
    Ok(())
}
