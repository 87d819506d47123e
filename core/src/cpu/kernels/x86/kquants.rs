//! AVX2 dot products of the k-quants (Q2_K … Q6_K) and IQ4_XS with Q8_K activations.
//!
//! A super-block decodes to eight 32-byte chunks of small unsigned codes `u = c + off` (the
//! offset makes `maddubs` usable: unsigned × signed bytes); chunk k covers elements 32k..32k+32,
//! i.e. the 16-element groups 2k and 2k+1. `maddubs` then `madd` with the groups' integer scales
//! gives exact i32 lane sums of `scale·u·q`; the offset comes back out exactly through the
//! activation's group sums (`off·Σ_g scale_g·bsum_g`), so the block's integer sum equals the
//! scalar kernel's. Mins (Q2_K, Q4_K, Q5_K) are `Σ_g min_g·bsum_g`. Per block and activation row,
//! `d·d_a` times the integer lanes and `−dmin·d_a` times the min lanes are added to eight f32
//! lane sums with FMA.

use super::util::*;
use crate::quant::grids::KVALUES_IQ4NL;
use std::arch::x86_64::*;

pub(super) const Q8K: usize = 292;

/// Activation block `b` of row `y`: (d, codes pointer, bsums vector).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn act(y: *const u8, b: usize) -> (f32, *const u8, __m256i) {
    let yb = y.add(b * Q8K);
    (rd_f32(yb), yb.add(4), ld256(yb.add(260)))
}

/// Adds `d·ints − dmin·mins` (per lane) to `acc`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn accumulate(
    acc: __m256,
    d: f32,
    ints: __m256i,
    dmin: f32,
    mins: __m256i,
) -> __m256 {
    let acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(ints), acc);
    _mm256_fmadd_ps(_mm256_set1_ps(-dmin), _mm256_cvtepi32_ps(mins), acc)
}

/// Eight u8 values widened to 16 i16 lanes, each value twice (lanes 2j, 2j+1 = v[j]): a
/// per-32-element quantity aligned with the 16 group sums.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn pairs_u8(v: u64) -> __m256i {
    let w = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(v as i64));
    _mm256_set_m128i(_mm_unpackhi_epi16(w, w), _mm_unpacklo_epi16(w, w))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q2_k<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    if W {
        return super::kquants512::q2_k::<N>(nb, w, y);
    }
    let m4 = _mm_set1_epi8(0x0f);
    let m3 = _mm256_set1_epi8(3);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 84);
        prefetch_ahead(x, 84);
        let sc = ld128(x);
        let scales = _mm256_cvtepu8_epi16(_mm_and_si128(sc, m4));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        let halves = split_scales(scales);
        let mut ints = [_mm256_setzero_si256(); N];
        for h in 0..2 {
            let q = ld256(x.add(16 + 32 * h));
            for s in 0..4 {
                let k = 4 * h + s;
                let u = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s as i32)), m3);
                let sv = chunk_scales(&halves, k);
                for j in 0..N {
                    let yq = ld256(y[j].add(b * Q8K + 4 + 32 * k));
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, yq), sv);
                    ints[j] = _mm256_add_epi32(ints[j], p);
                }
            }
        }
        let (d, dmin) = (rd_f16(x.add(80)), rd_f16(x.add(82)));
        for j in 0..N {
            let (yd, _, bsums) = act(y[j], b);
            let m = _mm256_madd_epi16(bsums, mins);
            acc[j] = accumulate(acc[j], d * yd, ints[j], dmin * yd, m);
        }
    }
    acc.map(|a| hsum_ps(a))
}

