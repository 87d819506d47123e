//! simd128 dot products of the grid i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S,
//! IQ1_M) with Q8_K activations.
//!
//! Per 32-element sub-block the grid entries are gathered into two vectors of magnitudes and
//! the sign bits (from the ksigns table or stored explicitly) negate the weight bytes, once per
//! block for all activation rows; [`dot32`] then multiplies with the activation codes and the
//! integer sub-block scale (`2s + 1`), so the super-block sum is an exact integer as in the
//! scalar kernels. Per super-block and activation row one `d·d_a` times the i32 lanes is added to
//! four f32 lane sums; the format's constant factor (1/8, 1/4) is applied to the row sum.
//!
//! IQ1_S / IQ1_M carry a ±1/8 offset per group: their codes become `8·grid + δ` (within −9..9),
//! so the offset is part of the exact integer sum, which is scaled by `d·d_a/8`.

use super::util::*;
use crate::quant::grids::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
};
use core::arch::wasm32::*;

const Q8K: usize = 292;

#[inline(always)]
fn g8(e: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*e)
}

#[inline(always)]
fn g4(e: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*e)
}

/// The 32 sign bits of a sub-block from four 7-bit ksigns indices at bits 0, 7, 14, 21.
#[inline(always)]
fn ksigns_x4(aux: u32) -> u32 {
    let s = |g: u32| KSIGNS_IQ2XS[((aux >> (7 * g)) & 127) as usize] as u32;
    s(0) | s(1) << 8 | s(2) << 16 | s(3) << 24
}

/// The row loop shared by all formats: `sub(x, ib)` decodes sub-block `ib` of the block at `x`
/// to (signed codes, scale of the first 16, scale of the last 16); `factor(x)` is the block's
/// float scale (f16 `d` times the format's constant where it is per block).
#[inline(always)]
unsafe fn grid_blocks<const N: usize>(
    nb: usize,
    w: *const u8,
    size: usize,
    y: [*const u8; N],
    sub: impl Fn(*const u8, usize) -> ([v128; 2], i16, i16),
    factor: impl Fn(*const u8) -> f32,
) -> [f32; N] {
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let x = w.add(b * size);
        let mut ints = [i32x4_splat(0); N];
        for ib in 0..8 {
            let (codes, s0, s1) = sub(x, ib);
            let (s0, s1) = (i16x8_splat(s0), i16x8_splat(s1));
            for j in 0..N {
                let q = y[j].add(b * Q8K + 4 + 32 * ib);
                ints[j] = i32x4_add(ints[j], dot32(&codes, q, s0, s1));
            }
        }
        let d = factor(x);
        for j in 0..N {
            let yd = rd_f32(y[j].add(b * Q8K));
            acc[j] = add_scaled(acc[j], d * yd, ints[j]);
        }
    }
    acc.map(hsum)
}

pub(super) unsafe fn iq2_xxs<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let sums = grid_blocks(
        nb,
        w,
        66,
        y,
        |x, ib| {
            let idx = rd_u32(x.add(2 + 8 * ib));
            let aux = rd_u32(x.add(6 + 8 * ib));
            let e = |g: u32| g8(&IQ2XXS_GRID[((idx >> (8 * g)) & 255) as usize]);
            let codes = apply_signs(grid8x4([e(0), e(1), e(2), e(3)]), ksigns_x4(aux));
            let ls = 2 * (aux >> 28) as i16 + 1;
            (codes, ls, ls)
        },
        |x| rd_f16(x),
    );
    sums.map(|s| 0.125 * s)
}

pub(super) unsafe fn iq2_xs<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let sums = grid_blocks(
        nb,
        w,
        74,
        y,
        |x, ib| {
            let q = rd_u64(x.add(2 + 8 * ib));
            let e = |g: u32| (q >> (16 * g)) as u32 & 0xffff;
            let mags = grid8x4([0, 1, 2, 3].map(|g| g8(&IQ2XS_GRID[(e(g) & 511) as usize])));
            let signs =
                [0, 1, 2, 3].map(|g| (KSIGNS_IQ2XS[(e(g) >> 9) as usize] as u32) << (8 * g));
            let codes = apply_signs(mags, signs[0] | signs[1] | signs[2] | signs[3]);
            let sc = *x.add(66 + ib);
            (codes, 2 * (sc & 15) as i16 + 1, 2 * (sc >> 4) as i16 + 1)
        },
        |x| rd_f16(x),
    );
    sums.map(|s| 0.125 * s)
}

