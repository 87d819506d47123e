//! The 4-bit float formats MXFP4 (OCP microscaling) and NVFP4.
//!
//! | type | bytes | layout |
//! |---|---|---|
//! | MXFP4 | 17 | `e` (E8M0 shared exponent) @0, `qs[16]` @1: element j low nibble, j+16 high |
//! | NVFP4 | 36 | `d[4]` (UE4M3, one per 16 elements) @0, `qs[32]` @4: sub-block s uses `qs[8s..8s+8]` |
//!
//! Codes index [`KVALUES_FP4`], the E2M1 values doubled; both scale decoders return half the
//! true scale to compensate, exactly as ggml does.

use super::grids::KVALUES_FP4;

/// 2^k as f32 for −126 ≤ k ≤ 127.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// Half the value of an E8M0 exponent byte: 2^(e − 128) (denormal for e < 2).
#[inline(always)]
pub(crate) fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        ((e as u32) - 1) << 23
    };
    f32::from_bits(bits)
}

/// Half the value of an unsigned E4M3 scale byte (bias 7; 0 and 0x7F decode to 0).
#[inline(always)]
pub(crate) fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let exp = ((x >> 3) & 15) as i32;
    let man = (x & 7) as f32;
    let raw = if exp == 0 {
        man * pow2(-9)
    } else {
        (1.0 + man / 8.0) * pow2(exp - 7)
    };
    raw * 0.5
}

pub(crate) fn dequant_mxfp4(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(17).zip(out.chunks_exact_mut(32)) {
        let d = e8m0_half(b[0]);
        for j in 0..16 {
            y[j] = KVALUES_FP4[(b[1 + j] & 15) as usize] as f32 * d;
            y[j + 16] = KVALUES_FP4[(b[1 + j] >> 4) as usize] as f32 * d;
        }
    }
}

pub(crate) fn dequant_nvfp4(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(36).zip(out.chunks_exact_mut(64)) {
        for (s, y) in y.chunks_exact_mut(16).enumerate() {
            let d = ue4m3_half(b[s]);
            let q = &b[4 + 8 * s..12 + 8 * s];
            for j in 0..8 {
                y[j] = KVALUES_FP4[(q[j] & 15) as usize] as f32 * d;
                y[j + 8] = KVALUES_FP4[(q[j] >> 4) as usize] as f32 * d;
            }
        }
    }
}
