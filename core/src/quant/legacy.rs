//! The 32-element "legacy" formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the activation format Q8_1.
//!
//! Layouts (byte offsets in a block; `d`/`m` are f16):
//!
//! | type | bytes | layout |
//! |---|---|---|
//! | Q4_0 | 18 | `d` @0, `qs[16]` @2: element j in the low nibble of `qs[j]`, j+16 in the high one |
//! | Q4_1 | 20 | `d` @0, `m` @2, `qs[16]` @4 |
//! | Q5_0 | 22 | `d` @0, `qh` u32 @2 (bit j = fifth bit of element j), `qs[16]` @6 |
//! | Q5_1 | 24 | `d` @0, `m` @2, `qh` @4, `qs[16]` @8 |
//! | Q8_0 | 34 | `d` @0, `qs[32]` i8 @2 |
//! | Q8_1 | 36 | `d` @0, `s = d·Σq` @2, `qs[32]` i8 @4 |
//!
//! Every value is `(q as f32)·d` (plus `m` for the `_1` types), computed in that order, as ggml's
//! reference dequantizers do; this makes the results bit-identical to ggml.

use super::bytes::f16_at;

pub(crate) const QK: usize = 32;

pub(crate) fn dequant_q4_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let qs = &b[2..18];
        for j in 0..16 {
            y[j] = ((qs[j] & 15) as i32 - 8) as f32 * d;
            y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub(crate) fn dequant_q4_1(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qs = &b[4..20];
        for j in 0..16 {
            y[j] = (qs[j] & 15) as f32 * d + m;
            y[j + 16] = (qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// The 5-bit codes of a Q5 block: low nibbles from `qs`, fifth bits from `qh`.
#[inline(always)]
pub(crate) fn q5_codes(qh: u32, qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 15) | (((qh >> j) & 1) as u8) << 4;
        q[j + 16] = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
    }
    q
}

pub(crate) fn dequant_q5_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(22).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let q = q5_codes(qh, &b[6..22]);
        for (y, &q) in y.iter_mut().zip(q.iter()) {
            *y = (q as i32 - 16) as f32 * d;
        }
    }
}

pub(crate) fn dequant_q5_1(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(24).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let q = q5_codes(qh, &b[8..24]);
        for (y, &q) in y.iter_mut().zip(q.iter()) {
            *y = q as f32 * d + m;
        }
    }
}

pub(crate) fn dequant_q8_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(34).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[2..34]) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// ggml has no Q8_1 dequantizer (it is only an activation format); this applies the obvious
/// `q·d` so that activation rows can be inspected.
pub(crate) fn dequant_q8_1(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(36).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[4..36]) {
            *y = q as i8 as f32 * d;
        }
    }
}
