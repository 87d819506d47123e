//! simd128 dot products of the k-quants (Q2_K … Q6_K) and IQ4_XS with Q8_K activations.
//!
//! A super-block is walked in 32-element chunks; each chunk decodes to two vectors of signed
//! codes (their true values: Q3_K's −4 and Q6_K's −32 are applied to the bytes, which stay in
//! i8 range), and [`dot32`] multiplies them with the activation codes and the chunk's two
//! per-16 (or one per-32) integer scales, so the super-block's integer sum is exact in four i32
//! lanes, as in the scalar kernels. Mins (Q2_K, Q4_K, Q5_K) are `Σ_g min_g·bsum_g` through the
//! activation's group sums. Per super-block and activation row, `d·d_a` times the integer
//! lanes and `−dmin·d_a` times the min lanes are added to four f32 lane sums.

use super::util::*;
use crate::quant::grids::KVALUES_IQ4NL;
use core::arch::wasm32::*;

const Q8K: usize = 292;

/// `Σ_g bsum_g·m_g` in four i32 lanes, with the 16 group sums of the activation block at `yb`
/// and `m` the 16 i16 multipliers (as two vectors of eight).
#[inline(always)]
unsafe fn bsum_dot(yb: *const u8, m: &[v128; 2]) -> v128 {
    i32x4_add(
        i32x4_dot_i16x8(ld(yb.add(260)), m[0]),
        i32x4_dot_i16x8(ld(yb.add(276)), m[1]),
    )
}

/// Adds `d·ints − dmin·mins` (per lane) to `acc`.
#[inline(always)]
fn accumulate(acc: v128, d: f32, ints: v128, dmin: f32, mins: v128) -> v128 {
    let acc = add_scaled(acc, d, ints);
    f32x4_sub(acc, f32x4_mul(f32x4_splat(dmin), f32x4_convert_i32x4(mins)))
}

/// `ints[j] += codes · (activation chunk at byte offset `at` of row j)` with scales `s0`, `s1`.
#[inline(always)]
unsafe fn add_chunk<const N: usize>(
    ints: &mut [v128; N],
    y: &[*const u8; N],
    at: usize,
    codes: &[v128; 2],
    s0: i16,
    s1: i16,
) {
    let (s0, s1) = (i16x8_splat(s0), i16x8_splat(s1));
    for j in 0..N {
        ints[j] = i32x4_add(ints[j], dot32(codes, y[j].add(at), s0, s1));
    }
}

pub(super) unsafe fn q2_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let m3 = u8x16_splat(3);
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 84);
        let mins8 = u8x16_shr(ld(x), 4);
        let mins = [
            u16x8_extend_low_u8x16(mins8),
            u16x8_extend_high_u8x16(mins8),
        ];
        let mut ints = [i32x4_splat(0); N];
        for h in 0..2 {
            let q = [ld(x.add(16 + 32 * h)), ld(x.add(32 + 32 * h))];
            for s in 0..4 {
                // Chunk k = groups 2k (bytes 0..16 of the half) and 2k+1 (bytes 16..32).
                let k = 4 * h + s;
                let shift = 2 * s as u32;
                let codes = q.map(|v| v128_and(u8x16_shr(v, shift), m3));
                let (s0, s1) = (*x.add(2 * k) & 15, *x.add(2 * k + 1) & 15);
                add_chunk(
                    &mut ints,
                    &y,
                    b * Q8K + 4 + 32 * k,
                    &codes,
                    s0 as i16,
                    s1 as i16,
                );
            }
        }
        let (d, dmin) = (rd_f16(x.add(80)), rd_f16(x.add(82)));
        for j in 0..N {
            let yb = y[j].add(b * Q8K);
            let yd = rd_f32(yb);
            acc[j] = accumulate(acc[j], d * yd, ints[j], dmin * yd, bsum_dot(yb, &mins));
        }
    }
    acc.map(hsum)
}

