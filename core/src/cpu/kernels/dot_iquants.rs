//! Dot products of the grid i-quants (IQ2_*, IQ3_*, IQ1_*) with Q8_K activations.
//!
//! Structure of ggml's `*_q8_K_generic` kernels: per 32-element sub-block an exact integer sum
//! of `grid · sign · q8`, weighted by the integer sub-block scale `2s + 1`; per super-block one
//! float term `d·y.d·bsum`; the constant factor of the format (1/8, 1/4) is applied once to the
//! row sum. IQ1_S / IQ1_M add their ±1/8 offsets through the activation group sums.

#![forbid(unsafe_code)]

use super::dot_kquants::{q8k_blocks, Q8K};
use crate::quant::bytes::{f16_at, u16_at, u32_at};
use crate::quant::grids::{
    IQ1S_GRID, IQ1_DELTA, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
};
use crate::quant::iquants::iq1_m_scale;

/// Σ_j grid[j]·q8[at + j]·(sign bit j ? −1 : 1) over one 8- or 4-element group.
#[inline(always)]
fn signed_sum(grid: &[u8], signs: u8, y: Q8K, at: usize) -> i32 {
    let mut s = 0;
    for (j, &g) in grid.iter().enumerate() {
        let v = g as i32 * y.q(at + j);
        s += if signs & (1 << j) != 0 { -v } else { v };
    }
    s
}

