//! Matrix products on the CPU: `y = W · x` per token, per head, and per routed expert.
//!
//! Each activation row is converted once into the weight type's activation format (see
//! [`ActRows`]); then worker threads take ranges of weight rows and compute those outputs for
//! every token, so a weight row is read from memory once per batch.

use super::kernels::DotKernel;
use super::pool::Pool;
use super::{shape_err, CpuTensor, CpuWeight};
use crate::backend::{ExpertJob, Segments};
use crate::quant::GgmlType;
use crate::Result;

/// Activation rows prepared for one weight type.
pub(super) struct ActRows {
    /// `None`: plain f32 rows (weights are dequantized per row).
    kernel: Option<&'static DotKernel>,
    n: usize,
    cols: usize,
    row_bytes: usize,
    bytes: Vec<u8>,
    floats: Vec<f32>,
}

impl ActRows {
    /// Prepares `n` rows of `cols` floats (row `t` is `rows(t)`) for weights of type `wty`.
    pub(super) fn new<'a>(
        wty: GgmlType,
        n: usize,
        cols: usize,
        rows: impl Fn(usize) -> &'a [f32],
    ) -> Self {
        let mut floats = Vec::with_capacity(n * cols);
        for t in 0..n {
            floats.extend_from_slice(rows(t));
        }
        ActRows {
            kernel: None,
            n,
            cols,
            row_bytes: 0,
            bytes: Vec::new(),
            floats,
        }
        .convert(wty)
    }

    fn convert(mut self, wty: GgmlType) -> Self {
        if let Some(k) = super::kernels::dot_kernel(wty) {
            if let Some(rb) = k.act.row_bytes(self.cols as u64) {
                let rb = rb as usize;
                let mut bytes = vec![0u8; rb * self.n];
                for t in 0..self.n {
                    let x = &self.floats[t * self.cols..(t + 1) * self.cols];
                    let out = &mut bytes[t * rb..(t + 1) * rb];
                    if super::kernels::quantize_activation(k.act, x, out).is_err() {
                        return self;
                    }
                }
                self.kernel = Some(k);
                self.row_bytes = rb;
                self.bytes = bytes;
            }
        }
        self
    }

    /// `W[r] · x[t]`.
    fn dot(&self, w: &CpuWeight, r: usize, t: usize, scratch: &mut Vec<f32>) -> f32 {
        match self.kernel {
            Some(k) => (k.vec_dot)(
                self.cols,
                w.row(r),
                &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes],
            ),
            None => {
                scratch.resize(self.cols, 0.0);
                if w.ty.dequantize(w.row(r), scratch).is_err() {
                    return f32::NAN;
                }
                let x = &self.floats[t * self.cols..(t + 1) * self.cols];
                scratch.iter().zip(x).map(|(a, b)| a * b).sum()
            }
        }
    }
}

/// `out_t[r][t] = W[first + r] · x[t]` for `r < n_rows`, then transposed into `out(t, r)`.
fn product(
    pool: &Pool,
    w: &CpuWeight,
    first: usize,
    n_rows: usize,
    act: &ActRows,
    mut store: impl FnMut(usize, usize, f32),
) {
    let n = act.n;
    let mut acc = vec![0f32; n_rows * n];
    let chunk_rows = pool.chunk_for(n_rows, 16);
    pool.for_chunks(&mut acc, chunk_rows * n, |ci, chunk| {
        let mut scratch = Vec::new();
        let r0 = ci * chunk_rows;
        for (i, row_out) in chunk.chunks_mut(n).enumerate() {
            for (t, o) in row_out.iter_mut().enumerate() {
                *o = act.dot(w, first + r0 + i, t, &mut scratch);
            }
        }
    });
    for r in 0..n_rows {
        for t in 0..n {
            store(t, r, acc[r * n + t]);
        }
    }
}

pub fn matmul(pool: &Pool, w: &CpuWeight, x: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
    if w.mats != 1 || x.cols != w.cols || out.rows != x.rows || out.cols != w.rows {
        return Err(shape_err(
            "matmul",
            format!(
                "{} [{}×{}×{}] · {}×{} → {}×{}",
                w.name, w.mats, w.rows, w.cols, x.rows, x.cols, out.rows, out.cols
            ),
        ));
    }
    let act = ActRows::new(w.ty, x.rows, x.cols, |t| x.row(t));
    let cols = out.cols;
    product(pool, w, 0, w.rows, &act, |t, r, v| {
        out.data[t * cols + r] = v
    });
    Ok(())
}

pub fn matmul_groups(
    pool: &Pool,
    w: &CpuWeight,
    x: &CpuTensor,
    xs: Segments,
    out: &mut CpuTensor,
    os: Segments,
) -> Result<()> {
    if xs.groups != w.mats
        || os.groups != w.mats
        || xs.len != w.cols
        || os.len != w.rows
        || xs.min_cols() > x.cols
        || os.min_cols() > out.cols
        || out.rows != x.rows
    {
        return Err(shape_err(
            "matmul_groups",
            format!(
                "{} [{}×{}×{}] with {xs:?} → {os:?}",
                w.name, w.mats, w.rows, w.cols
            ),
        ));
    }
    let cols = out.cols;
    for g in 0..w.mats {
        let a = g * xs.stride + xs.offset;
        let act = ActRows::new(w.ty, x.rows, xs.len, |t| &x.row(t)[a..a + xs.len]);
        let b = g * os.stride + os.offset;
        product(pool, w, g * w.rows, w.rows, &act, |t, r, v| {
            out.data[t * cols + b + r] = v
        });
    }
    Ok(())
}

pub fn moe_experts(
    pool: &Pool,
    jobs: &[ExpertJob<'_, CpuWeight>],
    x: &CpuTensor,
    out: &mut CpuTensor,
) -> Result<()> {
    for job in jobs {
        let (gate, up, down) = (job.gate, job.up, job.down);
        let n = job.x_rows.len();
        if job.out_rows.len() != n
            || gate.cols != x.cols
            || up.rows != gate.rows
            || down.cols != gate.rows
            || down.rows != out.cols
        {
            return Err(shape_err(
                "moe_experts",
                format!("expert {} does not fit {}×{}", gate.name, x.rows, x.cols),
            ));
        }
        if let Some(&bad) = job
            .x_rows
            .iter()
            .chain(job.out_rows)
            .find(|&&r| r as usize >= x.rows.max(out.rows))
        {
            return Err(shape_err("moe_experts", format!("row {bad} out of range")));
        }
        let ff = gate.rows;
        let act = ActRows::new(gate.ty, n, x.cols, |i| x.row(job.x_rows[i] as usize));
        let mut g = vec![0f32; n * ff];
        product(pool, gate, 0, ff, &act, |t, r, v| g[t * ff + r] = v);
        let act = if up.ty == gate.ty {
            act
        } else {
            ActRows::new(up.ty, n, x.cols, |i| x.row(job.x_rows[i] as usize))
        };
        let mut h = vec![0f32; n * ff];
        product(pool, up, 0, ff, &act, |t, r, v| h[t * ff + r] = v);
        for (hv, &gv) in h.iter_mut().zip(&g) {
            *hv *= gv / (1.0 + (-gv).exp());
        }
        let act = ActRows::new(down.ty, n, ff, |i| &h[i * ff..(i + 1) * ff]);
        let cols = out.cols;
        let rows = job.out_rows;
        product(pool, down, 0, down.rows, &act, |t, r, v| {
            out.data[rows[t] as usize * cols + r] = v
        });
    }
    Ok(())
}
