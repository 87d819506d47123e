//! Row, element-wise, cache and attention ops of [`WgpuBackend`], with the CPU backend's
//! shape checks.

use crate::backend::{shape_err, GpuCache, GpuTensor, WgpuBackend};
use crate::compose::{ShaderKey, Val};
use crate::recorder::{linear_grid, Bind};
use sluice_core::backend::{AttnParams, RopeMode, RopeParams, Segments};
use sluice_core::quant::GgmlType;
use sluice_core::{Error, Result};

const WG: u32 = 64;

/// A violated shape rule (sluice_core::shapes) as this backend's error for `op`.
pub(crate) fn shapes(op: &'static str) -> impl FnOnce(String) -> Error {
    move |msg| shape_err(op, msg)
}

/// Grid for one invocation per element of `n`.
fn elem_grid(n: usize) -> [u32; 3] {
    let [x, y] = linear_grid((n as u32).div_ceil(WG));
    [x, y, 1]
}

fn u(v: usize) -> Val {
    Val::U(v as u32)
}

impl WgpuBackend {
    pub(crate) fn op_rms_norm(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        seg: Segments,
        eps: f32,
        out: &mut GpuTensor,
    ) -> Result<()> {
        sluice_core::shapes::rms_norm(x.dims(), seg, w.len(), out.dims())
            .map_err(shapes("rms_norm"))?;
        let covers = seg.offset == 0 && seg.stride == seg.len && seg.groups * seg.len == x.cols;
        if !covers {
            self.copy(&x.buf, 0, &out.buf, 0, x.len() as u64 * 4);
        }
        self.rec().dispatch(
            &self.gpu,
            &self.key("rms_norm"),
            &[
                ("cols", u(x.cols)),
                ("seg_stride", u(seg.stride)),
                ("seg_offset", u(seg.offset)),
                ("seg_len", u(seg.len)),
                ("eps", Val::F(eps)),
            ],
            &[],
            &[Self::bind(x), Self::bind(w), Self::bind(out)],
            &[],
            [seg.groups as u32, x.rows as u32, 1],
        )
    }

    pub(crate) fn op_rope(
        &self,
        x: &mut GpuTensor,
        seg: Segments,
        positions: &[u32],
        p: &RopeParams,
    ) -> Result<()> {
        sluice_core::shapes::rope(x.dims(), seg, positions.len(), p).map_err(shapes("rope"))?;
        let half = p.n_rot / 2;
        let mut cs = vec![(0f32, 0f32); half];
        let mut table = Vec::with_capacity(2 * half * positions.len());
        for &pos in positions {
            p.cos_sin(pos, &mut cs);
            table.extend(cs.iter().flat_map(|&(c, s)| [c.to_bits(), s.to_bits()]));
        }
        let neox = matches!(p.mode, RopeMode::Neox);
        self.rec().dispatch(
            &self.gpu,
            &self.key("rope"),
            &[
                ("cols", u(x.cols)),
                ("n_rot", u(p.n_rot)),
                ("seg_groups", u(seg.groups)),
                ("seg_stride", u(seg.stride)),
                ("seg_offset", u(seg.offset)),
                ("neox", Val::U(neox as u32)),
            ],
            &table,
            &[Self::bind(x), Bind::Host],
            &[],
            [((half * seg.groups) as u32).div_ceil(WG), x.rows as u32, 1],
        )
    }

    pub(crate) fn op_copy_segments(
        &self,
        src: &GpuTensor,
        ss: Segments,
        dst: &mut GpuTensor,
        ds: Segments,
    ) -> Result<()> {
        sluice_core::shapes::copy_segments(src.dims(), ss, dst.dims(), ds)
            .map_err(shapes("copy_segments"))?;
        self.rec().dispatch(
            &self.gpu,
            &self.key("copy_segments"),
            &[
                ("len", u(ss.len)),
                ("src_cols", u(src.cols)),
                ("src_stride", u(ss.stride)),
                ("src_offset", u(ss.offset)),
                ("dst_cols", u(dst.cols)),
                ("dst_stride", u(ds.stride)),
                ("dst_offset", u(ds.offset)),
            ],
            &[],
            &[Self::bind(src), Self::bind(dst)],
            &[],
            [
                (ss.len as u32).div_ceil(WG),
                ss.groups as u32,
                src.rows as u32,
            ],
        )
    }

