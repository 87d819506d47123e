//! AVX2 dot products of the grid i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S,
//! IQ1_M) with Q8_K activations.
//!
//! Per 32-element sub-block the grid entries are gathered into one vector of unsigned
//! magnitudes; the sign bits become ±1 bytes that flip the activation codes (`sign_epi8`), so
//! `maddubs` multiplies magnitudes with signed activations. The integer sub-block scale
//! (`2s + 1`) multiplies in the following `madd`, so the block sum is an exact integer, as in
//! the scalar kernels; one FMA per block and activation row adds `d·d_a` times it.
//!
//! IQ1_S / IQ1_M carry a ±1/8 offset per group: their codes become `8·grid + δ` (exactly
//! representable), shifted to be non-negative, and the shift comes back out through the
//! activation group sums; the block sum is scaled by `d·d_a/8`.

use super::util::*;
use crate::quant::grids::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID};
use std::arch::x86_64::*;

const Q8K: usize = 292;

#[inline(always)]
fn g8(e: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*e)
}

#[inline(always)]
fn g4(e: &[u8; 4]) -> i32 {
    i32::from_le_bytes(*e)
}

/// Adds `scale·Σ u·(sign·q)` of one sub-block to `ints` for every activation row.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn sub_block<const N: usize>(
    ints: &mut [__m256i; N],
    y: &[*const u8; N],
    at: usize,
    mags: __m256i,
    signs: __m256i,
    scale: __m256i,
) {
    for j in 0..N {
        let yq = _mm256_sign_epi8(ld256(y[j].add(at)), signs);
        let p = _mm256_maddubs_epi16(mags, yq);
        ints[j] = _mm256_add_epi32(ints[j], _mm256_madd_epi16(p, scale));
    }
}

/// Adds `factor·d·d_a·ints` per activation row.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn finish_block<const N: usize>(
    acc: &mut [__m256; N],
    ints: &[__m256i; N],
    y: &[*const u8; N],
    b: usize,
    d: f32,
) {
    for j in 0..N {
        let yd = rd_f32(y[j].add(b * Q8K));
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(ints[j]), acc[j]);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq2_xxs<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 66);
        prefetch_ahead(x, 66);
        let mut ints = [_mm256_setzero_si256(); N];
        for ib in 0..8 {
            let idx = rd_u32(x.add(2 + 8 * ib));
            let aux = rd_u32(x.add(6 + 8 * ib));
            let mags = grid_x4([
                g8(&IQ2XXS_GRID[(idx & 255) as usize]),
                g8(&IQ2XXS_GRID[((idx >> 8) & 255) as usize]),
                g8(&IQ2XXS_GRID[((idx >> 16) & 255) as usize]),
                g8(&IQ2XXS_GRID[(idx >> 24) as usize]),
            ]);
            let scale = _mm256_set1_epi16(2 * (aux >> 28) as i16 + 1);
            sub_block(
                &mut ints,
                &y,
                b * Q8K + 4 + 32 * ib,
                mags,
                ksigns_x4(aux),
                scale,
            );
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.125 * hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq2_xs<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 74);
        prefetch_ahead(x, 74);
        let mut ints = [_mm256_setzero_si256(); N];
        for ib in 0..8 {
            let q = rd_u64(x.add(2 + 8 * ib));
            let e = |g: u32| (q >> (16 * g)) as u32 & 0xffff;
            let mags = grid_x4([
                g8(&IQ2XS_GRID[(e(0) & 511) as usize]),
                g8(&IQ2XS_GRID[(e(1) & 511) as usize]),
                g8(&IQ2XS_GRID[(e(2) & 511) as usize]),
                g8(&IQ2XS_GRID[(e(3) & 511) as usize]),
            ]);
            let signs = _mm256_set_epi64x(
                SIGNS64[(e(3) >> 9) as usize] as i64,
                SIGNS64[(e(2) >> 9) as usize] as i64,
                SIGNS64[(e(1) >> 9) as usize] as i64,
                SIGNS64[(e(0) >> 9) as usize] as i64,
            );
            let sc = *x.add(66 + ib);
            let scale = two_scales(2 * (sc & 15) as i16 + 1, 2 * (sc >> 4) as i16 + 1);
            sub_block(&mut ints, &y, b * Q8K + 4 + 32 * ib, mags, signs, scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.125 * hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq2_s<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 82);
        prefetch_ahead(x, 82);
        let mut ints = [_mm256_setzero_si256(); N];
        for ib in 0..8 {
            let qs = rd_u32(x.add(2 + 4 * ib));
            let qh = *x.add(66 + ib) as u32;
            let idx = |g: u32| (((qs >> (8 * g)) & 255) | ((qh >> (2 * g)) & 3) << 8) as usize;
            let mags = grid_x4([
                g8(&IQ2S_GRID[idx(0)]),
                g8(&IQ2S_GRID[idx(1)]),
                g8(&IQ2S_GRID[idx(2)]),
                g8(&IQ2S_GRID[idx(3)]),
            ]);
            let signs = signs_from_bits(rd_u32(x.add(34 + 4 * ib)));
            let sc = *x.add(74 + ib);
            let scale = two_scales(2 * (sc & 15) as i16 + 1, 2 * (sc >> 4) as i16 + 1);
            sub_block(&mut ints, &y, b * Q8K + 4 + 32 * ib, mags, signs, scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.125 * hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq3_xxs<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 98);
        prefetch_ahead(x, 98);
        let mut ints = [_mm256_setzero_si256(); N];
        for ib in 0..8 {
            let q = x.add(2 + 8 * ib);
            let e = |k: usize| g4(&IQ3XXS_GRID[*q.add(k) as usize]);
            let mags = _mm256_set_epi32(e(7), e(6), e(5), e(4), e(3), e(2), e(1), e(0));
            let aux = rd_u32(x.add(66 + 4 * ib));
            let scale = _mm256_set1_epi16(2 * (aux >> 28) as i16 + 1);
            sub_block(
                &mut ints,
                &y,
                b * Q8K + 4 + 32 * ib,
                mags,
                ksigns_x4(aux),
                scale,
            );
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| 0.25 * hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq3_s<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 110);
        prefetch_ahead(x, 110);
        let mut ints = [_mm256_setzero_si256(); N];
        for ib in 0..8 {
            let q = x.add(2 + 8 * ib);
            let qh = *x.add(66 + ib) as usize;
            let e = |k: usize| g4(&IQ3S_GRID[*q.add(k) as usize | ((qh >> k) & 1) << 8]);
            let mags = _mm256_set_epi32(e(7), e(6), e(5), e(4), e(3), e(2), e(1), e(0));
            let signs = signs_from_bits(rd_u32(x.add(74 + 4 * ib)));
            let sc = *x.add(106 + ib / 2) >> (4 * (ib % 2));
            let scale = _mm256_set1_epi16(2 * (sc & 15) as i16 + 1);
            sub_block(&mut ints, &y, b * Q8K + 4 + 32 * ib, mags, signs, scale);
        }
        finish_block(&mut acc, &ints, &y, b, rd_f16(x));
    }
    acc.map(|a| hsum_ps(a))
}

