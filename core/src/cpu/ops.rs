//! Element-wise and row-wise CPU ops, with ggml's arithmetic (order of operations, double
//! accumulation where ggml uses it) so results track llama.cpp's.

use super::{shape_err, CpuTensor, CpuWeight};
use crate::backend::{RopeMode, RopeParams, Segments};
use crate::Result;

/// A violated shape rule (crate::shapes) as this backend's error for `op`.
fn shapes(op: &'static str) -> impl FnOnce(String) -> crate::Error {
    move |msg| shape_err(op, msg)
}

/// Row gather with dequantization.
pub fn embed(table: &CpuWeight, ids: &[u32], out: &mut CpuTensor) -> Result<()> {
    if out.rows != ids.len() || out.cols != table.cols {
        return Err(shape_err(
            "embed",
            format!("{} ids into {}×{}", ids.len(), out.rows, out.cols),
        ));
    }
    for (t, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= table.rows * table.mats {
            return Err(shape_err(
                "embed",
                format!("token id {id} outside {} rows", table.rows),
            ));
        }
        let cols = out.cols;
        table
            .ty
            .dequantize(table.row(id), &mut out.data[t * cols..(t + 1) * cols])?;
    }
    Ok(())
}

/// RMS norm over each segment; ggml sums squares in double, scales in float, then multiplies
/// by the weight.
pub fn rms_norm(
    x: &CpuTensor,
    w: &CpuTensor,
    seg: Segments,
    eps: f32,
    out: &mut CpuTensor,
) -> Result<()> {
    crate::shapes::rms_norm(x.dims(), seg, w.data.len(), out.dims()).map_err(shapes("rms_norm"))?;
    out.data.copy_from_slice(&x.data);
    for r in 0..x.rows {
        let row = &mut out.data[r * x.cols..(r + 1) * x.cols];
        for g in 0..seg.groups {
            let s = g * seg.stride + seg.offset;
            let v = &mut row[s..s + seg.len];
            let sum: f64 = v.iter().map(|&a| (a * a) as f64).sum();
            let mean = (sum / seg.len as f64) as f32;
            let scale = 1.0 / (mean + eps).sqrt();
            for (a, &wi) in v.iter_mut().zip(&w.data) {
                *a = (*a * scale) * wi;
            }
        }
    }
    Ok(())
}

/// Rotary embedding in place on each segment (`seg.len == n_rot`).
pub fn rope(x: &mut CpuTensor, seg: Segments, positions: &[u32], p: &RopeParams) -> Result<()> {
    crate::shapes::rope(x.dims(), seg, positions.len(), p).map_err(shapes("rope"))?;
    let half = p.n_rot / 2;
    let mut cs = vec![(0f32, 0f32); half];
    for (r, &pos) in positions.iter().enumerate() {
        p.cos_sin(pos, &mut cs);
        let row = &mut x.data[r * x.cols..(r + 1) * x.cols];
        for g in 0..seg.groups {
            let s = g * seg.stride + seg.offset;
            let v = &mut row[s..s + seg.len];
            for (i, &(c, sn)) in cs.iter().enumerate() {
                let (a, b) = match p.mode {
                    RopeMode::Norm => (2 * i, 2 * i + 1),
                    RopeMode::Neox => (i, i + half),
                };
                let (x0, x1) = (v[a], v[b]);
                v[a] = x0 * c - x1 * sn;
                v[b] = x0 * sn + x1 * c;
            }
        }
    }
    Ok(())
}

/// Copies segment columns between tensors with the same number of rows. A source stride of
/// 0 repeats one segment into every destination group.
pub fn copy_segments(
    src: &CpuTensor,
    ss: Segments,
    dst: &mut CpuTensor,
    ds: Segments,
) -> Result<()> {
    crate::shapes::copy_segments(src.dims(), ss, dst.dims(), ds)
        .map_err(shapes("copy_segments"))?;
    for r in 0..src.rows {
        let s_row = &src.data[r * src.cols..(r + 1) * src.cols];
        let d_row = &mut dst.data[r * dst.cols..(r + 1) * dst.cols];
        for g in 0..ss.groups {
            let a = g * ss.stride + ss.offset;
            let b = g * ds.stride + ds.offset;
            d_row[b..b + ds.len].copy_from_slice(&s_row[a..a + ss.len]);
        }
    }
    Ok(())
}

/// `out = silu(gate) ⊙ up`, with silu as ggml computes it (`x / (1 + e^-x)`).
pub fn swiglu(gate: &CpuTensor, up: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
    if gate.data.len() != up.data.len() || out.data.len() != up.data.len() {
        return Err(shape_err(
            "swiglu",
            format!("{}×{} vs {}×{}", gate.rows, gate.cols, up.rows, up.cols),
        ));
    }
    for ((o, &g), &u) in out.data.iter_mut().zip(&gate.data).zip(&up.data) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
    Ok(())
}

/// Weighted sum of each token's expert outputs, in slot order (as ggml adds the views).
pub fn moe_combine(
    slots: &CpuTensor,
    weights: &[f32],
    k: usize,
    out: &mut CpuTensor,
) -> Result<()> {
    if slots.rows != out.rows * k || weights.len() != slots.rows || slots.cols != out.cols {
        return Err(shape_err(
            "moe_combine",
            format!("{} slots, {} weights, k {k}", slots.rows, weights.len()),
        ));
    }
    let n = out.cols;
    for t in 0..out.rows {
        let o = &mut out.data[t * n..(t + 1) * n];
        for j in 0..k {
            let slot = t * k + j;
            let w = weights[slot];
            let y = &slots.data[slot * n..(slot + 1) * n];
            if j == 0 {
                o.iter_mut().zip(y).for_each(|(a, &b)| *a = b * w);
            } else {
                o.iter_mut().zip(y).for_each(|(a, &b)| *a += b * w);
            }
        }
    }
    Ok(())
}

/// Walsh–Hadamard transform of each `n`-value chunk (ggml's `fwht`: scale first, then the
/// butterfly passes with lengths 1, 2, 4, …).
pub fn hadamard(x: &mut CpuTensor, n: usize) -> Result<()> {
    if n == 0 || !n.is_power_of_two() || !x.cols.is_multiple_of(n) {
        return Err(shape_err(
            "hadamard",
            format!("chunks of {n} in rows of {}", x.cols),
        ));
    }
    let scale = 1.0 / (n as f32).sqrt();
    for chunk in x.data.chunks_exact_mut(n) {
        chunk.iter_mut().for_each(|v| *v *= scale);
        let mut len = 1;
        while len < n {
            for i in (0..n).step_by(2 * len) {
                for j in 0..len {
                    let (u, v) = (chunk[i + j], chunk[i + len + j]);
                    chunk[i + j] = u + v;
                    chunk[i + len + j] = u - v;
                }
            }
            len <<= 1;
        }
    }
    Ok(())
}
