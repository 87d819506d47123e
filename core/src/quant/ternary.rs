//! Ternary and 1/2-bit formats: TQ1_0, TQ2_0 (256 elements) and Q1_0 (128), Q2_0 (64).
//!
//! | type | bytes | layout |
//! |---|---|---|
//! | TQ1_0 | 54 | `qs[48]` @0 (5 trits per byte), `qh[4]` @48 (4 trits per byte), `d` @52 |
//! | TQ2_0 | 66 | `qs[64]` @0 (4 × 2 bits per byte), `d` @64 |
//! | Q1_0 | 18 | `d` @0, `qs[16]` @2: bit j set → +d, clear → −d |
//! | Q2_0 | 18 | `d` @0, `qs[16]` @2: 2-bit codes 0..3 → −1, 0, +1, +2 times d |
//!
//! TQ1_0 packs trits as a base-3 fixed-point fraction: trit n of byte b is the integer part of
//! `3 · frac(b · 3^n / 256)`, i.e. `((b · 3^n mod 256) · 3) >> 8`.

use super::bytes::f16_at;
use super::kquants::QK_K;

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Trit `n` (0, 1 or 2) of a TQ1_0 byte.
#[inline(always)]
pub(crate) fn tq1_trit(byte: u8, n: usize) -> i32 {
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i32
}

/// The 256 ternary values (−1, 0, +1) of a TQ1_0 block, in element order.
#[inline(always)]
pub(crate) fn tq1_values(b: &[u8]) -> [i8; 256] {
    let mut v = [0i8; 256];
    let mut at = 0;
    let mut put = |bytes: &[u8], digits: usize| {
        for n in 0..digits {
            for &byte in bytes {
                v[at] = (tq1_trit(byte, n) - 1) as i8;
                at += 1;
            }
        }
    };
    put(&b[0..32], 5);
    put(&b[32..48], 5);
    put(&b[48..52], 4);
    v
}

pub(crate) fn dequant_tq1_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(54).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 52);
        for (y, &t) in y.iter_mut().zip(tq1_values(b).iter()) {
            *y = t as f32 * d;
        }
    }
}

/// The ternary value (−1, 0, +1; code 3 gives +2) of TQ2_0 element `i`.
#[inline(always)]
pub(crate) fn tq2_value(qs: &[u8], i: usize) -> i32 {
    // 128-element halves; within one, 4 rows of 32 elements take bit pairs 0..3 of 32 bytes.
    let (half, row, m) = (i / 128, (i % 128) / 32, i % 32);
    ((qs[32 * half + m] >> (2 * row)) & 3) as i32 - 1
}

pub(crate) fn dequant_tq2_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(66).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 64);
        for (i, y) in y.iter_mut().enumerate() {
            *y = tq2_value(&b[0..64], i) as f32 * d;
        }
    }
}

pub(crate) fn dequant_q1_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(128)) {
        let d = f16_at(b, 0);
        for (j, y) in y.iter_mut().enumerate() {
            *y = if (b[2 + j / 8] >> (j % 8)) & 1 != 0 {
                d
            } else {
                -d
            };
        }
    }
}

/// The signed 2-bit value (−1..+2) of Q2_0 element `j`.
#[inline(always)]
pub(crate) fn q2_0_value(qs: &[u8], j: usize) -> i32 {
    ((qs[j / 4] >> (2 * (j % 4))) & 3) as i32 - 1
}

pub(crate) fn dequant_q2_0(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(64)) {
        let d = f16_at(b, 0);
        for (j, y) in y.iter_mut().enumerate() {
            *y = q2_0_value(&b[2..18], j) as f32 * d;
        }
    }
}
