//! The k-quants: 256-element super-blocks of 16 or 8 sub-blocks with quantized sub-scales.
//!
//! | type | bytes | layout |
//! |---|---|---|
//! | Q2_K | 84 | `scales[16]` @0 (low nibble scale, high nibble min), `qs[64]` @16, `d` @80, `dmin` @82 |
//! | Q3_K | 110 | `hmask[32]` @0, `qs[64]` @32, `scales[12]` @96 (16 × 6 bit), `d` @108 |
//! | Q4_K | 144 | `d` @0, `dmin` @2, `scales[12]` @4 (8 × 6-bit scale + min), `qs[128]` @16 |
//! | Q5_K | 176 | as Q4_K, plus `qh[32]` @16 and `qs[128]` @48 |
//! | Q6_K | 210 | `ql[128]` @0, `qh[64]` @128, `scales[16]` i8 @192, `d` @208 |
//! | Q8_K | 292 | `d` **f32** @0, `qs[256]` i8 @4, `bsums[16]` i16 @260 |
//!
//! Float operations follow ggml's reference dequantizers in order: first the sub-block scale
//! `dl = d·sc` (and `ml = dmin·m`), then `dl·q − ml`.

use super::bytes::{f16_at, f32_at};

pub(crate) const QK_K: usize = 256;

pub(crate) fn dequant_q2_k(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(84).zip(out.chunks_exact_mut(QK_K)) {
        let scales = &b[0..16];
        let d = f16_at(b, 80);
        let dmin = f16_at(b, 82);
        let mut out_at = 0;
        let mut is = 0;
        for half in 0..2 {
            let q = &b[16 + 32 * half..16 + 32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for group in 0..2 {
                    let sc = scales[is];
                    is += 1;
                    let dl = d * (sc & 15) as f32;
                    let ml = dmin * (sc >> 4) as f32;
                    for &qv in &q[16 * group..16 * group + 16] {
                        y[out_at] = dl * ((qv >> shift) & 3) as f32 - ml;
                        out_at += 1;
                    }
                }
            }
        }
    }
}

/// The 16 signed 6-bit sub-block scales of a Q3_K block (already minus 32).
#[inline(always)]
pub(crate) fn q3_k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low4 = if i < 8 { s[i] & 15 } else { s[i - 8] >> 4 };
        let hi2 = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = (low4 | hi2 << 4) as i8 - 32;
    }
    out
}

pub(crate) fn dequant_q3_k(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(110).zip(out.chunks_exact_mut(QK_K)) {
        let hmask = &b[0..32];
        let scales = q3_k_scales(&b[96..108]);
        let d = f16_at(b, 108);
        let mut out_at = 0;
        let mut is = 0;
        let mut m = 1u8;
        for half in 0..2 {
            let q = &b[32 + 32 * half..32 + 32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for group in 0..2 {
                    let dl = d * scales[is] as f32;
                    is += 1;
                    for l in 16 * group..16 * group + 16 {
                        let low = ((q[l] >> shift) & 3) as i32;
                        let high = if hmask[l] & m != 0 { 0 } else { 4 };
                        y[out_at] = dl * (low - high) as f32;
                        out_at += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// Scale and min of sub-block `j` (< 8) from the 12 packed bytes of Q4_K / Q5_K.
#[inline(always)]
pub(crate) fn k4_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

pub(crate) fn dequant_q4_k(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(144).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales = &b[4..16];
        for chunk in 0..4 {
            let q = &b[16 + 32 * chunk..16 + 32 * chunk + 32];
            let (sc1, m1) = k4_scale_min(2 * chunk, scales);
            let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
            let y = &mut y[64 * chunk..64 * chunk + 64];
            for l in 0..32 {
                y[l] = d1 * (q[l] & 15) as f32 - m1;
                y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

pub(crate) fn dequant_q5_k(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(176).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales = &b[4..16];
        let qh = &b[16..48];
        for chunk in 0..4 {
            let ql = &b[48 + 32 * chunk..48 + 32 * chunk + 32];
            let (sc1, m1) = k4_scale_min(2 * chunk, scales);
            let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
            let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
            let y = &mut y[64 * chunk..64 * chunk + 64];
            for l in 0..32 {
                let lo = (ql[l] & 15) + if qh[l] & u1 != 0 { 16 } else { 0 };
                let hi = (ql[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 };
                y[l] = d1 * lo as f32 - m1;
                y[l + 32] = d2 * hi as f32 - m2;
            }
        }
    }
}

/// The 6-bit codes of a Q6_K half (128 elements, minus 32) from its `ql[64]` and `qh[32]`.
#[inline(always)]
pub(crate) fn q6_k_half_codes(ql: &[u8], qh: &[u8]) -> [i8; 128] {
    let mut q = [0i8; 128];
    for l in 0..32 {
        q[l] = ((ql[l] & 15) | (qh[l] & 3) << 4) as i8 - 32;
        q[l + 32] = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) as i8 - 32;
        q[l + 64] = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i8 - 32;
        q[l + 96] = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i8 - 32;
    }
    q
}

pub(crate) fn dequant_q6_k(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 208);
        let scales = &b[192..208];
        for half in 0..2 {
            let q = q6_k_half_codes(
                &b[64 * half..64 * half + 64],
                &b[128 + 32 * half..160 + 32 * half],
            );
            let sc = &scales[8 * half..8 * half + 8];
            let y = &mut y[128 * half..128 * half + 128];
            // Element i of the half belongs to 16-element sub-block i / 16.
            for (i, (y, &q)) in y.iter_mut().zip(q.iter()).enumerate() {
                *y = d * (sc[i / 16] as i8) as f32 * q as f32;
            }
        }
    }
}

pub(crate) fn dequant_q8_k(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(292).zip(out.chunks_exact_mut(QK_K)) {
        let d = f32_at(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[4..260]) {
            *y = d * q as i8 as f32;
        }
    }
}
