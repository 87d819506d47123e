//! Little-endian field readers for block decoders.
//!
//! Block decoders index fixed-size chunks produced by `chunks_exact`, so every offset they pass
//! here is in bounds by construction.

use half::f16;

/// The IEEE binary16 at `at`, widened to f32 (exact).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16_at(b, at)).to_f32()
}

#[inline(always)]
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(crate) fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_bits(u32_at(b, at))
}

#[inline(always)]
pub(crate) fn i16_at(b: &[u8], at: usize) -> i16 {
    u16_at(b, at) as i16
}
