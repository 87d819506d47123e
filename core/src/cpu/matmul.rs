//! Matrix products on the CPU: `y = W · x` per token, per head, and per routed expert.
//!
//! Each activation row is converted once into the weight type's activation format; then the
//! pool's workers take ranges of weight rows and compute those outputs for every token, so a
//! weight row is read from memory once per batch. With several tokens the multi-row kernels
//! multiply one weight row with up to eight activation rows at a time (each weight block
//! decoded once), walking the tokens in groups of eight so those rows stay in L1 while the
//! task's weight rows stay in L2. Batches of [`PANEL_MIN_TOKENS`] or more multiply weights
//! that have a panel kernel (k-quants and Q4_1 on AVX-512 VNNI CPUs) through it instead: a task
//! decodes its rows 16 at a time into a per-thread panel and multiplies it with every token.
//!
//! One call is one parallel region: `matmul_groups` (the per-head `attn_k_b` / `attn_v_b`)
//! spreads (head, row range) tasks, and `moe_experts` computes the gate and up projections of
//! all routed experts in one region and their down projections in a second. All buffers live
//! in [`Buffers`], reused across calls, so steady-state decoding allocates nothing here.

use super::kernels::{dot_kernel, panel, DotKernel};
use super::pool::Pool;
use super::{shape_err, CpuTensor, CpuWeight};
use crate::backend::{ExpertJob, Segments};
use crate::Result;

/// Scratch memory of the matrix products, owned by the backend.
#[derive(Default)]
pub(super) struct Buffers {
    acts: Vec<u8>,
    acts_up: Vec<u8>,
    acts2: Vec<u8>,
    acc: Vec<f32>,
    hidden: Vec<f32>,
    bounds: Vec<usize>,
    offsets: Vec<usize>,
    /// Attention's scratch (converted queries, K/V rows as f32).
    pub(super) attn: super::attention::Scratch,
}

/// Activation rows handed to one multi-row kernel call: the kernels decode each weight block
/// once per call (the AVX-512 build keeps eight rows' accumulators in registers).
const TOKENS_PER_PASS: usize = 8;

/// Weight rows per task: about a quarter of a worker's share, at least `min` rows; for batches
/// at most 64 rows (≈ 256 KiB of 4-bit 7168-wide rows, an L2's worth).
fn rows_per_task(pool: &Pool, rows: usize, tokens: usize) -> usize {
    let share = pool.chunk_for(rows, 16);
    if tokens > 1 {
        share.min(64)
    } else {
        share
    }
}

/// The kernel for `w`, or an error naming the weight.
fn kernel(w: &CpuWeight) -> Result<&'static DotKernel> {
    dot_kernel(w.ty).ok_or_else(|| {
        shape_err(
            "matmul",
            format!("{}: no CPU dot product for {}", w.name, w.ty),
        )
    })
}

