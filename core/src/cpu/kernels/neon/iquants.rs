//! NEON dot products of the grid i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S,
//! IQ1_M) with Q8_K activations.
//!
//! Per 32-element sub-block the grid entries are gathered into two vectors of 16 magnitudes
//! and the sign bits become byte masks that negate them (`(v ^ m) − m`), once per weight block
//! for all activation rows. The signed weights (|v| ≤ 62) times the activation codes are summed
//! (on the plain path in i16 lanes, at most four products per lane: 4·62·128 < 2¹⁵; with `sdot`
//! in i32 lanes) and multiplied by the integer sub-block scale (`2s + 1`) into i32 lanes, so
//! the block sum is an exact integer, as in the scalar kernels; one FMA per block and
//! activation row adds `d·d_a` times it to four f32 lane sums.
//!
//! IQ1_S / IQ1_M carry a ±1/8 offset per group: their codes become `8·grid + δ` (−9..9,
//! exactly representable and signed, so no shift is needed) and the block sum is scaled by
//! `d·d_a/8`.

use super::util::*;
use crate::quant::grids::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID};
use std::arch::aarch64::*;

const Q8K: usize = 292;

#[inline(always)]
fn g8(e: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*e)
}

/// Two 4-byte grid entries as one little-endian u64.
#[inline(always)]
fn g4x2(lo: &[u8; 4], hi: &[u8; 4]) -> u64 {
    u32::from_le_bytes(*lo) as u64 | (u32::from_le_bytes(*hi) as u64) << 32
}

/// Signed weights of one sub-block: magnitudes `m` with the bytes under `s` negated.
#[inline(always)]
unsafe fn signed(
    m: (uint8x16_t, uint8x16_t),
    s: (uint8x16_t, uint8x16_t),
) -> (int8x16_t, int8x16_t) {
    (
        apply_signs(vreinterpretq_s8_u8(m.0), s.0),
        apply_signs(vreinterpretq_s8_u8(m.1), s.1),
    )
}

/// Adds `scale·Σ c·q` of one 32-element sub-block at byte `at` to `ints` for every row.
#[inline(always)]
unsafe fn sub_block<const N: usize, D: Dot>(
    ints: &mut [int32x4_t; N],
    y: &[*const u8; N],
    at: usize,
    c: (int8x16_t, int8x16_t),
    scale: i16,
) {
    for j in 0..N {
        let yq = y[j].add(at);
        ints[j] = D::scaled32_small(ints[j], c, ld_s8(yq), ld_s8(yq.add(16)), scale);
    }
}

/// As [`sub_block`] with one scale per 16 elements.
#[inline(always)]
unsafe fn sub_block2<const N: usize, D: Dot>(
    ints: &mut [int32x4_t; N],
    y: &[*const u8; N],
    at: usize,
    c: (int8x16_t, int8x16_t),
    scale: (i16, i16),
) {
    for j in 0..N {
        let yq = y[j].add(at);
        ints[j] = D::scaled16(ints[j], c.0, ld_s8(yq), scale.0);
        ints[j] = D::scaled16(ints[j], c.1, ld_s8(yq.add(16)), scale.1);
    }
}

/// Adds `d·d_a·ints` per activation row.
#[inline(always)]
unsafe fn finish_block<const N: usize>(
    acc: &mut [float32x4_t; N],
    ints: &[int32x4_t; N],
    y: &[*const u8; N],
    b: usize,
    d: f32,
) {
    for j in 0..N {
        let yd = rd_f32(y[j].add(b * Q8K));
        acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(ints[j]), d * yd);
    }
}

pub(super) unsafe fn iq2_xxs<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 66);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let idx = rd_u32(x.add(2 + 8 * ib));
            let aux = rd_u32(x.add(6 + 8 * ib));
            let e = |g: u32| g8(&IQ2XXS_GRID[((idx >> (8 * g)) & 255) as usize]);
            let mags = (pair(e(0), e(1)), pair(e(2), e(3)));
            let signs = (ksigns_x2(aux, aux >> 7), ksigns_x2(aux >> 14, aux >> 21));
            let scale = 2 * (aux >> 28) as i16 + 1;
            let at = b * Q8K + 4 + 32 * ib;
            sub_block::<N, D>(&mut ints, &y, at, signed(mags, signs), scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.125 * vaddvq_f32(a))
}

pub(super) unsafe fn iq2_xs<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 74);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let e = |g: usize| rd_u16(x.add(2 + 8 * ib + 2 * g)) as u32;
            let grid = |g: usize| g8(&IQ2XS_GRID[(e(g) & 511) as usize]);
            let mags = (pair(grid(0), grid(1)), pair(grid(2), grid(3)));
            let signs = (
                ksigns_x2(e(0) >> 9, e(1) >> 9),
                ksigns_x2(e(2) >> 9, e(3) >> 9),
            );
            let sc = *x.add(66 + ib);
            let scale = (2 * (sc & 15) as i16 + 1, 2 * (sc >> 4) as i16 + 1);
            let at = b * Q8K + 4 + 32 * ib;
            sub_block2::<N, D>(&mut ints, &y, at, signed(mags, signs), scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.125 * vaddvq_f32(a))
}

