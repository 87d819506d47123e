//! The i-quants: codebook ("grid") formats with 256-element super-blocks, plus IQ4_NL.
//!
//! | type | bytes | layout |
//! |---|---|---|
//! | IQ2_XXS | 66 | `d` @0, 8 × (4 grid bytes + u32 of 4×7 sign bits and a 4-bit scale) @2 |
//! | IQ2_XS | 74 | `d` @0, `qs[32]` u16 @2 (9-bit grid index + 7 sign bits), `scales[8]` @66 |
//! | IQ2_S | 82 | `d` @0, grid low bytes `qs[32]` @2, sign bytes `[32]` @34, `qh[8]` @66, `scales[8]` @74 |
//! | IQ3_XXS | 98 | `d` @0, grid bytes `[64]` @2, 8 × u32 (4×7 sign bits + scale) @66 |
//! | IQ3_S | 110 | `d` @0, `qs[64]` @2, `qh[8]` @66, `signs[32]` @74, `scales[4]` @106 |
//! | IQ1_S | 50 | `d` @0, `qs[32]` @2, `qh[8]` u16 @34 (3 × 3 index bits, scale, delta sign) |
//! | IQ1_M | 56 | `qs[32]` @0, `qh[16]` @32, `scales` 4 × u16 @48 (f16 `d` in their top nibbles) |
//! | IQ4_NL | 18 | `d` @0, `qs[16]` @2 (nibbles into [`KVALUES_IQ4NL`]) |
//! | IQ4_XS | 136 | `d` @0, `scales_h` u16 @2, `scales_l[4]` @4, `qs[128]` @8 |
//!
//! A sign bit set means the grid value is negated. Float operations follow ggml's reference
//! dequantizers in order (`db = d·(0.5 + s)·0.25`, then `db·grid·±1`), so results are
//! bit-identical to ggml.

use super::bytes::{f16_at, u16_at, u32_at};
use super::grids::{
    IQ1S_GRID, IQ1_DELTA, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
    KVALUES_IQ4NL,
};
use super::kquants::QK_K;
use half::f16;

#[inline(always)]
fn signed(v: f32, sign_bits: u8, j: usize) -> f32 {
    v * if sign_bits & (1 << j) != 0 { -1.0 } else { 1.0 }
}

pub(crate) fn dequant_iq2_xxs(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(66).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let chunk = &b[2 + 8 * ib..10 + 8 * ib];
            let aux = u32_at(chunk, 4);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.25;
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                let grid = &IQ2XXS_GRID[chunk[g] as usize];
                let signs = KSIGNS_IQ2XS[((aux >> (7 * g)) & 127) as usize];
                for j in 0..8 {
                    y[j] = signed(db * grid[j] as f32, signs, j);
                }
            }
        }
    }
}

pub(crate) fn dequant_iq2_xs(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(74).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = b[66 + ib];
            let db = [
                d * (0.5 + (sc & 15) as f32) * 0.25,
                d * (0.5 + (sc >> 4) as f32) * 0.25,
            ];
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                let q = u16_at(b, 2 + 2 * (4 * ib + g));
                let grid = &IQ2XS_GRID[(q & 511) as usize];
                let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                for j in 0..8 {
                    y[j] = signed(db[g / 2] * grid[j] as f32, signs, j);
                }
            }
        }
    }
}

pub(crate) fn dequant_iq2_s(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(82).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = b[74 + ib];
            let qh = b[66 + ib] as usize;
            let db = [
                d * (0.5 + (sc & 15) as f32) * 0.25,
                d * (0.5 + (sc >> 4) as f32) * 0.25,
            ];
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                let idx = b[2 + 4 * ib + g] as usize | ((qh >> (2 * g)) & 3) << 8;
                let grid = &IQ2S_GRID[idx];
                let signs = b[34 + 4 * ib + g];
                for j in 0..8 {
                    y[j] = signed(db[g / 2] * grid[j] as f32, signs, j);
                }
            }
        }
    }
}

pub(crate) fn dequant_iq3_xxs(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(98).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let aux = u32_at(b, 66 + 4 * ib);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * g)) & 127) as usize];
                let grid1 = &IQ3XXS_GRID[b[2 + 8 * ib + 2 * g] as usize];
                let grid2 = &IQ3XXS_GRID[b[3 + 8 * ib + 2 * g] as usize];
                for j in 0..4 {
                    y[j] = signed(db * grid1[j] as f32, signs, j);
                    y[j + 4] = signed(db * grid2[j] as f32, signs, j + 4);
                }
            }
        }
    }
}

