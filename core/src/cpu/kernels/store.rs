//! Storage conversion of KV-cache rows: f32 → F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
//! IQ4_NL, exactly as ggml's CPU `from_float` (used by `set_rows` / `cpy` into the cache).
//!
//! F32/F16/BF16 and Q8_0 share the activation converters (Q8_0's `from_float` on x86 is the AVX
//! quantizer). The others are ggml's reference quantizers, which the CPU backend calls as they
//! are:
//!
//! * Q4_0 / Q5_0: `max` = first value of largest magnitude, `d = max / −8` (−16),
//!   `id = 1/d`, `q = min(15, trunc(x·id + 8.5))` (31, +16.5); `d` stored as f16.
//! * Q4_1 / Q5_1: `d = (max − min) / 15` (31), `q = trunc((x − min)·id + 0.5)` (Q4_1 clamps
//!   to 15); `d` and `min` stored as f16.
//! * IQ4_NL (`quantize_row_iq4_nl_ref`): weights `x²`, first guess `d = max / −127`, codes by
//!   nearest codebook value, then the least-squares scale `Σw·q·x / Σw·q²`; no scale search.

#![forbid(unsafe_code)]

use super::act;
use super::check_len;
use crate::quant::grids::KVALUES_IQ4NL;
use crate::quant::GgmlType;
use crate::{Error, Result};
use half::f16;

/// Converts the f32 row `x` to KV-cache storage type `ty`, writing `ty`'s row bytes into `out`.
pub fn quantize_row(ty: GgmlType, x: &[f32], out: &mut [u8]) -> Result<()> {
    let convert: fn(&[f32], &mut [u8]) = match ty {
        GgmlType::F32 => act::to_f32,
        GgmlType::F16 => act::to_f16,
        GgmlType::BF16 => act::to_bf16,
        GgmlType::Q8_0 => act::q8_0,
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::IQ4_NL => iq4_nl,
        _ => {
            return Err(Error::Invalid(format!(
                "{ty} is not a KV-cache type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL)"
            )))
        }
    };
    check_len(ty, x.len(), out.len(), "quantized row")?;
    convert(x, out);
    Ok(())
}

/// The first value of largest magnitude (0 for an all-zero block).
fn signed_max(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// Packs 32 codes: element j in the low nibble of byte j, j + 16 in the high nibble.
fn pack_nibbles(q: &[u8; 32], out: &mut [u8]) {
    for j in 0..16 {
        out[j] = (q[j] & 15) | (q[j + 16] & 15) << 4;
    }
}

/// Fifth bits of 32 codes as the little-endian u32 `qh`.
fn pack_fifth_bits(q: &[u8; 32], out: &mut [u8]) {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |h, (j, &q)| h | (((q as u32 >> 4) & 1) << j));
    out.copy_from_slice(&qh.to_le_bytes());
}

fn q4_0(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(18)) {
        let d = signed_max(x) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, 0, d);
        let mut q = [0u8; 32];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v * id + 8.5) as i8).min(15) as u8;
        }
        pack_nibbles(&q, &mut b[2..18]);
    }
}

fn q4_1(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(20)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, 0, d);
        put_f16(b, 2, min);
        let mut q = [0u8; 32];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (((v - min) * id + 0.5) as i8).min(15) as u8;
        }
        pack_nibbles(&q, &mut b[4..20]);
    }
}

fn q5_0(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(22)) {
        let d = signed_max(x) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, 0, d);
        let mut q = [0u8; 32];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v * id + 16.5) as i8).min(31) as u8;
        }
        pack_fifth_bits(&q, &mut b[2..6]);
        pack_nibbles(&q, &mut b[6..22]);
    }
}

fn q5_1(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(24)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, 0, d);
        put_f16(b, 2, min);
        let mut q = [0u8; 32];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v - min) * id + 0.5) as u8;
        }
        pack_fifth_bits(&q, &mut b[4..8]);
        pack_nibbles(&q, &mut b[8..24]);
    }
}

/// Index of the codebook value nearest to `x` (ties to the upper one), by ggml's bisection.
fn best_index_iq4nl(x: f32) -> u8 {
    let val = &KVALUES_IQ4NL;
    if x <= val[0] as f32 {
        return 0;
    }
    if x >= val[15] as f32 {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < val[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (val[mu - 1] as f32) < val[mu] as f32 - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// Below this largest magnitude ggml treats an IQ4_NL block as zero.
const GROUP_MAX_EPS: f32 = 1e-15;

fn iq4_nl(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(18)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut q = [0u8; 32];
        let mut d = 0.0f32;
        if amax >= GROUP_MAX_EPS {
            let id = 1.0 / (max / KVALUES_IQ4NL[0] as f32);
            let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
            for (q, &v) in q.iter_mut().zip(x) {
                *q = best_index_iq4nl(id * v);
                let qv = KVALUES_IQ4NL[*q as usize] as f32;
                let w = v * v;
                sumqx += w * qv * v;
                sumq2 += w * qv * qv;
            }
            d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        }
        // ggml leaves the codes of a (near-)zero block unset; they decode to 0 either way.
        put_f16(b, 0, d);
        pack_nibbles(&q, &mut b[2..18]);
    }
}