/// Converts `n` rows (row `t` = `row(t)`, `cols` floats each) into `k`'s activation format in
/// `out`; returns the row stride in bytes.
fn convert<'a>(
    pool: &Pool,
    k: &DotKernel,
    n: usize,
    cols: usize,
    row: impl Fn(usize) -> &'a [f32] + crate::source::MaybeSendSync,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let stride = k.act.row_bytes(cols as u64).ok_or_else(|| {
        shape_err(
            "matmul",
            format!("{cols} columns are not whole {} blocks", k.act),
        )
    })? as usize;
    out.clear();
    out.resize(n * stride, 0);
    let per_task = n.div_ceil(pool.threads() * 2).max(1);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let work = |i: usize, chunk: &mut [u8]| {
        for (j, o) in chunk.chunks_exact_mut(stride).enumerate() {
            let x = row(i * per_task + j);
            if super::kernels::quantize_activation(k.act, x, o).is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    if n * cols >= 1 << 16 {
        pool.for_chunks(out, per_task * stride, work);
    } else {
        work(0, &mut out[..]);
    }
    if failed.into_inner() {
        return Err(shape_err(
            "matmul",
            format!("cannot convert rows to {}", k.act),
        ));
    }
    Ok(stride)
}

/// Batches of at least this many tokens multiply k-quant and Q4_1 weights through decoded
/// panels (see [`panel`]) where the CPU has a panel kernel: decoding 16 rows costs what the
/// panel GEMM saves over the one-row kernels on ~10 tokens (the `panel_bench` example: panels
/// lose at 8 tokens and win by 1.3–1.4× at 16).
const PANEL_MIN_TOKENS: usize = 16;

thread_local! {
    /// Per-thread scratch holding one decoded weight panel.
    static PANEL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The panel path of [`task_rows`]: fills `acc` for the task's first whole panels and returns
/// how many rows it did (0 when the active ISA has no panel kernel for this weight).
fn panel_rows(
    w: &CpuWeight,
    first: usize,
    acts: &[u8],
    n: usize,
    stride: usize,
    acc: &mut [f32],
) -> usize {
    let Some(bytes) = panel::panel_bytes(w.ty, w.cols) else {
        return 0;
    };
    let rows = acc.len() / n;
    PANEL.with(|cell| {
        let mut p = cell.borrow_mut();
        if p.len() < bytes {
            p.resize(bytes, 0);
        }
        let mut done = 0;
        while done + panel::ROWS <= rows {
            let Some(src) = w.rows(first + done, panel::ROWS) else {
                break;
            };
            let out = &mut acc[done * n..(done + panel::ROWS) * n];
            if !panel::pack(w.ty, w.cols, src, w.row_bytes, &mut p)
                || !panel::gemm(w.ty, w.cols, &p, acts, stride, n, out)
            {
                break;
            }
            done += panel::ROWS;
        }
        done
    })
}

/// `acc[i·n + t] = W[first + r0 + i] · act[t]` for the rows of one task (`acc.len() / n` rows
/// starting at row `r0` of the range that begins at weight row `first`).
#[inline]
fn task_rows(
    k: &DotKernel,
    w: &CpuWeight,
    first: usize,
    acts: &[u8],
    n: usize,
    stride: usize,
    acc: &mut [f32],
) {
    let cols = w.cols;
    let rows = acc.len() / n.max(1);
    if n == 1 {
        for (i, o) in acc.iter_mut().enumerate() {
            *o = (k.vec_dot)(cols, w.row(first + i), &acts[..stride]);
        }
        return;
    }
    let done = if n >= PANEL_MIN_TOKENS {
        panel_rows(w, first, acts, n, stride, acc)
    } else {
        0
    };
    let mut tmp = [0f32; TOKENS_PER_PASS];
    for t0 in (0..n).step_by(TOKENS_PER_PASS) {
        let tn = (n - t0).min(TOKENS_PER_PASS);
        let block = &acts[t0 * stride..];
        for i in done..rows {
            (k.multi)(cols, w.row(first + i), block, stride, &mut tmp[..tn]);
            for (j, &v) in tmp[..tn].iter().enumerate() {
                acc[i * n + t0 + j] = v;
            }
        }
    }
}

pub fn matmul(
    pool: &Pool,
    buf: &mut Buffers,
    w: &CpuWeight,
    x: &CpuTensor,
    out: &mut CpuTensor,
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
    let k = kernel(w)?;
    let n = x.rows;
    let stride = convert(pool, k, n, x.cols, |t| x.row(t), &mut buf.acts)?;
    let acts = &buf.acts;
    let per = rows_per_task(pool, w.rows, n);
    if n == 1 {
        pool.for_chunks(&mut out.data, per, |ci, o| {
            task_rows(k, w, ci * per, acts, 1, stride, o)
        });
        return Ok(());
    }
    buf.acc.clear();
    buf.acc.resize(w.rows * n, 0.0);
    pool.for_chunks(&mut buf.acc, per * n, |ci, o| {
        task_rows(k, w, ci * per, acts, n, stride, o)
    });
    transpose_into(pool, &buf.acc, n, w.rows, &mut out.data);
    Ok(())
}

/// `out[t·rows + r] = acc[r·n + t]` (row-major per weight row → row-major per token), in
/// parallel over token ranges: each task reads a strip of `acc` and writes whole output rows.
fn transpose_into(pool: &Pool, acc: &[f32], n: usize, rows: usize, out: &mut [f32]) {
    let tokens_per_task = n.div_ceil(pool.threads() * 2).clamp(1, 16);
    let work = |ci: usize, o: &mut [f32]| {
        let t0 = ci * tokens_per_task;
        for (j, row) in o.chunks_exact_mut(rows).enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = acc[r * n + t0 + j];
            }
        }
    };
    if n * rows >= 1 << 15 {
        pool.for_chunks(&mut out[..n * rows], tokens_per_task * rows, work);
    } else {
        work(0, &mut out[..n * rows]);
    }
}

