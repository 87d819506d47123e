//! Small simd128 building blocks shared by the wasm kernels: unaligned loads through raw
//! pointers, the scaled signed-byte dot product, nibble and bit unpacking, lane sums.
//!
//! simd128 has no unsigned×signed byte multiply like x86's `maddubs`, but it has something
//! better for these formats: `i16x8_extmul_*_i8x16` multiplies signed bytes into exact i16
//! products (|w·q| ≤ 128² fits), and `i32x4_dot_i16x8` multiplies those by i16 scales and adds
//! pairs in i32. So weight codes are decoded straight to their signed values (no offsets to
//! remove afterwards) and a group's integer scale is applied inside the same instruction.
//!
//! The loaders are `unsafe`: callers guarantee that each pointer is valid for the bytes read.
//! wasm loads have no alignment requirement.

pub(super) use super::super::raw::{f16_to_f32, rd_f32, rd_u16, rd_u32, rd_u64};
use core::arch::wasm32::*;

#[inline(always)]
pub(super) unsafe fn ld(p: *const u8) -> v128 {
    v128_load(p as *const v128)
}

/// The f16 at `p`, widened to f32 (exact).
#[inline(always)]
pub(super) unsafe fn rd_f16(p: *const u8) -> f32 {
    f16_to_f32(rd_u16(p))
}

/// `Σ scale·w·q` of 16 signed weight bytes `w` and activation bytes `q`, in four i32 lanes
/// (lane l holds the elements 2l, 2l+1, 2l+8, 2l+9), with `scale` an i16 vector (one value
/// splatted, or per-pair values).
#[inline(always)]
pub(super) fn dot16(w: v128, q: v128, scale: v128) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extmul_low_i8x16(w, q), scale);
    let hi = i32x4_dot_i16x8(i16x8_extmul_high_i8x16(w, q), scale);
    i32x4_add(lo, hi)
}

/// [`dot16`] over 32 elements: codes `c`, activation bytes at `q`, the scale `s0` for the first
/// 16 and `s1` for the last 16.
#[inline(always)]
pub(super) unsafe fn dot32(c: &[v128; 2], q: *const u8, s0: v128, s1: v128) -> v128 {
    i32x4_add(dot16(c[0], ld(q), s0), dot16(c[1], ld(q.add(16)), s1))
}

/// `acc + d·ints` (ints converted to f32 exactly while they stay below 2²⁴).
#[inline(always)]
pub(super) fn add_scaled(acc: v128, d: f32, ints: v128) -> v128 {
    f32x4_add(acc, f32x4_mul(f32x4_splat(d), f32x4_convert_i32x4(ints)))
}

/// Σ of the four f32 lanes, pairwise: (l0 + l2) + (l1 + l3).
#[inline(always)]
pub(super) fn hsum(v: v128) -> f32 {
    let s = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s)
}

/// 16 packed nibbles at `p` → [low nibbles, high nibbles] (elements 0..16 and 16..32).
#[inline(always)]
pub(super) unsafe fn nibbles(p: *const u8) -> [v128; 2] {
    let q = ld(p);
    [v128_and(q, u8x16_splat(0x0f)), u8x16_shr(q, 4)]
}

/// Byte masks from 32 bits: byte j of the pair is 0xff where bit j of `bits` is set, else 0.
#[inline(always)]
pub(super) fn bit_masks(bits: u32) -> [v128; 2] {
    let v = u32x4_splat(bits);
    // Byte k of `bits` copied to lanes 8k..8k+8, then each lane tests its own bit.
    let lo = i8x16_shuffle::<0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1>(v, v);
    let hi = i8x16_shuffle::<2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3>(v, v);
    let sel = u64x2_splat(0x8040_2010_0804_0201);
    [
        i8x16_eq(v128_and(lo, sel), sel),
        i8x16_eq(v128_and(hi, sel), sel),
    ]
}

/// `v` negated in the bytes where `mask` is 0xff: `(v ^ m) − m`.
#[inline(always)]
pub(super) fn negate_where(v: v128, mask: v128) -> v128 {
    i8x16_sub(v128_xor(v, mask), mask)
}

/// Four 8-byte grid entries (little-endian u64s) → two vectors of 16 bytes.
#[inline(always)]
pub(super) fn grid8x4(g: [u64; 4]) -> [v128; 2] {
    [u64x2(g[0], g[1]), u64x2(g[2], g[3])]
}

/// Eight 4-byte grid entries (little-endian u32s) → two vectors of 16 bytes.
#[inline(always)]
pub(super) fn grid4x8(g: [u32; 8]) -> [v128; 2] {
    [u32x4(g[0], g[1], g[2], g[3]), u32x4(g[4], g[5], g[6], g[7])]
}

/// Signed grid magnitudes: `mags` with the bytes whose bit is set in `signs` negated.
#[inline(always)]
pub(super) fn apply_signs(mags: [v128; 2], signs: u32) -> [v128; 2] {
    let m = bit_masks(signs);
    [negate_where(mags[0], m[0]), negate_where(mags[1], m[1])]
}
