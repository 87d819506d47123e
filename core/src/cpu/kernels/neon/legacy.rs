//! NEON dot products of the 32-element-block formats with Q8_0 / Q8_1 activations: Q8_0, Q4_0,
//! Q4_1, Q5_0, Q5_1, IQ4_NL.
//!
//! Per block the weight codes become two vectors of 16 bytes (signed codes, or the unsigned
//! codes of Q4_1 / Q5_1, which fit in a signed byte). Their exact integer dot with the
//! activation codes lands in four i32 lanes; `d_w·d_a` times those lanes (converted to f32) is
//! added to four f32 lane sums with FMA, and the lanes are added at the end of the row. Each
//! kernel takes `N` activation rows and decodes every weight block once for all of them.

use super::util::*;
use crate::quant::grids::KVALUES_IQ4NL;
use std::arch::aarch64::*;

const Q8_0: usize = 34;
const Q8_1: usize = 36;

/// 16 packed nibbles → (low nibbles, high nibbles): elements 0..16 and 16..32 of a block.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    let q = ld_u8(p);
    (vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8(q, 4))
}

/// Bytes with value 16 where bit j of `qh` is set (the fifth bit of the Q5 codes).
#[inline(always)]
unsafe fn fifth_bits(qh: u32) -> (uint8x16_t, uint8x16_t) {
    let sixteen = vdupq_n_u8(16);
    (
        vandq_u8(bit_mask(qh as u16), sixteen),
        vandq_u8(bit_mask((qh >> 16) as u16), sixteen),
    )
}

/// The kernel body of the formats whose block decodes to 32 signed codes and whose activation
/// is Q8_0: `decode(x)` → (codes 0..16, codes 16..32, weight scale). `WIDE` widens every
/// product pair to i32 at once (for Q8_0, whose weight codes may be −128).
#[inline(always)]
unsafe fn signed_blocks<const N: usize, D: Dot, const WIDE: bool>(
    nb: usize,
    w: *const u8,
    block: usize,
    y: [*const u8; N],
    decode: impl Fn(*const u8) -> (int8x16_t, int8x16_t, f32),
) -> [f32; N] {
    // Two accumulators per row (even and odd blocks) halve the FMA latency chain.
    let mut acc = [[vdupq_n_f32(0.0); 2]; N];
    macro_rules! block {
        ($b:expr, $half:literal) => {{
            let b = $b;
            let (c0, c1, dw) = decode(w.add(b * block));
            for j in 0..N {
                let yb = y[j].add(b * Q8_0);
                let (y0, y1) = (ld_s8(yb.add(2)), ld_s8(yb.add(18)));
                let sum = if WIDE {
                    D::sum32_wide((c0, c1), y0, y1)
                } else {
                    D::sum32((c0, c1), y0, y1)
                };
                let d = dw * rd_f16(yb);
                acc[j][$half] = vfmaq_n_f32(acc[j][$half], vcvtq_f32_s32(sum), d);
            }
        }};
    }
    let mut b = 0;
    while b + 1 < nb {
        block!(b, 0);
        block!(b + 1, 1);
        b += 2;
    }
    if b < nb {
        block!(b, 0);
    }
    acc.map(|a| hsum2(a[0], a[1]))
}

pub(super) unsafe fn q8_0<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    signed_blocks::<N, D, true>(nb, w, 34, y, |x| {
        (ld_s8(x.add(2)), ld_s8(x.add(18)), rd_f16(x))
    })
}

pub(super) unsafe fn q4_0<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let eight = vdupq_n_s8(8);
    signed_blocks::<N, D, false>(nb, w, 18, y, |x| {
        let (lo, hi) = nibbles(x.add(2));
        (
            vsubq_s8(vreinterpretq_s8_u8(lo), eight),
            vsubq_s8(vreinterpretq_s8_u8(hi), eight),
            rd_f16(x),
        )
    })
}

pub(super) unsafe fn iq4_nl<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let table = ld_s8(KVALUES_IQ4NL.as_ptr() as *const u8);
    signed_blocks::<N, D, false>(nb, w, 18, y, |x| {
        let (lo, hi) = nibbles(x.add(2));
        (vqtbl1q_s8(table, lo), vqtbl1q_s8(table, hi), rd_f16(x))
    })
}

pub(super) unsafe fn q5_0<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let sixteen = vdupq_n_s8(16);
    signed_blocks::<N, D, false>(nb, w, 22, y, |x| {
        let (lo, hi) = nibbles(x.add(6));
        let (h0, h1) = fifth_bits(rd_u32(x.add(2)));
        (
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, h0)), sixteen),
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, h1)), sixteen),
            rd_f16(x),
        )
    })
}

/// Q4_1 / Q5_1 with Q8_1 activations: unsigned codes, `Σ d_w·d_a·Σu·q + m_w·s_a`. The min
/// terms go to a separate f32 sum per row, added to the lane sum at the end.
#[inline(always)]
unsafe fn unsigned_blocks<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    block: usize,
    y: [*const u8; N],
    decode: impl Fn(*const u8) -> (uint8x16_t, uint8x16_t),
) -> [f32; N] {
    let mut acc = [[vdupq_n_f32(0.0); 2]; N];
    let mut mins = [[0.0f32; 2]; N];
    macro_rules! block {
        ($b:expr, $half:literal) => {{
            let b = $b;
            let x = w.add(b * block);
            let (u0, u1) = decode(x);
            let (u0, u1) = (vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1));
            let (dw, mw) = (rd_f16(x), rd_f16(x.add(2)));
            for j in 0..N {
                let yb = y[j].add(b * Q8_1);
                let sum = D::sum32_small((u0, u1), ld_s8(yb.add(4)), ld_s8(yb.add(20)));
                acc[j][$half] = vfmaq_n_f32(acc[j][$half], vcvtq_f32_s32(sum), dw * rd_f16(yb));
                mins[j][$half] += mw * rd_f16(yb.add(2));
            }
        }};
    }
    let mut b = 0;
    while b + 1 < nb {
        block!(b, 0);
        block!(b + 1, 1);
        b += 2;
    }
    if b < nb {
        block!(b, 0);
    }
    let mut out = [0.0f32; N];
    for j in 0..N {
        out[j] = hsum2(acc[j][0], acc[j][1]) + (mins[j][0] + mins[j][1]);
    }
    out
}

pub(super) unsafe fn q4_1<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    // Codes ≤ 15: four products per i16 lane stay below 2¹⁵.
    unsigned_blocks::<N, D>(nb, w, 20, y, |x| nibbles(x.add(4)))
}

pub(super) unsafe fn q5_1<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    // Codes ≤ 31: four products per i16 lane ≤ 4·31·128 < 2¹⁵.
    unsigned_blocks::<N, D>(nb, w, 24, y, |x| {
        let (lo, hi) = nibbles(x.add(8));
        let (h0, h1) = fifth_bits(rd_u32(x.add(4)));
        (vorrq_u8(lo, h0), vorrq_u8(hi, h1))
    })
}