/// Splits `rows` into about `rows / per` pieces that divide it evenly (so no task straddles
/// two matrices): the piece size.
fn even_piece(rows: usize, per: usize) -> usize {
    let mut pieces = rows.div_ceil(per.max(1)).max(1);
    while !rows.is_multiple_of(pieces) {
        pieces += 1;
    }
    rows / pieces
}

pub fn matmul_groups(
    pool: &Pool,
    buf: &mut Buffers,
    w: &CpuWeight,
    x: &CpuTensor,
    xs: Segments,
    out: &mut CpuTensor,
    os: Segments,
) -> Result<()> {
    crate::shapes::matmul_groups(w.shape(), x.dims(), xs, out.dims(), os)
        .map_err(|m| shape_err("matmul_groups", m))?;
    let k = kernel(w)?;
    let (n, groups) = (x.rows, w.mats);
    // Activation row (g, t) = x[t, segment g], stored group-major.
    let stride = convert(
        pool,
        k,
        groups * n,
        xs.len,
        |i| {
            let (g, t) = (i / n.max(1), i % n.max(1));
            let a = g * xs.stride + xs.offset;
            &x.row(t)[a..a + xs.len]
        },
        &mut buf.acts,
    )?;
    let acts = &buf.acts;
    let per = even_piece(w.rows, rows_per_task(pool, w.rows * groups, n));
    let pieces_per_group = w.rows / per;
    buf.acc.clear();
    buf.acc.resize(groups * w.rows * n, 0.0);
    pool.for_chunks(&mut buf.acc, per * n, |ci, o| {
        let (g, piece) = (ci / pieces_per_group, ci % pieces_per_group);
        let first = g * w.rows + piece * per;
        let a = &acts[g * n * stride..(g + 1) * n * stride];
        task_rows(k, w, first, a, n, stride, o)
    });
    // Into the token-major output, in parallel over runs of 16 tokens: each weight row's 16
    // values are one cache line of `acc`, and a task's 16 output rows stay in L1.
    let (cols, rows, acc) = (out.cols, w.rows, &buf.acc);
    if cols == 0 || n == 0 {
        return Ok(());
    }
    let work = |ci: usize, o: &mut [f32]| {
        let t0 = ci * 16;
        let tokens = o.len() / cols;
        for g in 0..groups {
            let b = g * os.stride + os.offset;
            for r in 0..rows {
                let src = &acc[(g * rows + r) * n + t0..][..tokens];
                for (j, &v) in src.iter().enumerate() {
                    o[j * cols + b + r] = v;
                }
            }
        }
    };
    let data = &mut out.data[..n * cols];
    if n * rows * groups >= 1 << 15 {
        pool.for_chunks(data, 16 * cols, work);
    } else {
        work(0, data);
    }
    Ok(())
}

fn check_job(job: &ExpertJob<'_, CpuWeight>, x: &CpuTensor, out: &CpuTensor) -> Result<()> {
    let (gate, up, down) = (job.gate, job.up, job.down);
    if job.out_rows.len() != job.x_rows.len()
        || gate.cols != x.cols
        || up.cols != x.cols
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
        .find(|&&r| r as usize >= x.rows)
        .or_else(|| job.out_rows.iter().find(|&&r| r as usize >= out.rows))
    {
        return Err(shape_err("moe_experts", format!("row {bad} out of range")));
    }
    Ok(())
}