/// IQ2_XXS: `0.125 · Σ_blocks d·y.d·Σ_ib sumi·(2s + 1)`.
pub(crate) fn dot_iq2_xxs(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(66).zip(q8k_blocks(a)).take(n / 256) {
        let d = f16_at(x, 0) * y.d();
        let mut bsum = 0i32;
        for ib in 0..8 {
            let chunk = &x[2 + 8 * ib..10 + 8 * ib];
            let aux = u32_at(chunk, 4);
            let ls = 2 * (aux >> 28) as i32 + 1;
            let mut sumi = 0;
            for g in 0..4 {
                let grid = &IQ2XXS_GRID[chunk[g] as usize];
                let signs = KSIGNS_IQ2XS[((aux >> (7 * g)) & 127) as usize];
                sumi += signed_sum(grid, signs, y, 32 * ib + 8 * g);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    0.125 * sumf
}

/// IQ2_XS: as IQ2_XXS with one scale per 16 elements.
pub(crate) fn dot_iq2_xs(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(74).zip(q8k_blocks(a)).take(n / 256) {
        let d = f16_at(x, 0) * y.d();
        let mut bsum = 0i32;
        for ib in 0..8 {
            let sc = x[66 + ib];
            let ls = [2 * (sc & 15) as i32 + 1, 2 * (sc >> 4) as i32 + 1];
            for (pair, &ls) in ls.iter().enumerate() {
                let mut sumi = 0;
                for g in 2 * pair..2 * pair + 2 {
                    let q = u16_at(x, 2 + 2 * (4 * ib + g));
                    let grid = &IQ2XS_GRID[(q & 511) as usize];
                    let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                    sumi += signed_sum(grid, signs, y, 32 * ib + 8 * g);
                }
                bsum += sumi * ls;
            }
        }
        sumf += d * bsum as f32;
    }
    0.125 * sumf
}

/// IQ2_S: as IQ2_XS with 10-bit grid indices and explicit sign bytes.
pub(crate) fn dot_iq2_s(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(82).zip(q8k_blocks(a)).take(n / 256) {
        let d = f16_at(x, 0) * y.d();
        let mut bsum = 0i32;
        for ib in 0..8 {
            let sc = x[74 + ib];
            let ls = [1 + 2 * (sc & 15) as i32, 1 + 2 * (sc >> 4) as i32];
            let qh = x[66 + ib] as usize;
            let mut sumi = [0i32; 2];
            for g in 0..4 {
                let idx = x[2 + 4 * ib + g] as usize | ((qh >> (2 * g)) & 3) << 8;
                let signs = x[34 + 4 * ib + g];
                sumi[g / 2] += signed_sum(&IQ2S_GRID[idx], signs, y, 32 * ib + 8 * g);
            }
            bsum += ls[0] * sumi[0] + ls[1] * sumi[1];
        }
        sumf += d * bsum as f32;
    }
    0.125 * sumf
}

/// IQ3_XXS: `0.25 · Σ_blocks d·y.d·Σ_ib sumi·(2s + 1)`.
pub(crate) fn dot_iq3_xxs(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(98).zip(q8k_blocks(a)).take(n / 256) {
        let d = f16_at(x, 0) * y.d();
        let mut bsum = 0i32;
        for ib in 0..8 {
            let aux = u32_at(x, 66 + 4 * ib);
            let ls = 2 * (aux >> 28) as i32 + 1;
            let mut sumi = 0;
            for g in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * g)) & 127) as usize];
                let grid1 = &IQ3XXS_GRID[x[2 + 8 * ib + 2 * g] as usize];
                let grid2 = &IQ3XXS_GRID[x[3 + 8 * ib + 2 * g] as usize];
                let at = 32 * ib + 8 * g;
                sumi += signed_sum(grid1, signs, y, at) + signed_sum(grid2, signs >> 4, y, at + 4);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    0.25 * sumf
}

/// IQ3_S: `Σ_blocks d·y.d·Σ_ib sumi·(2s + 1)` (no constant factor).
pub(crate) fn dot_iq3_s(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(110).zip(q8k_blocks(a)).take(n / 256) {
        let d = f16_at(x, 0) * y.d();
        let mut bsum = 0i32;
        for ib in 0..8 {
            let sc = x[106 + ib / 2];
            let ls = 2 * (if ib % 2 == 0 { sc & 15 } else { sc >> 4 }) as i32 + 1;
            let qh = x[66 + ib] as usize;
            let mut sumi = 0;
            for g in 0..4 {
                let idx1 = x[2 + 8 * ib + 2 * g] as usize | ((qh >> (2 * g)) & 1) << 8;
                let idx2 = x[3 + 8 * ib + 2 * g] as usize | ((qh >> (2 * g + 1)) & 1) << 8;
                let signs = x[74 + 4 * ib + g];
                let at = 32 * ib + 8 * g;
                sumi += signed_sum(&IQ3S_GRID[idx1], signs, y, at)
                    + signed_sum(&IQ3S_GRID[idx2], signs >> 4, y, at + 4);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    sumf
}

/// Σ_j grid[j]·q8[at + j] for one 8-element IQ1 group.
#[inline(always)]
fn grid_sum(grid: &[i8; 8], y: Q8K, at: usize) -> i32 {
    grid.iter()
        .enumerate()
        .map(|(j, &g)| g as i32 * y.q(at + j))
        .sum()
}

/// IQ1_S: `sumf += d·y.d·(sumi + 1/8·sumi1)`, the delta term through the group sums.
pub(crate) fn dot_iq1_s(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(50).zip(q8k_blocks(a)).take(n / 256) {
        let (mut sumi, mut sumi1) = (0i32, 0i32);
        for ib in 0..8 {
            let qh = u16_at(x, 34 + 2 * ib) as usize;
            let ls = 2 * ((qh >> 12) & 7) as i32 + 1;
            let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
            let mut lsum = 0;
            for g in 0..4 {
                let idx = x[2 + 4 * ib + g] as usize | ((qh >> (3 * g)) & 7) << 8;
                lsum += grid_sum(&IQ1S_GRID[idx], y, 32 * ib + 8 * g);
            }
            sumi += ls * lsum;
            sumi1 += ls * delta * (y.bsum(2 * ib) + y.bsum(2 * ib + 1));
        }
        sumf += f16_at(x, 0) * y.d() * (sumi as f32 + IQ1_DELTA * sumi1 as f32);
    }
    sumf
}

/// IQ1_M: as IQ1_S with a scale per 16 elements and a delta sign per 8.
pub(crate) fn dot_iq1_m(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(56).zip(q8k_blocks(a)).take(n / 256) {
        let sc = [u16_at(x, 48), u16_at(x, 50), u16_at(x, 52), u16_at(x, 54)];
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for ib in 0..8 {
            let (mut sum1, mut sum2) = ([0i32; 2], [0i32; 2]);
            for g in 0..4 {
                let nibble = (x[32 + 2 * ib + g / 2] >> (4 * (g % 2))) as usize;
                let idx = x[4 * ib + g] as usize | (nibble & 7) << 8;
                let delta = if nibble & 8 != 0 { -1 } else { 1 };
                let at = 32 * ib + 8 * g;
                sum1[g / 2] += grid_sum(&IQ1S_GRID[idx], y, at);
                let q8sum: i32 = (0..8).map(|j| y.q(at + j)).sum();
                sum2[g / 2] += q8sum * delta;
            }
            let word = sc[ib / 2] as i32 >> (6 * (ib % 2));
            let ls = [2 * (word & 7) + 1, 2 * ((word >> 3) & 7) + 1];
            sumi1 += sum1[0] * ls[0] + sum1[1] * ls[1];
            sumi2 += sum2[0] * ls[0] + sum2[1] * ls[1];
        }
        sumf += iq1_m_scale(sc) * y.d() * (sumi1 as f32 + IQ1_DELTA * sumi2 as f32);
    }
    sumf
}