pub(super) unsafe fn iq2_s<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let sums = grid_blocks(
        nb,
        w,
        82,
        y,
        |x, ib| {
            let qs = rd_u32(x.add(2 + 4 * ib));
            let qh = *x.add(66 + ib) as u32;
            let idx = |g: u32| (((qs >> (8 * g)) & 255) | ((qh >> (2 * g)) & 3) << 8) as usize;
            let mags = grid8x4([0, 1, 2, 3].map(|g| g8(&IQ2S_GRID[idx(g)])));
            let codes = apply_signs(mags, rd_u32(x.add(34 + 4 * ib)));
            let sc = *x.add(74 + ib);
            (codes, 2 * (sc & 15) as i16 + 1, 2 * (sc >> 4) as i16 + 1)
        },
        |x| rd_f16(x),
    );
    sums.map(|s| 0.125 * s)
}

pub(super) unsafe fn iq3_xxs<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let sums = grid_blocks(
        nb,
        w,
        98,
        y,
        |x, ib| {
            let q = x.add(2 + 8 * ib);
            let mags =
                grid4x8([0, 1, 2, 3, 4, 5, 6, 7].map(|k| g4(&IQ3XXS_GRID[*q.add(k) as usize])));
            let aux = rd_u32(x.add(66 + 4 * ib));
            let ls = 2 * (aux >> 28) as i16 + 1;
            (apply_signs(mags, ksigns_x4(aux)), ls, ls)
        },
        |x| rd_f16(x),
    );
    sums.map(|s| 0.25 * s)
}

pub(super) unsafe fn iq3_s<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    grid_blocks(
        nb,
        w,
        110,
        y,
        |x, ib| {
            let q = x.add(2 + 8 * ib);
            let qh = *x.add(66 + ib) as usize;
            let e = |k: usize| g4(&IQ3S_GRID[*q.add(k) as usize | ((qh >> k) & 1) << 8]);
            let mags = grid4x8([0, 1, 2, 3, 4, 5, 6, 7].map(e));
            let codes = apply_signs(mags, rd_u32(x.add(74 + 4 * ib)));
            let sc = *x.add(106 + ib / 2) >> (4 * (ib % 2));
            let ls = 2 * (sc & 15) as i16 + 1;
            (codes, ls, ls)
        },
        |x| rd_f16(x),
    )
}

/// `8·grid + δ` for four IQ1 grid entries (values −1, 0, 1), `minus[g]` choosing δ = −1 over +1
/// for entry g.
#[inline(always)]
unsafe fn iq1_codes(idx: [usize; 4], minus: [bool; 4]) -> [v128; 2] {
    // SAFETY: the index is masked to the grid's 2048 entries of 8 bytes.
    let entry = |i: usize| rd_u64(IQ1S_GRID.as_ptr().add(i & 2047) as *const u8);
    let grid = grid8x4(idx.map(entry));
    let delta = minus.map(|m| if m { u64::MAX } else { 0x0101_0101_0101_0101 });
    let deltas = [u64x2(delta[0], delta[1]), u64x2(delta[2], delta[3])];
    [0, 1].map(|i| i8x16_add(i8x16_shl(grid[i], 3), deltas[i]))
}

pub(super) unsafe fn iq1_s<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    grid_blocks(
        nb,
        w,
        50,
        y,
        |x, ib| {
            let qh = rd_u16(x.add(34 + 2 * ib)) as usize;
            let idx = |g: usize| *x.add(2 + 4 * ib + g) as usize | ((qh >> (3 * g)) & 7) << 8;
            let codes = iq1_codes([0, 1, 2, 3].map(idx), [qh & 0x8000 != 0; 4]);
            let ls = 2 * ((qh >> 12) & 7) as i16 + 1;
            (codes, ls, ls)
        },
        |x| 0.125 * rd_f16(x),
    )
}

/// The f16 scale of an IQ1_M block, spread over the top nibbles of its four scale words.
#[inline(always)]
unsafe fn iq1_m_d(x: *const u8) -> f32 {
    let sc = [0, 2, 4, 6].map(|k| rd_u16(x.add(48 + k)));
    f16_to_f32((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000))
}

pub(super) unsafe fn iq1_m<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    grid_blocks(
        nb,
        w,
        56,
        y,
        |x, ib| {
            let word = rd_u16(x.add(48 + 2 * (ib / 2))) >> (6 * (ib % 2));
            let (h0, h1) = (*x.add(32 + 2 * ib) as usize, *x.add(33 + 2 * ib) as usize);
            let nib = [h0 & 15, h0 >> 4, h1 & 15, h1 >> 4];
            let idx = |g: usize| *x.add(4 * ib + g) as usize | (nib[g] & 7) << 8;
            let codes = iq1_codes([0, 1, 2, 3].map(idx), nib.map(|n| n & 8 != 0));
            (
                codes,
                2 * (word & 7) as i16 + 1,
                2 * ((word >> 3) & 7) as i16 + 1,
            )
        },
        |x| 0.125 * iq1_m_d(x),
    )
}