/// Routed experts: every job's gate and up projections in one parallel region, SwiGLU, then
/// every job's down projection in a second region.
pub fn moe_experts(
    pool: &Pool,
    buf: &mut Buffers,
    jobs: &[ExpertJob<'_, CpuWeight>],
    x: &CpuTensor,
    out: &mut CpuTensor,
) -> Result<()> {
    let jobs: Vec<&ExpertJob<'_, CpuWeight>> =
        jobs.iter().filter(|j| !j.x_rows.is_empty()).collect();
    let Some(first) = jobs.first() else {
        return Ok(());
    };
    for job in &jobs {
        check_job(job, x, out)?;
        if job.gate.ty != first.gate.ty
            || job.up.ty != first.up.ty
            || job.down.ty != first.down.ty
            || job.gate.rows != first.gate.rows
        {
            return Err(shape_err(
                "moe_experts",
                "experts of one layer must share types and sizes".into(),
            ));
        }
    }
    let (kg, ku, kd) = (kernel(first.gate)?, kernel(first.up)?, kernel(first.down)?);
    let ff = first.gate.rows;
    let n_embd = out.cols;
    // Token offsets of each job in the stacked activation rows.
    buf.offsets.clear();
    let mut total = 0;
    for job in &jobs {
        buf.offsets.push(total);
        total += job.x_rows.len();
    }
    let offsets = &buf.offsets;
    let job_of = |i: usize| offsets.partition_point(|&o| o <= i) - 1;
    let token = |i: usize| {
        let j = job_of(i);
        x.row(jobs[j].x_rows[i - offsets[j]] as usize)
    };
    let stride = convert(pool, kg, total, x.cols, token, &mut buf.acts)?;
    // Gate and up usually share the activation format; convert again only if not.
    let stride_up = if ku.act == kg.act {
        stride
    } else {
        convert(pool, ku, total, x.cols, token, &mut buf.acts_up)?
    };

    // Gate and up: tasks (job, matrix, row piece); outputs [job][matrix][row][token].
    let per = even_piece(ff, rows_per_task(pool, ff * 2 * jobs.len(), total));
    buf.bounds.clear();
    buf.bounds.push(0);
    for job in &jobs {
        for _ in 0..2 * (ff / per) {
            let last = *buf.bounds.last().unwrap_or(&0);
            buf.bounds.push(last + per * job.x_rows.len());
        }
    }
    buf.acc.clear();
    buf.acc.resize(2 * ff * total, 0.0);
    let pieces = ff / per;
    let acts_gate = &buf.acts;
    let acts_up = if ku.act == kg.act {
        &buf.acts
    } else {
        &buf.acts_up
    };
    pool.for_ranges(&mut buf.acc, &buf.bounds, |i, o| {
        let (j, rest) = (i / (2 * pieces), i % (2 * pieces));
        let (m, piece) = (rest / pieces, rest % pieces);
        let job = jobs[j];
        let n = job.x_rows.len();
        let (w, k, acts, st) = if m == 0 {
            (job.gate, kg, acts_gate, stride)
        } else {
            (job.up, ku, acts_up, stride_up)
        };
        let a = &acts[offsets[j] * st..(offsets[j] + n) * st];
        task_rows(k, w, piece * per, a, n, st, o)
    });

    // SwiGLU into token-major rows, then convert for the down projection.
    buf.hidden.clear();
    buf.hidden.resize(total * ff, 0.0);
    for (j, job) in jobs.iter().enumerate() {
        let n = job.x_rows.len();
        let base = 2 * ff * offsets[j];
        let (g, u) = buf.acc[base..base + 2 * ff * n].split_at(ff * n);
        for t in 0..n {
            let h = &mut buf.hidden[(offsets[j] + t) * ff..(offsets[j] + t + 1) * ff];
            for r in 0..ff {
                let (gv, uv) = (g[r * n + t], u[r * n + t]);
                h[r] = uv * (gv / (1.0 + (-gv).exp()));
            }
        }
    }
    let hidden = &buf.hidden;
    let stride2 = convert(
        pool,
        kd,
        total,
        ff,
        |i| &hidden[i * ff..(i + 1) * ff],
        &mut buf.acts2,
    )?;

    // Down: tasks (job, row piece); outputs [job][row][token].
    let per = even_piece(n_embd, rows_per_task(pool, n_embd * jobs.len(), total));
    let pieces = n_embd / per;
    buf.bounds.clear();
    buf.bounds.push(0);
    for job in &jobs {
        for _ in 0..pieces {
            let last = *buf.bounds.last().unwrap_or(&0);
            buf.bounds.push(last + per * job.x_rows.len());
        }
    }
    buf.acc.clear();
    buf.acc.resize(n_embd * total, 0.0);
    let acts2 = &buf.acts2;
    pool.for_ranges(&mut buf.acc, &buf.bounds, |i, o| {
        let (j, piece) = (i / pieces, i % pieces);
        let job = jobs[j];
        let n = job.x_rows.len();
        let a = &acts2[offsets[j] * stride2..(offsets[j] + n) * stride2];
        task_rows(kd, job.down, piece * per, a, n, stride2, o)
    });
    for (j, job) in jobs.iter().enumerate() {
        let n = job.x_rows.len();
        let block = &buf.acc[n_embd * offsets[j]..n_embd * (offsets[j] + n)];
        for (r, col) in block.chunks_exact(n).enumerate() {
            for (t, &v) in col.iter().enumerate() {
                out.data[job.out_rows[t] as usize * n_embd + r] = v;
            }
        }
    }
    Ok(())
}
