//! NEON dot products of the k-quants (Q2_K … Q6_K) and IQ4_XS with Q8_K activations.
//!
//! A super-block decodes to eight 32-byte chunks of codes; chunk k covers elements 32k..32k+32,
//! i.e. the 16-element groups 2k and 2k+1. Unlike x86 (whose `maddubs` needs an unsigned
//! operand), NEON multiplies signed bytes, so the codes are decoded to their signed values
//! (Q3_K: −4..3, Q6_K: −32..31) and need no offset correction. Per group the products are
//! summed (in i16 lanes, or i32 lanes with `sdot`; see `util::Dot`) and multiplied by the
//! group's integer scale into four i32 lanes, so a block's integer sum equals the scalar
//! kernel's exactly. Mins (Q2_K, Q4_K, Q5_K) are `Σ_g min_g·bsum_g` from the activation's group
//! sums. Per block and activation row, `d·d_a` times the integer lanes and `−dmin·d_a` times the
//! min lanes are added to four f32 lane sums with FMA; the lanes are added at the end of the
//! row.

use super::util::*;
use crate::quant::grids::KVALUES_IQ4NL;
use crate::quant::kquants::{k4_scale_min, q3_k_scales};
use std::arch::aarch64::*;

const Q8K: usize = 292;

/// Activation block `b` of row `y`: (d, pointer to its 256 codes).
#[inline(always)]
unsafe fn act(y: *const u8, b: usize) -> (f32, *const u8) {
    let yb = y.add(b * Q8K);
    (rd_f32(yb), yb.add(4))
}

/// The sixteen group sums of activation block `b` of row `y`.
#[inline(always)]
unsafe fn bsums(y: *const u8, b: usize) -> (int16x8_t, int16x8_t) {
    let p = y.add(b * Q8K + 260);
    (ld_s16(p), ld_s16(p.add(16)))
}

/// Adds `d·ints − dmin·mins` (per lane) to `acc`.
#[inline(always)]
unsafe fn accumulate(
    acc: float32x4_t,
    d: f32,
    ints: int32x4_t,
    dmin: f32,
    mins: int32x4_t,
) -> float32x4_t {
    let acc = vfmaq_n_f32(acc, vcvtq_f32_s32(ints), d);
    vfmaq_n_f32(acc, vcvtq_f32_s32(mins), -dmin)
}

/// `Σ a·b` of two i16x8 pairs into four i32 lanes (exact).
#[inline(always)]
unsafe fn dot_s16(a: (int16x8_t, int16x8_t), b: (int16x8_t, int16x8_t)) -> int32x4_t {
    let m = vmull_s16(vget_low_s16(a.0), vget_low_s16(b.0));
    let m = vmlal_high_s16(m, a.0, b.0);
    let m = vmlal_s16(m, vget_low_s16(a.1), vget_low_s16(b.1));
    vmlal_high_s16(m, a.1, b.1)
}

/// `(v >> shift) & 3`, the 2-bit field at `shift` of every byte.
#[inline(always)]
unsafe fn bits2(v: uint8x16_t, shift: usize) -> uint8x16_t {
    vandq_u8(vshlq_u8(v, vdupq_n_s8(-(shift as i8))), vdupq_n_u8(3))
}

/// Adds the two scaled 16-element groups of chunk `k` (codes `c0`, `c1`) to `ints` for every
/// activation row. Each i16 lane holds two products (|code|·|q| ≤ 32·128).
#[inline(always)]
unsafe fn chunk<const N: usize, D: Dot>(
    ints: &mut [int32x4_t; N],
    y: &[*const u8; N],
    at: usize,
    c: (int8x16_t, int8x16_t),
    s: (i16, i16),
) {
    for j in 0..N {
        let yq = y[j].add(at);
        ints[j] = D::scaled16(ints[j], c.0, ld_s8(yq), s.0);
        ints[j] = D::scaled16(ints[j], c.1, ld_s8(yq.add(16)), s.1);
    }
}

