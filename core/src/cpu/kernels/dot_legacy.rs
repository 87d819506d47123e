//! Dot products of the 32-element-block formats (and Q1_0, Q2_0, NVFP4, whose blocks span
//! several Q8_0 blocks) with Q8_0 / Q8_1 activations.
//!
//! Structure of ggml's `ggml_vec_dot_*_q8_0_generic` / `_q8_1_generic`: an exact integer sum
//! per block, then one float term per block added to a running f32 sum, with the float
//! factors multiplied in ggml's order (noted per function).

#![forbid(unsafe_code)]

use crate::quant::bytes::{f16_at, u32_at};
use crate::quant::fp4::{e8m0_half, ue4m3_half};
use crate::quant::grids::{KVALUES_FP4, KVALUES_IQ4NL};
use crate::quant::legacy::q5_codes;
use crate::quant::ternary::q2_0_value;

/// A Q8_0 activation block: scale and 32 codes.
#[inline(always)]
fn q8(a: &[u8]) -> (f32, &[u8]) {
    (f16_at(a, 0), &a[2..34])
}

#[inline(always)]
fn i8v(b: u8) -> i32 {
    b as i8 as i32
}

/// Σ over a block of 32 nibble-coded weights (low nibbles = first 16) times Q8 codes, with the
/// nibble mapped through `value`.
#[inline(always)]
fn nibble_sum(qs: &[u8], q8: &[u8], value: impl Fn(u8) -> i32) -> i32 {
    let (mut lo, mut hi) = (0i32, 0i32);
    for j in 0..16 {
        lo += value(qs[j] & 15) * i8v(q8[j]);
        hi += value(qs[j] >> 4) * i8v(q8[j + 16]);
    }
    lo + hi
}

/// Q4_0 · Q8_0: `sumf += sumi·xd·yd` (left to right).
pub(crate) fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(18).zip(a.chunks_exact(34)).take(n / 32) {
        let (yd, yq) = q8(y);
        let sumi = nibble_sum(&x[2..18], yq, |q| q as i32 - 8);
        sumf += sumi as f32 * f16_at(x, 0) * yd;
    }
    sumf
}

/// Q4_1 · Q8_1: `sumf += (xd·yd)·sumi + xm·ys`.
pub(crate) fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(20).zip(a.chunks_exact(36)).take(n / 32) {
        let sumi = nibble_sum(&x[4..20], &y[4..36], |q| q as i32);
        sumf += (f16_at(x, 0) * f16_at(y, 0)) * sumi as f32 + f16_at(x, 2) * f16_at(y, 2);
    }
    sumf
}

fn q5_sum(codes: &[u8; 32], q8: &[u8], offset: i32) -> i32 {
    let (mut lo, mut hi) = (0i32, 0i32);
    for j in 0..16 {
        lo += (codes[j] as i32 - offset) * i8v(q8[j]);
        hi += (codes[j + 16] as i32 - offset) * i8v(q8[j + 16]);
    }
    lo + hi
}

/// Q5_0 · Q8_0: `sumf += (xd·yd)·sumi`.
pub(crate) fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(22).zip(a.chunks_exact(34)).take(n / 32) {
        let (yd, yq) = q8(y);
        let codes = q5_codes(u32_at(x, 2), &x[6..22]);
        sumf += (f16_at(x, 0) * yd) * q5_sum(&codes, yq, 16) as f32;
    }
    sumf
}

/// Q5_1 · Q8_1: `sumf += (xd·yd)·sumi + xm·ys`.
pub(crate) fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(24).zip(a.chunks_exact(36)).take(n / 32) {
        let codes = q5_codes(u32_at(x, 4), &x[8..24]);
        let sumi = q5_sum(&codes, &y[4..36], 0);
        sumf += (f16_at(x, 0) * f16_at(y, 0)) * sumi as f32 + f16_at(x, 2) * f16_at(y, 2);
    }
    sumf
}

