//! Weight products: `matmul`, `matmul_groups`, `moe_experts` and `embed`.
//!
//! All products go through one job-table kernel (matvec for jobs of up to 4 rows, a tiled
//! matmul otherwise): a job is a weight view applied to some activation rows, optionally
//! gathered from and scattered to row lists. A plain product is one job; a per-head product
//! one job per head; routed experts one job per expert (ggml's MUL_MAT_ID), all in one
//! dispatch when their weights share a window of bound buffers.

use crate::backend::{shape_err, GpuTensor, WgpuBackend};
use crate::compose::{ShaderKey, Val};
use crate::formats::{act_format, act_has_correction};
use crate::recorder::{linear_grid, Bind};
use crate::weights::{GpuWeight, Window};
use sluice_core::backend::{ExpertJob, Segments};
use sluice_core::quant::GgmlType;
use sluice_core::{Error, Result};
use std::sync::Arc;

/// Jobs of at most this many rows use the matvec kernel (its `MV_TOK`).
const MATVEC_MAX_ROWS: u32 = 4;
/// Weight rows per matvec workgroup (its `MV_ROWS`: 64 invocations, `ROW_THREADS` per row).
const MATVEC_ROWS_PER_GROUP: u32 = 64 / crate::compose::ROW_THREADS;
/// Rows × tokens of a matmul tile (its `TILE`).
const TILE: u32 = 64;
const JOB_WORDS: usize = 8;
const NO_INDEX: u32 = u32::MAX;

/// The activation buffers of a product: input rows of `x_stride` floats, output rows of
/// `y_stride` floats.
#[derive(Clone, Copy)]
struct Io<'a> {
    x: &'a wgpu::Buffer,
    x_stride: usize,
    y: &'a wgpu::Buffer,
    y_stride: usize,
    /// Where x's Q8_1 block corrections start (in floats), or NO_INDEX.
    corr: u32,
}

/// One job of a product dispatch.
struct Job<'a> {
    /// First word of the job's matrix in the part sequence.
    w_word: u64,
    n_tok: u32,
    x_rows: Option<&'a [u32]>,
    y_rows: Option<&'a [u32]>,
    x_col: u32,
    y_col: u32,
}

impl<'a> Io<'a> {
    fn of(x: &'a GpuTensor, y: &'a GpuTensor) -> Self {
        Io {
            x: &x.buf,
            x_stride: x.cols,
            y: &y.buf,
            y_stride: y.cols,
            corr: NO_INDEX,
        }
    }
}

impl WgpuBackend {
    /// `x` (`rows × cols`) as the CPU backend multiplies it with weights of type `w_ty`: a
    /// copy (scratch `name`) whose segments are rounded to the weight type's activation format,
    /// or `x` itself when the CPU multiplies in f32; and where the copy's Q8_1 block
    /// corrections start (NO_INDEX if none).
    fn act_input(
        &self,
        name: &'static str,
        w_ty: GgmlType,
        x: &wgpu::Buffer,
        (rows, cols): (usize, usize),
        seg: Segments,
    ) -> Result<(wgpu::Buffer, u32)> {
        let Some(act) = act_format(w_ty) else {
            return Ok((x.clone(), NO_INDEX));
        };
        let qk = act.block_elems().unwrap_or(1) as usize;
        if !seg.len.is_multiple_of(qk) {
            // The CPU backend multiplies such rows in f32 as well.
            return Ok((x.clone(), NO_INDEX));
        }
        let corr = if act_has_correction(act) {
            (rows * cols) as u32
        } else {
            NO_INDEX
        };
        let buf = self.scratch(name, rows * cols * if corr == NO_INDEX { 1 } else { 2 });
        self.copy(x, 0, &buf, 0, (rows * cols) as u64 * 4);
        let key = ShaderKey {
            quant: Some(act),
            ..self.key("round_act")
        };
        self.rec().dispatch(
            &self.gpu,
            &key,
            &[
                ("cols", Val::U(cols as u32)),
                ("seg_stride", Val::U(seg.stride as u32)),
                ("seg_offset", Val::U(seg.offset as u32)),
                ("seg_len", Val::U(seg.len as u32)),
                ("corr_base", Val::U(corr)),
            ],
            &[],
            &[Bind::Buf(&buf)],
            &[],
            [
                ((seg.len / qk) as u32).div_ceil(64),
                seg.groups as u32,
                rows as u32,
            ],
        )?;
        Ok((buf, corr))
    }

