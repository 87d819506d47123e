//! simd128 dot products of the 32-element-block formats with Q8_0 / Q8_1 activations: Q8_0,
//! Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL.
//!
//! Per block: the weight codes become two vectors of 16 signed bytes (their true values, so no
//! offset correction is needed), the exact integer dot with the activation codes lands in four
//! i32 lanes ([`dot16`]), and `d_w·d_a` times those lanes (converted to f32) is added to four
//! f32 lane sums; the lanes are added at the end of the row. Q4_1 / Q5_1 add their `m_w·s_a`
//! terms to a scalar sum beside the lanes. Each kernel takes `N` activation rows and decodes
//! every weight block once for all of them.

use super::util::*;
use crate::quant::grids::KVALUES_IQ4NL;
use core::arch::wasm32::*;

const Q8_0: usize = 34;
const Q8_1: usize = 36;

/// The shared body of the formats whose activation is Q8_0: `decode(x)` → (codes, weight
/// scale) of the block at `x`.
#[inline(always)]
unsafe fn signed_blocks<const N: usize>(
    nb: usize,
    w: *const u8,
    block: usize,
    y: [*const u8; N],
    decode: impl Fn(*const u8) -> ([v128; 2], f32),
) -> [f32; N] {
    let ones = i16x8_splat(1);
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let (codes, dw) = decode(w.add(b * block));
        for j in 0..N {
            let yb = y[j].add(b * Q8_0);
            let ints = dot32(&codes, yb.add(2), ones, ones);
            acc[j] = add_scaled(acc[j], dw * rd_f16(yb), ints);
        }
    }
    acc.map(hsum)
}

pub(super) unsafe fn q8_0<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    signed_blocks(nb, w, 34, y, |x| ([ld(x.add(2)), ld(x.add(18))], rd_f16(x)))
}

pub(super) unsafe fn q4_0<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let eight = i8x16_splat(8);
    signed_blocks(nb, w, 18, y, |x| {
        let u = nibbles(x.add(2));
        ([i8x16_sub(u[0], eight), i8x16_sub(u[1], eight)], rd_f16(x))
    })
}

pub(super) unsafe fn iq4_nl<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let table = ld(KVALUES_IQ4NL.as_ptr() as *const u8);
    signed_blocks(nb, w, 18, y, |x| {
        let u = nibbles(x.add(2));
        let codes = [i8x16_swizzle(table, u[0]), i8x16_swizzle(table, u[1])];
        (codes, rd_f16(x))
    })
}

/// The 32 five-bit codes of a Q5 block: nibbles at `qs` with bit j of `qh` as the fifth bit of
/// element j.
#[inline(always)]
unsafe fn q5_codes(qh: u32, qs: *const u8) -> [v128; 2] {
    let u = nibbles(qs);
    let high = bit_masks(qh);
    let sixteen = u8x16_splat(16);
    [
        v128_or(u[0], v128_and(high[0], sixteen)),
        v128_or(u[1], v128_and(high[1], sixteen)),
    ]
}

pub(super) unsafe fn q5_0<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let sixteen = i8x16_splat(16);
    signed_blocks(nb, w, 22, y, |x| {
        let u = q5_codes(rd_u32(x.add(2)), x.add(6));
        (
            [i8x16_sub(u[0], sixteen), i8x16_sub(u[1], sixteen)],
            rd_f16(x),
        )
    })
}

/// Q4_1 / Q5_1 with Q8_1 activations: codes ≥ 0, `Σ (d_w·d_a)·Σu·q + m_w·s_a`.
#[inline(always)]
unsafe fn unsigned_blocks<const N: usize>(
    nb: usize,
    w: *const u8,
    block: usize,
    y: [*const u8; N],
    decode: impl Fn(*const u8) -> [v128; 2],
) -> [f32; N] {
    let ones = i16x8_splat(1);
    let mut acc = [f32x4_splat(0.0); N];
    let mut mins = [0.0f32; N];
    for b in 0..nb {
        let x = w.add(b * block);
        let codes = decode(x);
        let (dw, mw) = (rd_f16(x), rd_f16(x.add(2)));
        for j in 0..N {
            let yb = y[j].add(b * Q8_1);
            let ints = dot32(&codes, yb.add(4), ones, ones);
            acc[j] = add_scaled(acc[j], dw * rd_f16(yb), ints);
            mins[j] += mw * rd_f16(yb.add(2));
        }
    }
    let mut out = [0.0f32; N];
    for j in 0..N {
        out[j] = hsum(acc[j]) + mins[j];
    }
    out
}

pub(super) unsafe fn q4_1<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    unsigned_blocks(nb, w, 20, y, |x| nibbles(x.add(4)))
}

pub(super) unsafe fn q5_1<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    unsigned_blocks(nb, w, 24, y, |x| q5_codes(rd_u32(x.add(4)), x.add(8)))
}
