//! Dot products of plain float rows: F32·F32, F16·F16, BF16·BF16.
//!
//! Like ggml's scalar loops in `vec.cpp`, each product is formed in f32 from the widened
//! inputs and accumulated in f64; the result is rounded to f32 once. (The x86 build sums in
//! f32 SIMD lanes with FMA; the f64 sum here is at least as accurate.)

#![forbid(unsafe_code)]

use half::{bf16, f16};

pub(crate) fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(4).zip(a.chunks_exact(4)).take(n) {
        let x = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        let y = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        sum += (x * y) as f64;
    }
    sum as f32
}

pub(crate) fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(2).zip(a.chunks_exact(2)).take(n) {
        let x = f16::from_le_bytes([x[0], x[1]]).to_f32();
        let y = f16::from_le_bytes([y[0], y[1]]).to_f32();
        sum += (x * y) as f64;
    }
    sum as f32
}

pub(crate) fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(2).zip(a.chunks_exact(2)).take(n) {
        let x = bf16::from_le_bytes([x[0], x[1]]).to_f32();
        let y = bf16::from_le_bytes([y[0], y[1]]).to_f32();
        sum += (x * y) as f64;
    }
    sum as f32
}
