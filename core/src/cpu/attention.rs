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

/// Query rows per batch from which llama.cpp's CPU flash attention switches to its tiled
/// kernel (f32 query, f32 accumulation) for f32/f16 caches.
const TILED_FROM_ROWS: usize = 64;

/// How ggml's CPU flash attention would evaluate this call; the two kernels round
/// differently, and using the one llama.cpp uses keeps our logits next to its.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlashPath {
    /// One query row at a time: Q converted to K's dot format, scores by the K type's dot
    /// kernel, online softmax; V accumulated in f16 when V is f16, else in f32.
    RowByRow,
    /// Batches of ≥ 64 query rows over f32/f16 caches: f32 query and scores, f32 accumulation.
    Tiled,
}

/// Attention's scratch memory, owned by the backend and reused across calls.
#[derive(Default)]
pub(super) struct Scratch {
    /// Query heads converted to the K type's dot-product format (row-by-row path).
    acts: Vec<u8>,
    /// The visible cache rows as f32, K then (unless V is K's latent prefix) V (tiled path).
    rows_f32: Vec<f32>,
}

std::thread_local! {
    /// Per-thread f32 scratch of one (token, head) task: a dequantized V row, or the scores.
    static TASK_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's task scratch resized to `len` (no allocation once it has grown).
fn with_task_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    TASK_SCRATCH.with(|cell| {
        let mut v = cell.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

/// Dequantizes rows `0..n` of `rows` to f32 (`cols` values each) into `out`, in parallel.
fn rows_to_f32(pool: &Pool, rows: &Rows, n: usize, cols: usize, out: &mut [f32]) -> Result<()> {
    let failed = std::sync::atomic::AtomicBool::new(false);
    let per = 32;
    pool.for_chunks(&mut out[..n * cols], per * cols, |ci, chunk| {
        for (j, o) in chunk.chunks_exact_mut(cols).enumerate() {
            let s = ci * per + j;
            let bytes = &rows.data[s * rows.row_bytes..(s + 1) * rows.row_bytes];
            if super::kernels::row_to_f32(rows.ty, bytes, o).is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    if failed.into_inner() {
        return Err(shape_err(
            "attention",
            format!("cannot read {} cache rows", rows.ty),
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &Pool,
    scratch: &mut Scratch,
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
        || !p.n_head.is_multiple_of(p.n_head_kv)
        || cache.spec.k_cols != p.n_head_kv * dk
    {
        return Err(shape_err(
            "attention",
            format!("{p:?} on a cache of {} columns", cache.spec.k_cols),
        ));
    }
    let latent_v = match cache.spec.v_cols {
        Some(vc) if vc == p.n_head_kv * dv => false,
        Some(_) => return Err(shape_err("attention", "V cache width mismatch".into())),
        None if dv <= dk && p.n_head_kv == 1 => true,
        None => {
            return Err(shape_err(
                "attention",
                "a latent cache needs one KV head".into(),
            ))
        }
    };
    let k_rows = &cache.k[layer];
    let v_rows = if latent_v { k_rows } else { &cache.v[layer] };
    let (k_ty, v_ty) = (k_rows.ty, v_rows.ty);
    let float_kv = matches!(k_ty, GgmlType::F32 | GgmlType::F16);
    let path = if t_n >= TILED_FROM_ROWS && float_kv && k_ty == v_ty {
        FlashPath::Tiled
    } else {
        FlashPath::RowByRow
    };
    let kernel = super::kernels::dot_kernel(k_ty)
        .ok_or_else(|| Error::Unsupported(format!("attention over a {k_ty} cache")))?;
    let (Some(k_head_bytes), Some(v_head_bytes), Some(act_bytes)) = (
        k_ty.row_bytes(dk as u64),
        v_ty.row_bytes(dv as u64),
        kernel.act.row_bytes(dk as u64),
    ) else {
        return Err(shape_err(
            "attention",
            format!("heads of {dk}/{dv} values do not fit {k_ty}/{v_ty} blocks"),
        ));
    };
    let (k_head_bytes, v_head_bytes) = (k_head_bytes as usize, v_head_bytes as usize);
    let k_at = |s: usize, kvh: usize| {
        &k_rows.data[s * k_rows.row_bytes + kvh * k_head_bytes..][..k_head_bytes]
    };
    let v_at = |s: usize, kvh: usize| {
        &v_rows.data[s * v_rows.row_bytes + kvh * v_head_bytes..][..v_head_bytes]
    };
    let group = p.n_head / p.n_head_kv;
    // Row-by-row: every query head converted once to the K type's dot-product format.
    // Tiled: the visible K (and V) rows converted once to f32 for all query rows and heads.
    let act_bytes = act_bytes as usize;
    let Scratch { acts, rows_f32 } = scratch;
    acts.clear();
    let (k_cols, v_cols) = (cache.spec.k_cols, cache.spec.v_cols.unwrap_or(0));
    match path {
        FlashPath::RowByRow => {
            acts.resize(t_n * p.n_head * act_bytes, 0);
            for (i, dst) in acts.chunks_exact_mut(act_bytes).enumerate() {
                let (t, h) = (i / p.n_head, i % p.n_head);
                super::kernels::quantize_activation(
                    kernel.act,
                    &q.row(t)[h * dk..(h + 1) * dk],
                    dst,
                )?;
            }
        }
        FlashPath::Tiled => {
            let v_len = if latent_v { 0 } else { n_kv * v_cols };
            rows_f32.clear();
            rows_f32.resize(n_kv * k_cols + v_len, 0.0);
            let (kf, vf) = rows_f32.split_at_mut(n_kv * k_cols);
            rows_to_f32(pool, k_rows, n_kv, k_cols, kf)?;
            if !latent_v {
                rows_to_f32(pool, v_rows, n_kv, v_cols, vf)?;
            }
            let (k_f32, v_f32) = rows_f32.split_at(n_kv * k_cols);
            let v = if latent_v {
                F32Rows {
                    data: k_f32,
                    stride: k_cols,
                    head: 0,
                }
            } else {
                F32Rows {
                    data: v_f32,
                    stride: v_cols,
                    head: dv,
                }
            };
            let k = F32Rows {
                data: k_f32,
                stride: k_cols,
                head: dk,
            };
            tiled(pool, &k, &v, q, start, p, out);
            return Ok(());
        }
    }
    let acts: &[u8] = acts;
    pool.for_chunks(&mut out.data, dv, |i, o| {
        let (t, h) = (i / p.n_head, i % p.n_head);
        let kvh = h / group;
        let visible = start + t + 1;
        o.fill(0.0);
        // ggml's one-row kernel: online softmax; V kept in f16 when the V cache is f16,
        // each step one fused multiply-add (then rounded to f16).
        with_task_scratch(dv, |vf| {
            let q_act = &acts[i * act_bytes..(i + 1) * act_bytes];
            let f16_acc = v_ty == GgmlType::F16;
            let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f32);
            for s in 0..visible {
                let score = (kernel.vec_dot)(dk, k_at(s, kvh), q_act) * p.scale;
                let (mut ms, mut vs) = (1.0f32, 1.0f32);
                if score > m {
                    ms = (m - score).exp();
                    m = score;
                    o.iter_mut().for_each(|a| {
                        *a = if f16_acc {
                            half::f16::from_f32(*a * ms).to_f32()
                        } else {
                            *a * ms
                        }
                    });
                } else {
                    vs = (score - m).exp();
                }
                if v_ty.dequantize(v_at(s, kvh), vf).is_err() {
                    o.fill(f32::NAN);
                    return;
                }
                if f16_acc {
                    super::kernels::axpy_round_f16(o, vs, vf);
                } else {
                    super::kernels::axpy(o, vs, vf);
                }
                sum = sum * ms + vs;
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            o.iter_mut().for_each(|a| *a *= inv);
        })
    });
    Ok(())
}

/// Cache rows converted to f32: row `s`, KV head `kvh` starts at `s·stride + kvh·head`.
struct F32Rows<'a> {
    data: &'a [f32],
    stride: usize,
    head: usize,
}

/// Most heads one task of [`tiled`] takes (they share a KV head and its rows).
const TILE_HEADS: usize = 8;

/// The batched path over f32 rows: full softmax per (query row, head), f32 scores and f32
/// accumulation. Each task takes one query row and a group of up to [`TILE_HEADS`] heads that
/// share a KV head, so the key and value rows are read once for the whole group (MLA: 128
/// heads share one latent row): the scores of all its heads come from one small GEMM over the
/// visible keys ([`dot_f32_tile`](super::kernels::dot_f32_tile)), the outputs from one pass
/// over the value rows ([`weighted_row_sums`](super::kernels::weighted_row_sums)).
fn tiled(
    pool: &Pool,
    k: &F32Rows,
    v: &F32Rows,
    q: &CpuTensor,
    start: usize,
    p: &AttnParams,
    out: &mut CpuTensor,
) {
    let (dk, dv) = (p.head_dim_k, p.head_dim_v);
    let group = p.n_head / p.n_head_kv;
    let heads = [TILE_HEADS, 4, 3, 2, 1]
        .into_iter()
        .find(|&g| group.is_multiple_of(g))
        .unwrap_or(1);
    let groups_per_row = p.n_head / heads;
    pool.for_chunks(&mut out.data, heads * dv, |i, o| {
        let (t, h0) = (i / groups_per_row, (i % groups_per_row) * heads);
        let kvh = h0 / group;
        let visible = start + t + 1;
        with_task_scratch(heads * visible, |scores| {
            // scores[j·visible + s] = q_{h0+j} · k_s (the causal mask: only s < visible).
            super::kernels::dot_f32_tile(
                dk,
                &q.row(t)[h0 * dk..(h0 + heads) * dk],
                dk,
                heads,
                &k.data[kvh * k.head..],
                k.stride,
                visible,
                scores,
                visible,
            );
            let mut inv = [0f32; TILE_HEADS];
            for (sc_row, inv) in scores.chunks_exact_mut(visible).zip(&mut inv) {
                let mut max = f32::NEG_INFINITY;
                for sc in sc_row.iter_mut() {
                    *sc *= p.scale;
                    max = max.max(*sc);
                }
                let mut sum = 0.0f32;
                for sc in sc_row.iter_mut() {
                    *sc = (*sc - max).exp();
                    sum += *sc;
                }
                *inv = 1.0 / sum;
            }
            // Σ_s w·v (in order of s, one FMA per term), then · 1/Σw.
            super::kernels::weighted_row_sums(
                &v.data[kvh * v.head..],
                v.stride,
                visible,
                scores,
                heads,
                o,
            );
            for (oh, &inv) in o.chunks_exact_mut(dv).zip(&inv) {
                oh.iter_mut().for_each(|a| *a *= inv);
            }
        })
    });
}