    /// Runs `jobs` (matrices of `rows` × `w.cols` of `w`'s type and buffers) over `window`.
    fn product(
        &self,
        w: &GpuWeight,
        rows: usize,
        window: &Window,
        jobs: &[Job<'_>],
        io: Io<'_>,
    ) -> Result<()> {
        let mut host = vec![0u32; jobs.len() * JOB_WORDS];
        let list = |rows: Option<&[u32]>, host: &mut Vec<u32>| match rows {
            None => NO_INDEX,
            Some(r) => {
                let at = host.len() as u32;
                host.extend_from_slice(r);
                at
            }
        };
        for (i, j) in jobs.iter().enumerate() {
            let local = j
                .w_word
                .checked_sub(window.origin)
                .and_then(|v| u32::try_from(v).ok());
            let local = local.ok_or_else(|| {
                Error::Invalid(format!("{}: weight view outside its bound buffers", w.name))
            })?;
            let xl = list(j.x_rows, &mut host);
            let yl = list(j.y_rows, &mut host);
            host[i * JOB_WORDS..i * JOB_WORDS + 6]
                .copy_from_slice(&[local, j.n_tok, xl, yl, j.x_col, j.y_col]);
        }
        let max_tok = jobs.iter().map(|j| j.n_tok).max().unwrap_or(0);
        if max_tok == 0 || rows == 0 {
            return Ok(());
        }
        let matvec = max_tok <= MATVEC_MAX_ROWS;
        let kernel = if matvec { "matvec" } else { "matmul" };
        let key = ShaderKey {
            quant: Some(w.ty),
            parts: window.parts as u32,
            chunk_shift: self.chunk_shift,
            subgroups: self.gpu.subgroups && matvec,
            ..self.key(kernel)
        };
        let grid = if matvec {
            let [gx, gy] = linear_grid((rows as u32).div_ceil(MATVEC_ROWS_PER_GROUP));
            [gx, gy, jobs.len() as u32]
        } else {
            [
                (rows as u32).div_ceil(TILE),
                max_tok.div_ceil(TILE),
                jobs.len() as u32,
            ]
        };
        let mut extra: Vec<&wgpu::Buffer> = w.parts
            [window.first_part..window.first_part + window.parts]
            .iter()
            .collect();
        if w.format.uses_grids {
            extra.push(&self.grids);
        }
        self.rec().dispatch(
            &self.gpu,
            &key,
            &[
                ("rows", Val::U(rows as u32)),
                ("cols", Val::U(w.cols as u32)),
                ("row_words", Val::U(w.row_words as u32)),
                ("x_stride", Val::U(io.x_stride as u32)),
                ("y_stride", Val::U(io.y_stride as u32)),
                ("corr_base", Val::U(io.corr)),
            ],
            &host,
            &[Bind::Buf(io.x), Bind::Buf(io.y), Bind::Host],
            &extra,
            grid,
        )
    }

    pub(crate) fn op_matmul(
        &self,
        w: &GpuWeight,
        x: &GpuTensor,
        out: &mut GpuTensor,
    ) -> Result<()> {
        if w.mats != 1 || x.cols != w.cols || out.rows != x.rows || out.cols != w.rows {
            return Err(shape_err(
                "matmul",
                format!(
                    "{} [{}×{}×{}] · {}×{} → {}×{}",
                    w.name, w.mats, w.rows, w.cols, x.rows, x.cols, out.rows, out.cols
                ),
            ));
        }
        let (xa, corr) = self.act_input(
            "act_x",
            w.ty,
            &x.buf,
            (x.rows, x.cols),
            Segments::whole(x.cols),
        )?;
        let io = Io {
            x: &xa,
            corr,
            ..Io::of(x, out)
        };
        for (r0, n, window) in w.row_runs(w.rows, self.max_parts, self.chunk_shift)? {
            let job = Job {
                w_word: w.base + r0 as u64 * w.row_words,
                n_tok: x.rows as u32,
                x_rows: None,
                y_rows: None,
                x_col: 0,
                y_col: r0 as u32,
            };
            self.product(w, n, &window, &[job], io)?;
        }
        Ok(())
    }

    pub(crate) fn op_matmul_groups(
        &self,
        w: &GpuWeight,
        x: &GpuTensor,
        xs: Segments,
        out: &mut GpuTensor,
        os: Segments,
    ) -> Result<()> {
        sluice_core::shapes::matmul_groups(w.shape(), x.dims(), xs, out.dims(), os)
            .map_err(crate::ops::shapes("matmul_groups"))?;
        let window = w.rows_window(0, w.total_rows(), self.chunk_shift);
        if window.parts > self.max_parts {
            return Err(Error::Unsupported(format!(
                "{}: a stacked weight over {} buffers",
                w.name, window.parts
            )));
        }
        let jobs: Vec<Job<'_>> = (0..w.mats)
            .map(|g| Job {
                w_word: w.base + (g * w.rows) as u64 * w.row_words,
                n_tok: x.rows as u32,
                x_rows: None,
                y_rows: None,
                x_col: (g * xs.stride + xs.offset) as u32,
                y_col: (g * os.stride + os.offset) as u32,
            })
            .collect();
        let (xa, corr) = self.act_input("act_x", w.ty, &x.buf, (x.rows, x.cols), xs)?;
        let io = Io {
            x: &xa,
            corr,
            ..Io::of(x, out)
        };
        self.product(w, w.rows, &window, &jobs, io)
    }

    /// Runs one product per weight for the given per-weight jobs, batching weights that share
    /// a type, their buffers and a window of at most `max_parts` parts into one dispatch.
    fn batched(&self, weights: &[&GpuWeight], jobs: Vec<Job<'_>>, io: Io<'_>) -> Result<()> {
        let mut order: Vec<usize> = (0..weights.len()).collect();
        let windows: Vec<Window> = weights
            .iter()
            .map(|w| w.rows_window(0, w.rows, self.chunk_shift))
            .collect();
        order.sort_by_key(|&i| {
            (
                Arc::as_ptr(&weights[i].parts) as usize,
                windows[i].first_part,
            )
        });
        let mut jobs: Vec<Option<Job<'_>>> = jobs.into_iter().map(Some).collect();
        let mut i = 0;
        while i < order.len() {
            let first = weights[order[i]];
            let start_part = windows[order[i]].first_part;
            let mut end_part = start_part + windows[order[i]].parts;
            let mut group = vec![order[i]];
            let mut k = i + 1;
            while k < order.len() {
                let (w, win) = (weights[order[k]], &windows[order[k]]);
                let end = end_part.max(win.first_part + win.parts);
                if !Arc::ptr_eq(&w.parts, &first.parts)
                    || w.ty != first.ty
                    || w.rows != first.rows
                    || w.cols != first.cols
                    || end - start_part > self.max_parts
                {
                    break;
                }
                end_part = end;
                group.push(order[k]);
                k += 1;
            }
            if end_part - start_part > self.max_parts {
                return Err(Error::Unsupported(format!(
                    "{}: one matrix spans more buffers than a kernel can bind",
                    first.name
                )));
            }
            let window = Window {
                first_part: start_part,
                parts: end_part - start_part,
                origin: (start_part as u64) << self.chunk_shift,
            };
            let group_jobs: Vec<Job<'_>> = group.iter().filter_map(|&g| jobs[g].take()).collect();
            self.product(first, first.rows, &window, &group_jobs, io)?;
            i = k;
        }
        Ok(())
    }

    pub(crate) fn op_moe_experts(
        &self,
        jobs: &[ExpertJob<'_, GpuWeight>],
        x: &GpuTensor,
        out: &mut GpuTensor,
    ) -> Result<()> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let ff = first.gate.rows;
        for job in jobs {
            let (gate, up, down) = (job.gate, job.up, job.down);
            if job.out_rows.len() != job.x_rows.len()
                || gate.cols != x.cols
                || up.cols != x.cols
                || up.rows != ff
                || gate.rows != ff
                || down.cols != ff
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
                .map(|r| (r, x.rows))
                .chain(job.out_rows.iter().map(|r| (r, out.rows)))
                .find(|(r, n)| **r as usize >= *n)
                .map(|(r, _)| r)
            {
                return Err(shape_err("moe_experts", format!("row {bad} out of range")));
            }
        }
        // Each job's tokens get consecutive rows of the intermediate tensors.
        let mut compact: Vec<Vec<u32>> = Vec::with_capacity(jobs.len());
        let mut n = 0u32;
        for job in jobs {
            let k = job.x_rows.len() as u32;
            compact.push((n..n + k).collect());
            n += k;
        }
        if n == 0 {
            return Ok(());
        }
        let g = self.scratch("moe_gate", n as usize * ff);
        let u = self.scratch("moe_up", n as usize * ff);
        let a = self.scratch("moe_act", n as usize * ff);
        // Phase 0 (gate), 1 (up): gathered tokens → compact rows; 2 (down): compact rows →
        // the tokens' output slots.
        let phase = |which: usize, input: bool, output: bool| {
            jobs.iter()
                .zip(&compact)
                .map(|(job, c)| Job {
                    w_word: [job.gate, job.up, job.down][which].base,
                    n_tok: job.x_rows.len() as u32,
                    x_rows: Some(if input { job.x_rows } else { c }),
                    y_rows: Some(if output { job.out_rows } else { c }),
                    x_col: 0,
                    y_col: 0,
                })
                .collect::<Vec<_>>()
        };
        let gates: Vec<&GpuWeight> = jobs.iter().map(|j| j.gate).collect();
        let ups: Vec<&GpuWeight> = jobs.iter().map(|j| j.up).collect();
        let downs: Vec<&GpuWeight> = jobs.iter().map(|j| j.down).collect();

        // Inputs rounded as the CPU rounds them for each weight type (all experts of a call
        // share their types; `batched` keeps types apart anyway).
        let whole = |cols| Segments::whole(cols);
        let (gate_ty, up_ty, down_ty) = (first.gate.ty, first.up.ty, first.down.ty);
        if jobs.iter().any(|j| {
            act_format(j.gate.ty) != act_format(gate_ty)
                || act_format(j.up.ty) != act_format(up_ty)
                || act_format(j.down.ty) != act_format(down_ty)
        }) {
            return Err(Error::Unsupported(
                "routed experts of one call with different weight types".into(),
            ));
        }
        let shape = (x.rows, x.cols);
        let xg = self.act_input("act_x", gate_ty, &x.buf, shape, whole(x.cols))?;
        let xu = if act_format(up_ty) == act_format(gate_ty) {
            xg.clone()
        } else {
            self.act_input("act_x_up", up_ty, &x.buf, shape, whole(x.cols))?
        };
        self.batched(
            &gates,
            phase(0, true, false),
            Io {
                x: &xg.0,
                x_stride: x.cols,
                y: &g,
                y_stride: ff,
                corr: xg.1,
            },
        )?;
        self.batched(
            &ups,
            phase(1, true, false),
            Io {
                x: &xu.0,
                x_stride: x.cols,
                y: &u,
                y_stride: ff,
                corr: xu.1,
            },
        )?;
        self.elementwise_swiglu(&g, &u, &a, n as usize * ff)?;
        let aa = self.act_input("act_a", down_ty, &a, (n as usize, ff), whole(ff))?;
        self.batched(
            &downs,
            phase(2, false, true),
            Io {
                x: &aa.0,
                x_stride: ff,
                y: &out.buf,
                y_stride: out.cols,
                corr: aa.1,
            },
        )
    }

    pub(crate) fn op_embed(
        &self,
        table: &GpuWeight,
        ids: &[u32],
        out: &mut GpuTensor,
    ) -> Result<()> {
        if out.rows != ids.len() || out.cols != table.cols {
            return Err(shape_err(
                "embed",
                format!("{} ids into {}×{}", ids.len(), out.rows, out.cols),
            ));
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= table.total_rows()) {
            return Err(shape_err(
                "embed",
                format!("token id {bad} outside {} rows", table.total_rows()),
            ));
        }
        // Tokens whose rows start in the same part go in one dispatch; the host list holds
        // (first word of the row within the window, output row) pairs.
        let mut groups: Vec<(Window, Vec<u32>)> = Vec::new();
        for (t, &id) in ids.iter().enumerate() {
            let word = table.base + id as u64 * table.row_words;
            let win = table.window_of(word, word + table.row_words, self.chunk_shift);
            if win.parts > self.max_parts {
                return Err(Error::Unsupported(format!(
                    "{}: one row spans more buffers than a kernel can bind",
                    table.name
                )));
            }
            let local = (word - win.origin) as u32;
            match groups
                .iter_mut()
                .find(|(w, _)| w.first_part == win.first_part)
            {
                Some((w, list)) => {
                    w.parts = w.parts.max(win.parts);
                    list.extend_from_slice(&[local, t as u32]);
                }
                None => groups.push((win, vec![local, t as u32])),
            }
        }
        let chunks = (table.cols / 4) as u32;
        for (win, list) in groups {
            let key = ShaderKey {
                quant: Some(table.ty),
                parts: win.parts as u32,
                chunk_shift: self.chunk_shift,
                ..self.key("embed")
            };
            let mut extra: Vec<&wgpu::Buffer> = table.parts
                [win.first_part..win.first_part + win.parts]
                .iter()
                .collect();
            if table.format.uses_grids {
                extra.push(&self.grids);
            }
            self.rec().dispatch(
                &self.gpu,
                &key,
                &[("cols", Val::U(table.cols as u32))],
                &list,
                &[Bind::Buf(&out.buf), Bind::Host],
                &extra,
                [chunks.div_ceil(64), (list.len() / 2) as u32, 1],
            )?;
        }
        Ok(())
    }
}