/// Q8_0 · Q8_0: `sumf += sumi·(xd·yd)`.
pub(crate) fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(34).zip(a.chunks_exact(34)).take(n / 32) {
        let (yd, yq) = q8(y);
        let sumi: i32 = x[2..34]
            .iter()
            .zip(yq)
            .map(|(&a, &b)| i8v(a) * i8v(b))
            .sum();
        sumf += sumi as f32 * (f16_at(x, 0) * yd);
    }
    sumf
}

/// IQ4_NL · Q8_0: `d = yd·xd`, `sumf += d·sumi`.
pub(crate) fn dot_iq4_nl(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(18).zip(a.chunks_exact(34)).take(n / 32) {
        let (yd, yq) = q8(y);
        let sumi = nibble_sum(&x[2..18], yq, |q| KVALUES_IQ4NL[q as usize] as i32);
        sumf += (yd * f16_at(x, 0)) * sumi as f32;
    }
    sumf
}

/// MXFP4 · Q8_0: `d = yd·e8m0_half(e)`, `sumf += d·sumi`.
pub(crate) fn dot_mxfp4(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(17).zip(a.chunks_exact(34)).take(n / 32) {
        let (yd, yq) = q8(y);
        let sumi = nibble_sum(&x[1..17], yq, |q| KVALUES_FP4[q as usize] as i32);
        sumf += (yd * e8m0_half(x[0])) * sumi as f32;
    }
    sumf
}

/// NVFP4 · Q8_0 (one weight block = 4 scaled sub-blocks of 16 = 2 Q8_0 blocks):
/// `sumf += dy·d·sumi` per sub-block.
pub(crate) fn dot_nvfp4(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(36).zip(a.chunks_exact(68)).take(n / 64) {
        for s in 0..4 {
            let d = ue4m3_half(x[s]);
            let (dy, yq) = q8(&y[34 * (s / 2)..34 * (s / 2) + 34]);
            let yq = &yq[16 * (s % 2)..16 * (s % 2) + 16];
            let q = &x[4 + 8 * s..12 + 8 * s];
            let (mut lo, mut hi) = (0i32, 0i32);
            for j in 0..8 {
                lo += i8v(yq[j]) * KVALUES_FP4[(q[j] & 15) as usize] as i32;
                hi += i8v(yq[j + 8]) * KVALUES_FP4[(q[j] >> 4) as usize] as i32;
            }
            sumf += dy * d * (lo + hi) as f32;
        }
    }
    sumf
}

/// Q1_0 · Q8_0 (one weight block = 4 Q8_0 blocks): per Q8 block `sumi += y.d·Σ±q`, then
/// `sumf += xd·sumi`.
pub(crate) fn dot_q1_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(18).zip(a.chunks_exact(4 * 34)).take(n / 128) {
        let mut sumi = 0.0f32;
        for (k, yb) in y.chunks_exact(34).enumerate() {
            let (yd, yq) = q8(yb);
            let bits = &x[2 + 4 * k..6 + 4 * k];
            let mut block = 0i32;
            for (j, &q) in yq.iter().enumerate() {
                let q = i8v(q);
                block += if (bits[j / 8] >> (j % 8)) & 1 != 0 {
                    q
                } else {
                    -q
                };
            }
            sumi += yd * block as f32;
        }
        sumf += f16_at(x, 0) * sumi;
    }
    sumf
}

/// Q2_0 · Q8_0 (one weight block = 2 Q8_0 blocks): as Q1_0 with 2-bit values −1..+2.
pub(crate) fn dot_q2_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(18).zip(a.chunks_exact(2 * 34)).take(n / 64) {
        let mut sumi = 0.0f32;
        for (k, yb) in y.chunks_exact(34).enumerate() {
            let (yd, yq) = q8(yb);
            let qs = &x[2 + 8 * k..10 + 8 * k];
            let block: i32 = (0..32).map(|j| q2_0_value(qs, j) * i8v(yq[j])).sum();
            sumi += yd * block as f32;
        }
        sumf += f16_at(x, 0) * sumi;
    }
    sumf
}