pub(super) unsafe fn q2_k<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 84);
        let sc = ld_u8(x);
        let scales = vandq_u8(sc, vdupq_n_u8(0x0f));
        let mut s = [0u8; 16];
        vst1q_u8(s.as_mut_ptr(), scales);
        let mn = vshrq_n_u8(sc, 4);
        let mins = (
            vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn))),
            vreinterpretq_s16_u16(vmovl_high_u8(mn)),
        );
        let mut ints = [vdupq_n_s32(0); N];
        for h in 0..2 {
            let (q0, q1) = (ld_u8(x.add(16 + 32 * h)), ld_u8(x.add(32 + 32 * h)));
            for sh in 0..4 {
                let k = 4 * h + sh;
                let c = (
                    vreinterpretq_s8_u8(bits2(q0, 2 * sh)),
                    vreinterpretq_s8_u8(bits2(q1, 2 * sh)),
                );
                let sk = (s[2 * k] as i16, s[2 * k + 1] as i16);
                chunk::<N, D>(&mut ints, &y, b * Q8K + 4 + 32 * k, c, sk);
            }
        }
        let (d, dmin) = (rd_f16(x.add(80)), rd_f16(x.add(82)));
        for j in 0..N {
            let (yd, _) = act(y[j], b);
            let m = dot_s16(bsums(y[j], b), mins);
            acc[j] = accumulate(acc[j], d * yd, ints[j], dmin * yd, m);
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

pub(super) unsafe fn q3_k<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let four = vdupq_n_u8(4);
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 110);
        let s = q3_k_scales(std::slice::from_raw_parts(x.add(96), 12));
        let (hm0, hm1) = (ld_u8(x), ld_u8(x.add(16)));
        let mut ints = [vdupq_n_s32(0); N];
        for h in 0..2 {
            let (q0, q1) = (ld_u8(x.add(32 + 32 * h)), ld_u8(x.add(48 + 32 * h)));
            for sh in 0..4 {
                let k = 4 * h + sh;
                let bit = vdupq_n_u8(1 << k);
                // c = low − 4, unless the high bit is set: (low | 4·hbit) − 4.
                let code = |q: uint8x16_t, hm: uint8x16_t| {
                    let high = vandq_u8(vtstq_u8(hm, bit), four);
                    let u = vorrq_u8(bits2(q, 2 * sh), high);
                    vsubq_s8(vreinterpretq_s8_u8(u), vreinterpretq_s8_u8(four))
                };
                let c = (code(q0, hm0), code(q1, hm1));
                let sk = (s[2 * k] as i16, s[2 * k + 1] as i16);
                chunk::<N, D>(&mut ints, &y, b * Q8K + 4 + 32 * k, c, sk);
            }
        }
        let d = rd_f16(x.add(108));
        for j in 0..N {
            let (yd, _) = act(y[j], b);
            acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(ints[j]), d * yd);
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

/// Q4_K and Q5_K: `high(x, c)` gives the fifth-bit bytes (16) of chunk pair c (low-nibble and
/// high-nibble halves, 16 bytes each), or zero. Codes ≤ 31, so four products per i16 lane stay
/// below 2¹⁵.
#[inline(always)]
unsafe fn k4<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
    size: usize,
    qs_at: usize,
    high: impl Fn(*const u8, usize) -> [uint8x16_t; 4],
) -> [f32; N] {
    let m4 = vdupq_n_u8(0x0f);
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * size);
        let packed = std::slice::from_raw_parts(x.add(4), 12);
        let mut sc = [0i16; 8];
        let mut mn = [0i16; 8];
        for j in 0..8 {
            let (s, m) = k4_scale_min(j, packed);
            sc[j] = s as i16;
            mn[j] = m as i16;
        }
        let mins = vld1q_s16(mn.as_ptr());
        let mut ints = [vdupq_n_s32(0); N];
        for c in 0..4 {
            let (q0, q1) = (
                ld_u8(x.add(qs_at + 32 * c)),
                ld_u8(x.add(qs_at + 32 * c + 16)),
            );
            let h = high(x, c);
            let s8 = |v: uint8x16_t| vreinterpretq_s8_u8(v);
            let lo = (
                s8(vorrq_u8(vandq_u8(q0, m4), h[0])),
                s8(vorrq_u8(vandq_u8(q1, m4), h[1])),
            );
            let hi = (
                s8(vorrq_u8(vshrq_n_u8(q0, 4), h[2])),
                s8(vorrq_u8(vshrq_n_u8(q1, 4), h[3])),
            );
            for j in 0..N {
                let yq = y[j].add(b * Q8K + 4 + 64 * c);
                let (y0, y1) = (ld_s8(yq), ld_s8(yq.add(16)));
                ints[j] = D::scaled32_small(ints[j], lo, y0, y1, sc[2 * c]);
                let (y2, y3) = (ld_s8(yq.add(32)), ld_s8(yq.add(48)));
                ints[j] = D::scaled32_small(ints[j], hi, y2, y3, sc[2 * c + 1]);
            }
        }
        let (d, dmin) = (rd_f16(x), rd_f16(x.add(2)));
        for j in 0..N {
            let (yd, _) = act(y[j], b);
            // Sums of group pairs 2j, 2j+1: one per 32 elements, aligned with the mins.
            let (b0, b1) = bsums(y[j], b);
            let pairs = vpaddq_s16(b0, b1);
            let m = vmull_s16(vget_low_s16(pairs), vget_low_s16(mins));
            let m = vmlal_high_s16(m, pairs, mins);
            acc[j] = accumulate(acc[j], d * yd, ints[j], dmin * yd, m);
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

pub(super) unsafe fn q4_k<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let zero = vdupq_n_u8(0);
    k4::<N, D>(nb, w, y, 144, 16, |_, _| [zero; 4])
}