pub(super) unsafe fn iq2_s<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 82);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let qs = rd_u32(x.add(2 + 4 * ib));
            let qh = *x.add(66 + ib) as u32;
            let idx = |g: u32| (((qs >> (8 * g)) & 255) | ((qh >> (2 * g)) & 3) << 8) as usize;
            let e = |g: u32| g8(&IQ2S_GRID[idx(g)]);
            let mags = (pair(e(0), e(1)), pair(e(2), e(3)));
            let bits = rd_u32(x.add(34 + 4 * ib));
            let signs = (bit_mask(bits as u16), bit_mask((bits >> 16) as u16));
            let sc = *x.add(74 + ib);
            let scale = (2 * (sc & 15) as i16 + 1, 2 * (sc >> 4) as i16 + 1);
            let at = b * Q8K + 4 + 32 * ib;
            sub_block2::<N, D>(&mut ints, &y, at, signed(mags, signs), scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.125 * vaddvq_f32(a))
}

pub(super) unsafe fn iq3_xxs<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 98);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let q = x.add(2 + 8 * ib);
            let e = |k: usize| &IQ3XXS_GRID[*q.add(k) as usize];
            let mags = (
                pair(g4x2(e(0), e(1)), g4x2(e(2), e(3))),
                pair(g4x2(e(4), e(5)), g4x2(e(6), e(7))),
            );
            let aux = rd_u32(x.add(66 + 4 * ib));
            let signs = (ksigns_x2(aux, aux >> 7), ksigns_x2(aux >> 14, aux >> 21));
            let scale = 2 * (aux >> 28) as i16 + 1;
            let at = b * Q8K + 4 + 32 * ib;
            sub_block::<N, D>(&mut ints, &y, at, signed(mags, signs), scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.25 * vaddvq_f32(a))
}

pub(super) unsafe fn iq3_s<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 110);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let q = x.add(2 + 8 * ib);
            let qh = *x.add(66 + ib) as usize;
            let e = |k: usize| &IQ3S_GRID[*q.add(k) as usize | ((qh >> k) & 1) << 8];
            let mags = (
                pair(g4x2(e(0), e(1)), g4x2(e(2), e(3))),
                pair(g4x2(e(4), e(5)), g4x2(e(6), e(7))),
            );
            let bits = rd_u32(x.add(74 + 4 * ib));
            let signs = (bit_mask(bits as u16), bit_mask((bits >> 16) as u16));
            let sc = *x.add(106 + ib / 2) >> (4 * (ib % 2));
            let scale = 2 * (sc & 15) as i16 + 1;
            let at = b * Q8K + 4 + 32 * ib;
            sub_block::<N, D>(&mut ints, &y, at, signed(mags, signs), scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| vaddvq_f32(a))
}

/// The 32 codes `8·grid + δ` of an IQ1 sub-block from four group indices (grid values −1, 0,
/// 1) and their delta signs (δ = −1 where `minus`, else +1).
#[inline(always)]
unsafe fn iq1_codes(idx: [usize; 4], minus: [bool; 4]) -> (int8x16_t, int8x16_t) {
    let grid = |g: usize| u64::from_le_bytes(IQ1S_GRID[idx[g] & 2047].map(|v| v as u8));
    let delta = |g: usize| {
        if minus[g] {
            u64::MAX
        } else {
            0x0101_0101_0101_0101
        }
    };
    let codes = |a: usize, b: usize| {
        let g = vreinterpretq_s8_u8(pair(grid(a), grid(b)));
        vaddq_s8(
            vshlq_n_s8(g, 3),
            vreinterpretq_s8_u8(pair(delta(a), delta(b))),
        )
    };
    (codes(0, 1), codes(2, 3))
}

pub(super) unsafe fn iq1_s<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 50);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let qh = rd_u16(x.add(34 + 2 * ib)) as usize;
            let ls = 2 * ((qh >> 12) & 7) as i16 + 1;
            let minus = qh & 0x8000 != 0;
            let idx = |g: usize| *x.add(2 + 4 * ib + g) as usize | ((qh >> (3 * g)) & 7) << 8;
            let codes = iq1_codes([idx(0), idx(1), idx(2), idx(3)], [minus; 4]);
            sub_block::<N, D>(&mut ints, &y, b * Q8K + 4 + 32 * ib, codes, ls);
        }
        finish_block(&mut acc, &ints, &y, b, 0.125 * rd_f16(x));
    }
    acc.map(|a| vaddvq_f32(a))
}

pub(super) unsafe fn iq1_m<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 56);
        let sc = [0, 2, 4, 6].map(|k| rd_u16(x.add(48 + k)));
        let bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16_to_f32(bits);
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let word = sc[ib / 2] >> (6 * (ib % 2));
            let ls = (2 * (word & 7) as i16 + 1, 2 * ((word >> 3) & 7) as i16 + 1);
            let (h0, h1) = (*x.add(32 + 2 * ib) as usize, *x.add(33 + 2 * ib) as usize);
            let nib = [h0 & 15, h0 >> 4, h1 & 15, h1 >> 4];
            let idx = |g: usize| *x.add(4 * ib + g) as usize | (nib[g] & 7) << 8;
            let codes = iq1_codes([idx(0), idx(1), idx(2), idx(3)], nib.map(|n| n & 8 != 0));
            sub_block2::<N, D>(&mut ints, &y, b * Q8K + 4 + 32 * ib, codes, ls);
        }
        finish_block(&mut acc, &ints, &y, b, 0.125 * d);
    }
    acc.map(|a| vaddvq_f32(a))
}