/// The 16 signed Q3_K scales (minus 32) as i16 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q3_k_scales(p: *const u8) -> __m256i {
    let (a0, a1, a2) = (rd_u32(p), rd_u32(p.add(4)), rd_u32(p.add(8)));
    let (lo, hi) = (0x0f0f_0f0fu32, 0x0303_0303u32);
    let w0 = (a0 & lo) | ((a2 & hi) << 4);
    let w1 = (a1 & lo) | (((a2 >> 2) & hi) << 4);
    let w2 = ((a0 >> 4) & lo) | (((a2 >> 4) & hi) << 4);
    let w3 = ((a1 >> 4) & lo) | (((a2 >> 6) & hi) << 4);
    let v = _mm_set_epi32(w3 as i32, w2 as i32, w1 as i32, w0 as i32);
    _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q3_k<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    if W {
        return super::kquants512::q3_k::<N>(nb, w, y);
    }
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 110);
        prefetch_ahead(x, 110);
        let scales = q3_k_scales(x.add(96));
        let halves = split_scales(scales);
        let hmask = ld256(x);
        let mut ints = [_mm256_setzero_si256(); N];
        for h in 0..2 {
            let q = ld256(x.add(32 + 32 * h));
            for s in 0..4 {
                let k = 4 * h + s;
                let low =
                    _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s as i32)), m3);
                let bit = _mm256_set1_epi8(1i8.wrapping_shl(k as u32));
                let high = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
                // u = c + 4: the high bit set means "no −4".
                let u = _mm256_or_si256(low, _mm256_and_si256(high, four));
                let sv = chunk_scales(&halves, k);
                for j in 0..N {
                    let yq = ld256(y[j].add(b * Q8K + 4 + 32 * k));
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, yq), sv);
                    ints[j] = _mm256_add_epi32(ints[j], p);
                }
            }
        }
        let d = rd_f16(x.add(108));
        for j in 0..N {
            let (yd, _, bsums) = act(y[j], b);
            let off = _mm256_slli_epi32(_mm256_madd_epi16(bsums, scales), 2);
            let exact = _mm256_sub_epi32(ints[j], off);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(exact), acc[j]);
        }
    }
    acc.map(|a| hsum_ps(a))
}

/// The eight 6-bit scales and eight 6-bit mins of Q4_K / Q5_K, one byte each.
#[inline(always)]
pub(super) unsafe fn k4_scales(p: *const u8) -> (u64, u64) {
    let (s0, s1, s2) = (rd_u32(p), rd_u32(p.add(4)), rd_u32(p.add(8)));
    let (m6, m4, m2) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
    let sc_lo = s0 & m6;
    let mn_lo = s1 & m6;
    let sc_hi = (s2 & m4) | (((s0 >> 6) & m2) << 4);
    let mn_hi = ((s2 >> 4) & m4) | (((s1 >> 6) & m2) << 4);
    (
        sc_lo as u64 | (sc_hi as u64) << 32,
        mn_lo as u64 | (mn_hi as u64) << 32,
    )
}