    pub(crate) fn elementwise_swiglu(
        &self,
        gate: &wgpu::Buffer,
        up: &wgpu::Buffer,
        out: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        self.rec().dispatch(
            &self.gpu,
            &self.key("swiglu"),
            &[("n", u(n))],
            &[],
            &[Bind::Buf(gate), Bind::Buf(up), Bind::Buf(out)],
            &[],
            elem_grid(n),
        )
    }

    pub(crate) fn op_swiglu(
        &self,
        gate: &GpuTensor,
        up: &GpuTensor,
        out: &mut GpuTensor,
    ) -> Result<()> {
        if gate.len() != up.len() || out.len() != up.len() {
            return Err(shape_err(
                "swiglu",
                format!("{}×{} vs {}×{}", gate.rows, gate.cols, up.rows, up.cols),
            ));
        }
        self.elementwise_swiglu(&gate.buf, &up.buf, &out.buf, out.len())
    }

    pub(crate) fn op_add(&self, acc: &mut GpuTensor, x: &GpuTensor) -> Result<()> {
        if acc.len() != x.len() {
            return Err(shape_err(
                "add",
                format!("{}×{} += {}×{}", acc.rows, acc.cols, x.rows, x.cols),
            ));
        }
        self.rec().dispatch(
            &self.gpu,
            &self.key("add"),
            &[("n", u(acc.len()))],
            &[],
            &[Self::bind(x), Self::bind(acc)],
            &[],
            elem_grid(acc.len()),
        )
    }

    pub(crate) fn op_scale(&self, acc: &mut GpuTensor, s: f32) -> Result<()> {
        self.rec().dispatch(
            &self.gpu,
            &self.key("scale"),
            &[("n", u(acc.len())), ("s", Val::F(s))],
            &[],
            &[Self::bind(acc)],
            &[],
            elem_grid(acc.len()),
        )
    }

    /// Orthonormal Walsh–Hadamard transform of every `n`-value chunk, in place.
    pub(crate) fn op_hadamard(&self, x: &mut GpuTensor, n: usize) -> Result<()> {
        if n == 0 || !n.is_power_of_two() || !x.cols.is_multiple_of(n) {
            return Err(shape_err(
                "hadamard",
                format!("chunks of {n} in rows of {}", x.cols),
            ));
        }
        let chunks = x.len() / n;
        self.rec().dispatch(
            &self.gpu,
            &self.key("hadamard"),
            &[
                ("chunks", u(chunks)),
                ("len", u(n)),
                ("s", Val::F(1.0 / (n as f32).sqrt())),
            ],
            &[],
            &[Self::bind(x)],
            &[],
            elem_grid(chunks),
        )
    }

    pub(crate) fn op_moe_combine(
        &self,
        slots: &GpuTensor,
        weights: &[f32],
        k: usize,
        out: &mut GpuTensor,
    ) -> Result<()> {
        if slots.rows != out.rows * k
            || weights.len() != slots.rows
            || slots.cols != out.cols
            || k == 0
        {
            return Err(shape_err(
                "moe_combine",
                format!("{} slots, {} weights, k {k}", slots.rows, weights.len()),
            ));
        }
        let host: Vec<u32> = weights.iter().map(|w| w.to_bits()).collect();
        self.rec().dispatch(
            &self.gpu,
            &self.key("moe_combine"),
            &[("n", u(out.len())), ("cols", u(out.cols)), ("k_used", u(k))],
            &host,
            &[Self::bind(slots), Self::bind(out), Bind::Host],
            &[],
            elem_grid(out.len()),
        )
    }

    fn store_rows(
        &self,
        ty: GgmlType,
        rows: &GpuTensor,
        dst: &wgpu::Buffer,
        row_words: u64,
        start: usize,
    ) -> Result<()> {
        let format = crate::formats::GpuFormat::of(ty)
            .filter(|f| f.store.is_some())
            .ok_or_else(|| Error::Unsupported(format!("cache type {ty} on the GPU")))?;
        let block = format.block_elems() as usize;
        let grids: Vec<&wgpu::Buffer> = if format.uses_grids {
            vec![&self.grids]
        } else {
            vec![]
        };
        let key = ShaderKey {
            quant: Some(ty),
            ..self.key("cache_store")
        };
        self.rec().dispatch(
            &self.gpu,
            &key,
            &[
                ("cols", u(rows.cols)),
                ("row_words", Val::U(row_words as u32)),
                ("first_row", u(start)),
            ],
            &[],
            &[Self::bind(rows), Bind::Buf(dst)],
            &grids,
            [
                ((rows.cols / block) as u32).div_ceil(WG),
                rows.rows as u32,
                1,
            ],
        )
    }

