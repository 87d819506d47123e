//! Weights on the GPU: repacked blocks split into power-of-two "parts".
//!
//! A weight's words (see `formats`) are laid out in one sequence cut into parts of
//! `1 << chunk_shift` words, each its own buffer, so no binding exceeds
//! `max_storage_buffer_binding_size` nor any buffer `max_buffer_size`. A kernel binds a window
//! of consecutive parts and maps word `i` of the window to part `i >> chunk_shift`. Views
//! (one expert's rows of a stacked expert tensor) share the parts and start at a word offset.

use crate::formats::GpuFormat;
use crate::gpu::Gpu;
use sluice_core::backend::WeightData;
use sluice_core::quant::GgmlType;
use sluice_core::{Error, Result};
use std::sync::Arc;

/// A weight matrix (or stack of `mats` matrices) on the GPU.
#[derive(Clone)]
pub struct GpuWeight {
    pub name: String,
    pub ty: GgmlType,
    pub cols: usize,
    pub rows: usize,
    pub mats: usize,
    pub format: &'static GpuFormat,
    /// Words per row.
    pub row_words: u64,
    pub parts: Arc<Vec<wgpu::Buffer>>,
    /// First word of this weight (or view) in the part sequence.
    pub base: u64,
}

/// A run of consecutive parts a dispatch binds, and where the weight rows start in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub first_part: usize,
    pub parts: usize,
    /// First bound word's index in the part sequence.
    pub origin: u64,
}

impl GpuWeight {
    /// Name and shape, for the shared shape rules.
    pub fn shape(&self) -> sluice_core::shapes::WeightShape<'_> {
        sluice_core::shapes::WeightShape {
            name: &self.name,
            mats: self.mats,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Total rows across matrices.
    pub fn total_rows(&self) -> usize {
        self.rows * self.mats
    }

    /// Parts holding words `from..to` (to > from) of the sequence.
    pub fn window_of(&self, from: u64, to: u64, chunk_shift: u32) -> Window {
        let first = (from >> chunk_shift) as usize;
        let last = ((to.max(from + 1) - 1) >> chunk_shift) as usize;
        Window {
            first_part: first,
            parts: last - first + 1,
            origin: (first as u64) << chunk_shift,
        }
    }

    /// The window holding rows `first..first + n` (counted across matrices).
    pub fn rows_window(&self, first: usize, n: usize, chunk_shift: u32) -> Window {
        let from = self.base + first as u64 * self.row_words;
        self.window_of(from, from + n as u64 * self.row_words, chunk_shift)
    }

    /// Splits rows `0..total` into runs whose windows bind at most `max_parts` parts:
    /// `(first_row, rows, window)`.
    pub fn row_runs(
        &self,
        total: usize,
        max_parts: usize,
        chunk_shift: u32,
    ) -> Result<Vec<(usize, usize, Window)>> {
        let mut runs = Vec::new();
        let mut r0 = 0;
        while r0 < total {
            let w0 = self.rows_window(r0, 1, chunk_shift);
            if w0.parts > max_parts {
                return Err(Error::Unsupported(format!(
                    "{}: one row spans {} buffers, more than the {max_parts} a kernel can bind",
                    self.name, w0.parts
                )));
            }
            // The largest run starting at r0 whose last row ends inside the allowed parts.
            let limit_word = ((w0.first_part + max_parts) as u64) << chunk_shift;
            let start_word = self.base + r0 as u64 * self.row_words;
            let fit = ((limit_word - start_word) / self.row_words) as usize;
            let n = fit.clamp(1, total - r0);
            runs.push((r0, n, self.rows_window(r0, n, chunk_shift)));
            r0 += n;
        }
        Ok(runs)
    }
}

/// Repacks `w` into parts of `1 << chunk_shift` words.
pub fn upload(gpu: &Gpu, w: WeightData, chunk_shift: u32) -> Result<GpuWeight> {
    let format = GpuFormat::of(w.ty).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: the GPU backend cannot compute with {} data",
            w.name, w.ty
        ))
    })?;
    let row_words = format.row_words(w.cols).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: {} columns of {} are not whole GPU blocks of {}",
            w.name,
            w.cols,
            w.ty,
            format.block_elems()
        ))
    })? as u64;
    let row_bytes = w.ty.row_bytes(w.cols as u64).ok_or_else(|| {
        Error::Unsupported(format!("{}: type {} with {} columns", w.name, w.ty, w.cols))
    })?;
    let total_rows = (w.rows * w.mats) as u64;
    let bytes = w.bytes.bytes();
    if w.bytes.len() != row_bytes * total_rows || bytes.len() as u64 != row_bytes * total_rows {
        return Err(Error::model(format!(
            "{}: {} bytes of data, {} expected",
            w.name,
            w.bytes.len(),
            row_bytes * total_rows
        )));
    }
    let total_words = row_words * total_rows;
    let chunk = 1u64 << chunk_shift;
    let n_parts = total_words.div_ceil(chunk).max(1);
    let src_block = format.src_block_bytes() as usize;
    let block_words = format.block_words() as usize;
    let n_blocks = bytes.len() / src_block;
    // Repack a bounded number of blocks at a time and stream the words into the parts.
    const BATCH_BLOCKS: usize = 1 << 14;
    let mut pending: Vec<u32> = Vec::new();
    let mut pending_at = 0usize;
    let mut next_block = 0usize;
    let mut parts = Vec::with_capacity(n_parts as usize);
    for p in 0..n_parts {
        let words = chunk.min(total_words - p * chunk);
        let buf = gpu.storage_with(&w.name, words * 4, |write| {
            let mut at = 0u64;
            while at < words {
                if pending_at == pending.len() {
                    let n = BATCH_BLOCKS.min(n_blocks - next_block);
                    if n == 0 {
                        break;
                    }
                    pending.resize(n * block_words, 0);
                    format.repack(
                        &bytes[next_block * src_block..(next_block + n) * src_block],
                        &mut pending,
                    );
                    next_block += n;
                    pending_at = 0;
                }
                let take = (words - at).min((pending.len() - pending_at) as u64) as usize;
                write(
                    (at * 4) as usize,
                    bytemuck::cast_slice(&pending[pending_at..pending_at + take]),
                );
                pending_at += take;
                at += take as u64;
            }
        })?;
        parts.push(buf);
    }
    Ok(GpuWeight {
        name: w.name,
        ty: w.ty,
        cols: w.cols,
        rows: w.rows,
        mats: w.mats,
        format,
        row_words,
        parts: Arc::new(parts),
        base: 0,
    })
}

/// The largest power-of-two part size (in words, as a shift) the device allows.
pub fn chunk_shift(limits: &wgpu::Limits) -> u32 {
    let bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        .max(1024);
    let words = bytes / 4;
    63 - words.leading_zeros()
}
