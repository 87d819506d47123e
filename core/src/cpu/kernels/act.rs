//! Activation formats: converting an f32 row to what a dot kernel multiplies with.
//!
//! These decide the integer codes every later sum is built from, so they reproduce the x86
//! build of ggml-cpu exactly (`from_float` of `type_traits_cpu`):
//!
//! * **Q8_0** (`quantize_row_q8_0`, AVX path): per 32 values `amax = max|x|`,
//!   `d = amax / 127` stored as f16, `id = 127 / amax` (0 if amax = 0), `q = round(x·id)` with
//!   round-half-to-even (`_mm256_round_ps(_MM_ROUND_NEAREST)`), saturated to i8.
//! * **Q8_1** (`quantize_row_q8_1`, AVX path): as Q8_0, plus `s = f16(d · Σq)` with the f32 `d`.
//! * **Q8_K** (`quantize_row_q8_K` = `quantize_row_q8_K_ref` on x86): per 256 values take the
//!   first element of largest magnitude `max`; if it is 0 the block is all zero; otherwise
//!   `iscale = −127 / max`, `q = min(127, nearest_int(iscale·x))` (round-half-to-even via the
//!   1.5·2²³ trick), `d = 1 / iscale` stored as f32, `bsums[j] = Σ q[16j..16j+16]`.
//! * **F16**: round to nearest even (F16C `vcvtps2ph`); **BF16**: ggml's scalar
//!   round-to-nearest-even with NaN forced quiet; **F32**: a copy.
//!
//! Only finite inputs are mirrored: for NaN the SIMD instructions and Rust's saturating casts
//! may pick different codes.

#![forbid(unsafe_code)]

use super::check_len;
use crate::quant::GgmlType;
use crate::{Error, Result};
use half::f16;

/// Converts the f32 row `x` to activation format `act` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32),
/// writing `act`'s row bytes for `x.len()` elements into `out`. Uses the active ISA's
/// converter where it has one (same bytes as the scalar one).
pub fn quantize_activation(act: GgmlType, x: &[f32], out: &mut [u8]) -> Result<()> {
    quantize_activation_isa(super::active_isa(), act, x, out)
}

/// [`quantize_activation`] with the portable converters only (the reference).
pub fn quantize_activation_scalar(act: GgmlType, x: &[f32], out: &mut [u8]) -> Result<()> {
    quantize_activation_isa(super::Isa::Scalar, act, x, out)
}

pub(crate) fn quantize_activation_isa(
    isa: super::Isa,
    act: GgmlType,
    x: &[f32],
    out: &mut [u8],
) -> Result<()> {
    let convert: fn(&[f32], &mut [u8]) = match act {
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q8_1 => q8_1,
        GgmlType::Q8_K => q8_k,
        GgmlType::F16 => to_f16,
        GgmlType::BF16 => to_bf16,
        GgmlType::F32 => to_f32,
        _ => {
            return Err(Error::Invalid(format!(
                "{act} is not an activation format (Q8_0, Q8_1, Q8_K, F16, BF16, F32)"
            )))
        }
    };
    check_len(act, x.len(), out.len(), "activation output")?;
    #[cfg(target_arch = "x86_64")]
    if isa.is_x86() && super::x86::quantize(act, x, out) {
        return Ok(());
    }
    let _ = isa;
    convert(x, out);
    Ok(())
}

/// The scale and codes of one 32-value block, as the AVX `quantize_row_q8_0/1` computes them.
#[inline(always)]
fn q8_block(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; 32];
    for (q, &v) in q.iter_mut().zip(x) {
        // `as i8` saturates like the packs instructions; the value is already integral.
        *q = (v * id).round_ties_even() as i8;
    }
    (d, q)
}

pub(crate) fn q8_0(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(34)) {
        let (d, q) = q8_block(x);
        b[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        for (o, q) in b[2..34].iter_mut().zip(q) {
            *o = q as u8;
        }
    }
}

pub(crate) fn q8_1(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(36)) {
        let (d, q) = q8_block(x);
        let sum: i32 = q.iter().map(|&q| q as i32).sum();
        b[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(d * sum as f32).to_le_bytes());
        for (o, q) in b[4..36].iter_mut().zip(q) {
            *o = q as u8;
        }
    }
}

/// ggml's `nearest_int`: adding 1.5·2²³ rounds to an integer (half to even) in the mantissa.
/// Exact for |v| ≤ 2²², like the C original (larger inputs give the same garbage as C).
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0).to_bits() as i32;
    (bits & 0x007f_ffff).wrapping_sub(0x0040_0000)
}

pub(crate) fn q8_k(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let mut q = [0i8; 256];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        for (o, &q) in b[4..260].iter_mut().zip(q.iter()) {
            *o = q as u8;
        }
        for (j, group) in q.chunks_exact(16).enumerate() {
            let sum: i32 = group.iter().map(|&q| q as i32).sum();
            b[260 + 2 * j..262 + 2 * j].copy_from_slice(&(sum as i16).to_le_bytes());
        }
    }
}

pub(crate) fn to_f16(x: &[f32], out: &mut [u8]) {
    for (&v, o) in x.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f16::from_f32(v).to_le_bytes());
    }
}

/// ggml's `ggml_compute_fp32_to_bf16`.
#[inline(always)]
pub(crate) fn f32_to_bf16_bits(v: f32) -> u16 {
    let u = v.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

pub(crate) fn to_bf16(x: &[f32], out: &mut [u8]) {
    for (&v, o) in x.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16_bits(v).to_le_bytes());
    }
}

pub(crate) fn to_f32(x: &[f32], out: &mut [u8]) {
    for (&v, o) in x.iter().zip(out.chunks_exact_mut(4)) {
        o.copy_from_slice(&v.to_le_bytes());
    }
}