/// The 16 signed six-bit Q3_K scales (minus 32) from the 12 packed bytes at `p`.
#[inline(always)]
unsafe fn q3_k_scales(p: *const u8) -> [i16; 16] {
    let mut out = [0i16; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = (*p.add(i % 8) >> (4 * (i / 8))) & 15;
        let high = (*p.add(8 + i % 4) >> (2 * (i / 4))) & 3;
        *o = (low | high << 4) as i16 - 32;
    }
    out
}

pub(super) unsafe fn q3_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let m3 = u8x16_splat(3);
    let four = u8x16_splat(4);
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 110);
        let scales = q3_k_scales(x.add(96));
        let hmask = [ld(x), ld(x.add(16))];
        let mut ints = [i32x4_splat(0); N];
        for h in 0..2 {
            let q = [ld(x.add(32 + 32 * h)), ld(x.add(48 + 32 * h))];
            for s in 0..4 {
                let k = 4 * h + s;
                let shift = 2 * s as u32;
                let bit = u8x16_splat(1 << k);
                // code = low − 4, unless the chunk's bit of hmask is set.
                let code = |i: usize| {
                    let low = v128_and(u8x16_shr(q[i], shift), m3);
                    let set = i8x16_eq(v128_and(hmask[i], bit), bit);
                    i8x16_sub(v128_or(low, v128_and(set, four)), four)
                };
                let codes = [code(0), code(1)];
                let at = b * Q8K + 4 + 32 * k;
                add_chunk(&mut ints, &y, at, &codes, scales[2 * k], scales[2 * k + 1]);
            }
        }
        let d = rd_f16(x.add(108));
        for j in 0..N {
            let yd = rd_f32(y[j].add(b * Q8K));
            acc[j] = add_scaled(acc[j], d * yd, ints[j]);
        }
    }
    acc.map(hsum)
}

/// The eight six-bit scales and eight six-bit mins of Q4_K / Q5_K (12 packed bytes at `p`).
#[inline(always)]
unsafe fn k4_scales(p: *const u8) -> ([i16; 8], [i16; 8]) {
    let s = |i: usize| *p.add(i);
    let (mut sc, mut mn) = ([0i16; 8], [0i16; 8]);
    for j in 0..8 {
        let (a, m) = if j < 4 {
            (s(j) & 63, s(j + 4) & 63)
        } else {
            (
                (s(j + 4) & 15) | (s(j - 4) >> 6) << 4,
                (s(j + 4) >> 4) | (s(j) >> 6) << 4,
            )
        };
        sc[j] = a as i16;
        mn[j] = m as i16;
    }
    (sc, mn)
}

/// Q4_K and Q5_K: `high(x, c)` gives the fifth-bit bytes (16 or 0) of chunk pair `c` (elements
/// 64c..64c+32 and 64c+32..64c+64), or zeros for Q4_K.
#[inline(always)]
unsafe fn k4<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
    size: usize,
    qs_at: usize,
    high: impl Fn(*const u8, usize) -> [[v128; 2]; 2],
) -> [f32; N] {
    let m4 = u8x16_splat(0x0f);
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let x = w.add(b * size);
        let (sc, mn) = k4_scales(x.add(4));
        // Each 32-element sub-block's min applies to its two 16-element group sums.
        let mins = [
            i16x8(mn[0], mn[0], mn[1], mn[1], mn[2], mn[2], mn[3], mn[3]),
            i16x8(mn[4], mn[4], mn[5], mn[5], mn[6], mn[6], mn[7], mn[7]),
        ];
        let mut ints = [i32x4_splat(0); N];
        for c in 0..4 {
            let q = [ld(x.add(qs_at + 32 * c)), ld(x.add(qs_at + 32 * c + 16))];
            let [h_lo, h_hi] = high(x, c);
            let lo = [0, 1].map(|i| v128_or(v128_and(q[i], m4), h_lo[i]));
            let hi = [0, 1].map(|i| v128_or(u8x16_shr(q[i], 4), h_hi[i]));
            let at = b * Q8K + 4 + 64 * c;
            add_chunk(&mut ints, &y, at, &lo, sc[2 * c], sc[2 * c]);
            add_chunk(&mut ints, &y, at + 32, &hi, sc[2 * c + 1], sc[2 * c + 1]);
        }
        let (d, dmin) = (rd_f16(x), rd_f16(x.add(2)));
        for j in 0..N {
            let yb = y[j].add(b * Q8K);
            let yd = rd_f32(yb);
            acc[j] = accumulate(acc[j], d * yd, ints[j], dmin * yd, bsum_dot(yb, &mins));
        }
    }
    acc.map(hsum)
}