    pub(crate) fn op_cache_store(
        &self,
        cache: &mut GpuCache,
        layer: usize,
        start: usize,
        k: &GpuTensor,
        v: Option<&GpuTensor>,
    ) -> Result<()> {
        let spec = &cache.spec;
        if layer >= spec.n_layer || start + k.rows > spec.n_ctx || k.cols != spec.k_cols {
            return Err(shape_err(
                "cache_store",
                format!("layer {layer}, rows {start}+{} of {}", k.rows, spec.n_ctx),
            ));
        }
        match (v, spec.v_cols) {
            (Some(v), Some(vc)) if v.cols == vc && v.rows == k.rows => {}
            (None, None) => {}
            _ => {
                return Err(shape_err(
                    "cache_store",
                    "V rows do not match the cache".into(),
                ))
            }
        }
        let (k_type, v_type) = (spec.k_type, spec.v_type);
        self.grow_cache(cache, start + k.rows);
        self.store_rows(k_type, k, &cache.k[layer], cache.k_row_words, start)?;
        if let Some(v) = v {
            self.store_rows(v_type, v, &cache.v[layer], cache.v_row_words, start)?;
        }
        Ok(())
    }

    pub(crate) fn op_attention(
        &self,
        cache: &GpuCache,
        layer: usize,
        q: &GpuTensor,
        start: usize,
        p: &AttnParams,
        out: &mut GpuTensor,
    ) -> Result<()> {
        let spec = &cache.spec;
        let (dk, dv) = (p.head_dim_k, p.head_dim_v);
        let t_n = q.rows;
        if layer >= spec.n_layer
            || start + t_n > cache.rows
            || q.cols != p.n_head * dk
            || out.cols != p.n_head * dv
            || out.rows != t_n
            || p.n_head_kv == 0
            || !p.n_head.is_multiple_of(p.n_head_kv)
            || spec.k_cols != p.n_head_kv * dk
        {
            return Err(shape_err(
                "attention",
                format!("{p:?} on a cache of {} columns", spec.k_cols),
            ));
        }
        let (v_buf, v_type) = match spec.v_cols {
            Some(vc) if vc == p.n_head_kv * dv => (&cache.v[layer], spec.v_type),
            Some(_) => return Err(shape_err("attention", "V cache width mismatch".into())),
            None if dv <= dk && p.n_head_kv == 1 => (&cache.k[layer], spec.k_type),
            None => {
                return Err(shape_err(
                    "attention",
                    "a latent cache needs one KV head".into(),
                ))
            }
        };
        let block = |ty: GgmlType| {
            crate::formats::GpuFormat::of(ty).map_or(usize::MAX, |f| f.block_elems() as usize)
        };
        let (bk, bv) = (block(spec.k_type), block(v_type));
        if dk % bk != 0 || dv % 4 != 0 || (p.n_head_kv > 1 && dv % bv != 0) {
            return Err(Error::Unsupported(format!(
                "attention heads of {dk}/{dv} values over a {}/{} cache",
                spec.k_type, v_type
            )));
        }
        let round_q = match spec.k_type {
            GgmlType::F16 => 1,
            GgmlType::BF16 => 2,
            _ => 0,
        };
        let uses_grids = [spec.k_type, v_type]
            .iter()
            .any(|&t| crate::formats::GpuFormat::of(t).is_some_and(|f| f.uses_grids));
        let mut extra = vec![&cache.k[layer], v_buf];
        if uses_grids {
            extra.push(&self.grids);
        }
        let key = ShaderKey {
            quant: Some(spec.k_type),
            quant_v: Some(v_type),
            parts: 1,
            dims: [dk as u32, dv as u32],
            ..self.key("attention")
        };
        self.rec().dispatch(
            &self.gpu,
            &key,
            &[
                ("group", u(p.n_head / p.n_head_kv)),
                ("start", u(start)),
                ("q_stride", u(q.cols)),
                ("y_stride", u(out.cols)),
                ("k_row_words", Val::U(cache.k_row_words as u32)),
                (
                    "v_row_words",
                    Val::U(if spec.v_cols.is_some() {
                        cache.v_row_words
                    } else {
                        cache.k_row_words
                    } as u32),
                ),
                ("round_q", Val::U(round_q)),
                ("scale", Val::F(p.scale)),
            ],
            &[],
            &[Self::bind(q), Self::bind(out)],
            &extra,
            [p.n_head as u32, t_n as u32, 1],
        )
    }
}