pub(super) unsafe fn q5_k<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let sixteen = vdupq_n_u8(16);
    k4::<N, D>(nb, w, y, 176, 48, |x, c| {
        let (qh0, qh1) = (ld_u8(x.add(16)), ld_u8(x.add(32)));
        let (b_lo, b_hi) = (vdupq_n_u8(1 << (2 * c)), vdupq_n_u8(2 << (2 * c)));
        let bit = |qh: uint8x16_t, m: uint8x16_t| vandq_u8(vtstq_u8(qh, m), sixteen);
        [
            bit(qh0, b_lo),
            bit(qh1, b_lo),
            bit(qh0, b_hi),
            bit(qh1, b_hi),
        ]
    })
}

pub(super) unsafe fn q6_k<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let m4 = vdupq_n_u8(0x0f);
    let m30 = vdupq_n_u8(0x30);
    let off = vdupq_n_s8(32);
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 210);
        let mut s = [0i8; 16];
        vst1q_s8(s.as_mut_ptr(), ld_s8(x.add(192)));
        let mut ints = [vdupq_n_s32(0); N];
        for h in 0..2 {
            // Per 16-byte half i of the 32-byte rows: c = (nibble | two high bits << 4) − 32.
            for i in 0..2 {
                let ql0 = ld_u8(x.add(64 * h + 16 * i));
                let ql1 = ld_u8(x.add(64 * h + 32 + 16 * i));
                let qh = ld_u8(x.add(128 + 32 * h + 16 * i));
                let code = |nib: uint8x16_t, hb: uint8x16_t| {
                    vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nib, vandq_u8(hb, m30))), off)
                };
                let c = [
                    code(vandq_u8(ql0, m4), vshlq_n_u8(qh, 4)),
                    code(vandq_u8(ql1, m4), vshlq_n_u8(qh, 2)),
                    code(vshrq_n_u8(ql0, 4), qh),
                    code(vshrq_n_u8(ql1, 4), vshrq_n_u8(qh, 2)),
                ];
                for (sh, c) in c.iter().enumerate() {
                    // Chunk k = 4h + sh; this half is its group 2k + i.
                    let g = 2 * (4 * h + sh) + i;
                    for j in 0..N {
                        let yq = ld_s8(y[j].add(b * Q8K + 4 + 16 * g));
                        ints[j] = D::scaled16(ints[j], *c, yq, s[g] as i16);
                    }
                }
            }
        }
        let d = rd_f16(x.add(208));
        for j in 0..N {
            let (yd, _) = act(y[j], b);
            acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(ints[j]), d * yd);
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

pub(super) unsafe fn iq4_xs<const N: usize, D: Dot>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let table = ld_s8(KVALUES_IQ4NL.as_ptr() as *const u8);
    let m4 = vdupq_n_u8(0x0f);
    let mut acc = [vdupq_n_f32(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 136);
        let scales_h = rd_u16(x.add(2)) as u32;
        let scales_l = rd_u32(x.add(4));
        let mut ints = [vdupq_n_s32(0); N];
        for ib in 0..8 {
            let low = (scales_l >> (4 * ib)) & 15;
            let high = (scales_h >> (2 * ib)) & 3;
            let ls = (low | high << 4) as i32 - 32;
            let q = ld_u8(x.add(8 + 16 * ib));
            let c0 = vqtbl1q_s8(table, vandq_u8(q, m4));
            let c1 = vqtbl1q_s8(table, vshrq_n_u8(q, 4));
            for j in 0..N {
                // Codes up to |−127|: two products per i16 lane, then widened.
                let yq = y[j].add(b * Q8K + 4 + 32 * ib);
                let p = D::sum32((c0, c1), ld_s8(yq), ld_s8(yq.add(16)));
                ints[j] = vmlaq_n_s32(ints[j], p, ls);
            }
        }
        let d = rd_f16(x);
        for j in 0..N {
            let (yd, _) = act(y[j], b);
            acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(ints[j]), d * yd);
        }
    }
    acc.map(|a| vaddvq_f32(a))
}