pub(crate) fn dequant_iq3_s(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(110).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = b[106 + ib / 2];
            let s = if ib % 2 == 0 { sc & 15 } else { sc >> 4 };
            let db = d * (1 + 2 * s as i32) as f32;
            let qh = b[66 + ib] as usize;
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                let idx1 = b[2 + 8 * ib + 2 * g] as usize | ((qh >> (2 * g)) & 1) << 8;
                let idx2 = b[3 + 8 * ib + 2 * g] as usize | ((qh >> (2 * g + 1)) & 1) << 8;
                let (grid1, grid2) = (&IQ3S_GRID[idx1], &IQ3S_GRID[idx2]);
                let signs = b[74 + 4 * ib + g];
                for j in 0..4 {
                    y[j] = signed(db * grid1[j] as f32, signs, j);
                    y[j + 4] = signed(db * grid2[j] as f32, signs, j + 4);
                }
            }
        }
    }
}

pub(crate) fn dequant_iq1_s(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(50).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let qh = u16_at(b, 34 + 2 * ib) as usize;
            let dl = d * (2 * ((qh >> 12) & 7) + 1) as f32;
            let delta = if qh & 0x8000 != 0 {
                -IQ1_DELTA
            } else {
                IQ1_DELTA
            };
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                let idx = b[2 + 4 * ib + g] as usize | ((qh >> (3 * g)) & 7) << 8;
                for (y, &v) in y.iter_mut().zip(IQ1S_GRID[idx].iter()) {
                    *y = dl * (v as f32 + delta);
                }
            }
        }
    }
}

/// The f16 super-scale of an IQ1_M block, stored in the top nibbles of its four scale words.
#[inline(always)]
pub(crate) fn iq1_m_scale(sc: [u16; 4]) -> f32 {
    let bits = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    f16::from_bits(bits).to_f32()
}

pub(crate) fn dequant_iq1_m(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(56).zip(out.chunks_exact_mut(QK_K)) {
        let sc = [u16_at(b, 48), u16_at(b, 50), u16_at(b, 52), u16_at(b, 54)];
        let d = iq1_m_scale(sc);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let word = sc[ib / 2] as usize >> (6 * (ib % 2));
            let dl = [
                d * (2 * (word & 7) + 1) as f32,
                d * (2 * ((word >> 3) & 7) + 1) as f32,
            ];
            for (g, y) in y.chunks_exact_mut(8).enumerate() {
                // Group g's index high bits and delta sign live in nibble g % 2 of qh[2ib + g/2].
                let nibble = (b[32 + 2 * ib + g / 2] >> (4 * (g % 2))) as usize;
                let idx = b[4 * ib + g] as usize | (nibble & 7) << 8;
                let delta = if nibble & 8 != 0 {
                    -IQ1_DELTA
                } else {
                    IQ1_DELTA
                };
                for (y, &v) in y.iter_mut().zip(IQ1S_GRID[idx].iter()) {
                    *y = dl[g / 2] * (v as f32 + delta);
                }
            }
        }
    }
}

pub(crate) fn dequant_iq4_nl(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        for j in 0..16 {
            y[j] = d * KVALUES_IQ4NL[(b[2 + j] & 15) as usize] as f32;
            y[j + 16] = d * KVALUES_IQ4NL[(b[2 + j] >> 4) as usize] as f32;
        }
    }
}

/// The 6-bit scale of IQ4_XS sub-block `ib` (not yet minus 32).
#[inline(always)]
pub(crate) fn iq4_xs_scale(scales_h: u16, scales_l: &[u8], ib: usize) -> i32 {
    let low = (scales_l[ib / 2] >> (4 * (ib % 2))) & 15;
    let high = ((scales_h >> (2 * ib)) & 3) as u8;
    (low | high << 4) as i32
}

pub(crate) fn dequant_iq4_xs(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(136).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        let scales_h = u16_at(b, 2);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let dl = d * (iq4_xs_scale(scales_h, &b[4..8], ib) - 32) as f32;
            let q = &b[8 + 16 * ib..24 + 16 * ib];
            for j in 0..16 {
                y[j] = dl * KVALUES_IQ4NL[(q[j] & 15) as usize] as f32;
                y[j + 16] = dl * KVALUES_IQ4NL[(q[j] >> 4) as usize] as f32;
            }
        }
    }
}