/// Q4_K and Q5_K: `high(x, c)` gives the fifth-bit bytes (16) of chunk pair c, or zero.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn k4<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
    size: usize,
    qs_at: usize,
    high: impl Fn(*const u8, usize) -> (__m256i, __m256i),
) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * size);
        prefetch_ahead(x, size);
        let (sc, mn) = k4_scales(x.add(4));
        let mins = pairs_u8(mn);
        let mut ints = [_mm256_setzero_si256(); N];
        for c in 0..4 {
            let q = ld256(x.add(qs_at + 32 * c));
            let (h_lo, h_hi) = high(x, c);
            let lo = _mm256_or_si256(_mm256_and_si256(q, m4), h_lo);
            let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h_hi);
            let s_lo = _mm256_set1_epi16(((sc >> (16 * c)) & 0xff) as i16);
            let s_hi = _mm256_set1_epi16(((sc >> (16 * c + 8)) & 0xff) as i16);
            for j in 0..N {
                let yq = y[j].add(b * Q8K + 4 + 64 * c);
                let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld256(yq)), s_lo);
                let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ld256(yq.add(32))), s_hi);
                ints[j] = _mm256_add_epi32(ints[j], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        let (d, dmin) = (rd_f16(x), rd_f16(x.add(2)));
        for j in 0..N {
            let (yd, _, bsums) = act(y[j], b);
            let m = _mm256_madd_epi16(bsums, mins);
            acc[j] = accumulate(acc[j], d * yd, ints[j], dmin * yd, m);
        }
    }
    acc.map(|a| hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q4_k<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    if W {
        return super::kquants512::q4_k::<N>(nb, w, y);
    }
    let zero = _mm256_setzero_si256();
    k4(nb, w, y, 144, 16, |_, _| (zero, zero))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q5_k<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    if W {
        return super::kquants512::q5_k::<N>(nb, w, y);
    }
    let sixteen = _mm256_set1_epi8(16);
    k4(nb, w, y, 176, 48, |x, c| {
        let qh = ld256(x.add(16));
        let b_lo = _mm256_set1_epi8(1i8.wrapping_shl(2 * c as u32));
        let b_hi = _mm256_set1_epi8(2i8.wrapping_shl(2 * c as u32));
        let lo = _mm256_cmpeq_epi8(_mm256_and_si256(qh, b_lo), b_lo);
        let hi = _mm256_cmpeq_epi8(_mm256_and_si256(qh, b_hi), b_hi);
        (_mm256_and_si256(lo, sixteen), _mm256_and_si256(hi, sixteen))
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q6_k<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    if W {
        return super::kquants512::q6_k::<N>(nb, w, y);
    }
    let m4 = _mm256_set1_epi8(0x0f);
    let m30 = _mm256_set1_epi8(0x30);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 210);
        prefetch_ahead(x, 210);
        let scales = _mm256_cvtepi8_epi16(ld128(x.add(192)));
        let halves = split_scales(scales);
        let mut ints = [_mm256_setzero_si256(); N];
        for h in 0..2 {
            let ql0 = ld256(x.add(64 * h));
            let ql1 = ld256(x.add(64 * h + 32));
            let qh = ld256(x.add(128 + 32 * h));
            // u = c + 32: low nibble (or high nibble) | two high bits << 4.
            let u = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_and_si256(qh, m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
                ),
            ];
            for (s, u) in u.iter().enumerate() {
                let k = 4 * h + s;
                let sv = chunk_scales(&halves, k);
                for j in 0..N {
                    let yq = ld256(y[j].add(b * Q8K + 4 + 32 * k));
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*u, yq), sv);
                    ints[j] = _mm256_add_epi32(ints[j], p);
                }
            }
        }
        let d = rd_f16(x.add(208));
        for j in 0..N {
            let (yd, _, bsums) = act(y[j], b);
            let off = _mm256_slli_epi32(_mm256_madd_epi16(bsums, scales), 5);
            let exact = _mm256_sub_epi32(ints[j], off);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(exact), acc[j]);
        }
    }
    acc.map(|a| hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq4_xs<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let table = _mm256_broadcastsi128_si256(ld128(KVALUES_IQ4NL.as_ptr() as *const u8));
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * 136);
        prefetch_ahead(x, 136);
        let scales_h = rd_u16(x.add(2)) as u32;
        let scales_l = rd_u32(x.add(4));
        let mut ints = [_mm256_setzero_si256(); N];
        for ib in 0..8 {
            let low = (scales_l >> (4 * ib)) & 15;
            let high = (scales_h >> (2 * ib)) & 3;
            let ls = _mm256_set1_epi16((low | high << 4) as i16 - 32);
            let codes = _mm256_shuffle_epi8(table, nibbles(x.add(8 + 16 * ib)));
            let abs = _mm256_sign_epi8(codes, codes);
            for j in 0..N {
                let yq = ld256(y[j].add(b * Q8K + 4 + 32 * ib));
                let p = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(yq, codes));
                ints[j] = _mm256_add_epi32(ints[j], _mm256_madd_epi16(p, ls));
            }
        }
        let d = rd_f16(x);
        for j in 0..N {
            let yd = rd_f32(y[j].add(b * Q8K));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(ints[j]), acc[j]);
        }
    }
    acc.map(|a| hsum_ps(a))
}