pub(super) unsafe fn q4_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let zero = i8x16_splat(0);
    k4(nb, w, y, 144, 16, |_, _| [[zero; 2]; 2])
}

pub(super) unsafe fn q5_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let sixteen = u8x16_splat(16);
    k4(nb, w, y, 176, 48, |x, c| {
        let qh = [ld(x.add(16)), ld(x.add(32))];
        let fifth = |bit: u8| {
            let bit = u8x16_splat(bit);
            qh.map(|v| v128_and(i8x16_eq(v128_and(v, bit), bit), sixteen))
        };
        [fifth(1 << (2 * c)), fifth(2 << (2 * c))]
    })
}

pub(super) unsafe fn q6_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let m4 = u8x16_splat(0x0f);
    let m30 = u8x16_splat(0x30);
    let thirty_two = u8x16_splat(32);
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 210);
        let mut ints = [i32x4_splat(0); N];
        for h in 0..2 {
            let ql = [0, 16, 32, 48].map(|o| ld(x.add(64 * h + o)));
            let qh = [ld(x.add(128 + 32 * h)), ld(x.add(144 + 32 * h))];
            // Chunk s of the half: low bits from ql (low nibbles of bytes 0..32, of 32..64,
            // then the high nibbles), the two high bits from qh at bit 2s.
            for s in 0..4 {
                let code = |i: usize| {
                    let l = ql[2 * (s % 2) + i];
                    let low = if s < 2 {
                        v128_and(l, m4)
                    } else {
                        u8x16_shr(l, 4)
                    };
                    let high = match s {
                        0 => i8x16_shl(qh[i], 4),
                        1 => i8x16_shl(qh[i], 2),
                        2 => qh[i],
                        _ => u8x16_shr(qh[i], 2),
                    };
                    i8x16_sub(v128_or(low, v128_and(high, m30)), thirty_two)
                };
                let codes = [code(0), code(1)];
                let k = 4 * h + s;
                let sc = |g: usize| *x.add(192 + g) as i8 as i16;
                let at = b * Q8K + 4 + 32 * k;
                add_chunk(&mut ints, &y, at, &codes, sc(2 * k), sc(2 * k + 1));
            }
        }
        let d = rd_f16(x.add(208));
        for j in 0..N {
            let yd = rd_f32(y[j].add(b * Q8K));
            acc[j] = add_scaled(acc[j], d * yd, ints[j]);
        }
    }
    acc.map(hsum)
}

pub(super) unsafe fn iq4_xs<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let table = ld(KVALUES_IQ4NL.as_ptr() as *const u8);
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..nb {
        let x = w.add(b * 136);
        let scales_h = rd_u16(x.add(2)) as u32;
        let scales_l = rd_u32(x.add(4));
        let mut ints = [i32x4_splat(0); N];
        for ib in 0..8 {
            let low = (scales_l >> (4 * ib)) & 15;
            let high = (scales_h >> (2 * ib)) & 3;
            let ls = (low | high << 4) as i16 - 32;
            let u = nibbles(x.add(8 + 16 * ib));
            let codes = u.map(|v| i8x16_swizzle(table, v));
            add_chunk(&mut ints, &y, b * Q8K + 4 + 32 * ib, &codes, ls, ls);
        }
        let d = rd_f16(x);
        for j in 0..N {
            let yd = rd_f32(y[j].add(b * Q8K));
            acc[j] = add_scaled(acc[j], d * yd, ints[j]);
        }
    }
    acc.map(hsum)
}
