//! Plain-array types: F32, F16, BF16, and the integer / F64 types widened to f32.
//!
//! F16 and BF16 widen exactly. ggml itself has no conversion for I8, I16, I32, I64 and F64 (they
//! never hold weights); sluice converts them with Rust's `as f32`, which rounds to nearest-even
//! like a C cast, so metadata-like tensors can still be inspected.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

pub(crate) fn dequant_f32(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(4).zip(out.iter_mut()) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub(crate) fn dequant_f16(blocks: &[u8], out: &mut [f32]) {
    // Whole slices convert with the CPU's f16 instructions where it has them (the KV cache and
    // F16 weights go through here); a value at a time costs a call each.
    let n = (blocks.len() / 2).min(out.len());
    if cfg!(target_endian = "little") {
        if let Ok(h) = bytemuck::try_cast_slice::<u8, f16>(&blocks[..2 * n]) {
            h.convert_to_f32_slice(&mut out[..n]);
            return;
        }
    }
    for (b, y) in blocks.chunks_exact(2).zip(out.iter_mut()) {
        *y = f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

pub(crate) fn dequant_bf16(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(2).zip(out.iter_mut()) {
        *y = bf16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

pub(crate) fn dequant_i8(blocks: &[u8], out: &mut [f32]) {
    for (&b, y) in blocks.iter().zip(out.iter_mut()) {
        *y = b as i8 as f32;
    }
}

pub(crate) fn dequant_i16(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(2).zip(out.iter_mut()) {
        *y = i16::from_le_bytes([b[0], b[1]]) as f32;
    }
}

pub(crate) fn dequant_i32(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(4).zip(out.iter_mut()) {
        *y = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32;
    }
}

pub(crate) fn dequant_i64(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(8).zip(out.iter_mut()) {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        *y = i64::from_le_bytes(w) as f32;
    }
}

pub(crate) fn dequant_f64(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(8).zip(out.iter_mut()) {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        *y = f64::from_le_bytes(w) as f32;
    }
}