/// `8·grid + δ + 9` for four IQ1 grid entries (values −1, 0, 1) and four deltas ±1.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn iq1_codes(idx: [usize; 4], minus: [bool; 4]) -> __m256i {
    let grid = grid_x4(idx.map(|i| grid_entry(&IQ1S_GRID, i & 2047)));
    // (grid + 1)·8 ∈ {0, 8, 16}: the shift cannot carry across bytes.
    let g = _mm256_slli_epi16(_mm256_add_epi8(grid, _mm256_set1_epi8(1)), 3);
    let delta = |m: bool| if m { 0i64 } else { 0x0202_0202_0202_0202 };
    let d = _mm256_set_epi64x(
        delta(minus[3]),
        delta(minus[2]),
        delta(minus[1]),
        delta(minus[0]),
    );
    // 8(grid + 1) + (δ + 1) = 8·grid + δ + 9.
    _mm256_add_epi8(g, d)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq1_s<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi8(1);
    for b in 0..nb {
        let x = w.add(b * 50);
        prefetch_ahead(x, 50);
        let mut ints = [_mm256_setzero_si256(); N];
        let mut offset = [0i16; 16];
        for ib in 0..8 {
            let qh = rd_u16(x.add(34 + 2 * ib)) as usize;
            let ls = 2 * ((qh >> 12) & 7) as i16 + 1;
            let minus = qh & 0x8000 != 0;
            let idx = |g: usize| *x.add(2 + 4 * ib + g) as usize | ((qh >> (3 * g)) & 7) << 8;
            let codes = iq1_codes([idx(0), idx(1), idx(2), idx(3)], [minus; 4]);
            offset[2 * ib] = -9 * ls;
            offset[2 * ib + 1] = -9 * ls;
            sub_block(
                &mut ints,
                &y,
                b * Q8K + 4 + 32 * ib,
                codes,
                ones,
                _mm256_set1_epi16(ls),
            );
        }
        let offset = ld256(offset.as_ptr() as *const u8);
        for j in 0..N {
            let bsums = ld256(y[j].add(b * Q8K + 260));
            ints[j] = _mm256_add_epi32(ints[j], _mm256_madd_epi16(bsums, offset));
        }
        finish_block(&mut acc, &ints, &y, b, 0.125 * rd_f16(x));
    }
    acc.map(|a| hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq1_m<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi8(1);
    for b in 0..nb {
        let x = w.add(b * 56);
        prefetch_ahead(x, 56);
        let sc = [0, 2, 4, 6].map(|k| rd_u16(x.add(48 + k)));
        let bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16_to_f32(bits);
        let mut ints = [_mm256_setzero_si256(); N];
        let mut offset = [0i16; 16];
        for ib in 0..8 {
            let word = sc[ib / 2] >> (6 * (ib % 2));
            let ls = [2 * (word & 7) as i16 + 1, 2 * ((word >> 3) & 7) as i16 + 1];
            let (h0, h1) = (*x.add(32 + 2 * ib) as usize, *x.add(33 + 2 * ib) as usize);
            let nib = [h0 & 15, h0 >> 4, h1 & 15, h1 >> 4];
            let idx = |g: usize| *x.add(4 * ib + g) as usize | (nib[g] & 7) << 8;
            let codes = iq1_codes([idx(0), idx(1), idx(2), idx(3)], nib.map(|n| n & 8 != 0));
            offset[2 * ib] = -9 * ls[0];
            offset[2 * ib + 1] = -9 * ls[1];
            let scale = two_scales(ls[0], ls[1]);
            sub_block(&mut ints, &y, b * Q8K + 4 + 32 * ib, codes, ones, scale);
        }
        let offset = ld256(offset.as_ptr() as *const u8);
        for j in 0..N {
            let bsums = ld256(y[j].add(b * Q8K + 260));
            ints[j] = _mm256_add_epi32(ints[j], _mm256_madd_epi16(bsums, offset));
        }
        finish_block(&mut acc, &ints, &y, b, 0.125 * d);
    }
    acc.map(|a| hsum_ps(a))
}
