//! The k-quant kernels (Q2_K … Q6_K) of the AVX-512 build, on 512-bit vectors.
//!
//! Same arithmetic as [`super::kquants`]: unsigned codes `u` times Q8_K activation bytes with
//! `maddubs`, per-16-element (or per-32) integer scales through `madd`, offsets and mins back
//! out through the activation's group sums. The difference is width: one 512-bit vector holds
//! two adjacent 32-element chunks (64 elements), so each multiply instruction does twice the
//! work, which is what prompt processing needs (it is compute-bound; these CPUs issue 512-bit
//! integer multiplies at the same rate as 256-bit ones). The scale vector of a chunk pair comes
//! from one `vpermw` of the block's scales, and `vpdpwssd` does the scaling multiply and the
//! accumulate in one instruction.
//!
//! The 16 i32 lanes of a block's integer sum fold to the 8 lanes the 256-bit kernel produces
//! (lane i + lane i+8 adds the same bytes the narrow kernel's lane i sums), and the rest of a
//! block — scale factors, mins, f32 accumulation, the final horizontal sum — is the narrow
//! kernel's code, so both builds return bit-identical results.

use super::kquants::{accumulate, act, k4_scales, pairs_u8, q3_k_scales, Q8K};
use super::util::*;
use std::arch::x86_64::*;

#[inline(always)]
pub(super) unsafe fn ld512(p: *const u8) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// i16 lane indices for `vpermw`: lane i of chunk pair `p` takes scale `4p + i/8` (16 scales of
/// 16 elements each: Q2_K, Q3_K, Q6_K).
static PICK16: [[u16; 32]; 4] = pick(4, 8);
/// Lane i of chunk pair `c` takes scale `2c + i/16` (8 scales of 32 elements: Q4_K, Q5_K).
static PICK8: [[u16; 32]; 4] = pick(2, 16);

const fn pick(per_pair: usize, lanes_per_scale: usize) -> [[u16; 32]; 4] {
    let mut m = [[0u16; 32]; 4];
    let mut p = 0;
    while p < 4 {
        let mut i = 0;
        while i < 32 {
            m[p][i] = (per_pair * p + i / lanes_per_scale) as u16;
            i += 1;
        }
        p += 1;
    }
    m
}

/// Chunk pair `p`'s scale vector from the block's scales (i16, low lanes of `s`).
#[inline(always)]
unsafe fn pair_scales(table: &[[u16; 32]; 4], p: usize, s: __m512i) -> __m512i {
    _mm512_permutexvar_epi16(ld512(table[p].as_ptr() as *const u8), s)
}

/// i16 lanes: `a` in the low 256 bits, `b` in the high (per-half shift counts).
#[inline(always)]
pub(super) unsafe fn halves_i16(a: i16, b: i16) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi16(a)),
        _mm256_set1_epi16(b),
    )
}

/// Bytes: `a` in the low 256 bits, `b` in the high (per-half bit tests).
#[inline(always)]
pub(super) unsafe fn halves_i8(a: u8, b: u8) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi8(a as i8)),
        _mm256_set1_epi8(b as i8),
    )
}

/// `ints[j] += Σ pairs (u · y_j[at..at + 64]) · sv` for every activation row j.
#[inline(always)]
unsafe fn madd_rows<const N: usize>(
    ints: &mut [__m512i; N],
    u: __m512i,
    sv: __m512i,
    y: &[*const u8; N],
    at: usize,
) {
    for j in 0..N {
        let p = _mm512_maddubs_epi16(u, ld512(y[j].add(at)));
        ints[j] = _mm512_dpwssd_epi32(ints[j], p, sv);
    }
}

/// The 16 i32 lanes folded onto 8: lane i + lane i+8.
#[inline(always)]
unsafe fn fold(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// Chunk pair `p` of 2-bit codes packed four to a byte in `qs` (Q2_K and the low bits of
/// Q3_K): chunk k takes bits 2(k % 4) of `qs[32(k / 4)..][..32]`.
#[inline(always)]
unsafe fn two_bit_codes(qs: *const u8, p: usize) -> __m512i {
    let q = _mm512_broadcast_i64x4(ld256(qs.add(32 * (p / 2))));
    let shift = if p.is_multiple_of(2) {
        halves_i16(0, 2)
    } else {
        halves_i16(4, 6)
    };
    _mm512_and_si512(_mm512_srlv_epi16(q, shift), _mm512_set1_epi8(3))
}

/// Q2_K chunk pair `p` (elements 64p..64p+64) of the block at `x`: codes 0..3.
#[inline(always)]
pub(super) unsafe fn q2_k_codes(x: *const u8, p: usize) -> __m512i {
    two_bit_codes(x.add(16), p)
}

/// Q3_K chunk pair `p`: codes `c + 4` (0..7).
#[inline(always)]
pub(super) unsafe fn q3_k_codes(x: *const u8, p: usize) -> __m512i {
    let low = two_bit_codes(x.add(32), p);
    // Chunk k's high bit (bit k of hmask) set means "no −4".
    let hmask = _mm512_broadcast_i64x4(ld256(x));
    let high = _mm512_test_epi8_mask(hmask, halves_i8(1 << (2 * p), 1 << (2 * p + 1)));
    _mm512_mask_add_epi8(low, high, low, _mm512_set1_epi8(4))
}

/// Q4_K chunk pair `c`: the low nibbles of `qs[32c..32c+32]` (elements 64c..64c+32), then
/// the high nibbles (the next 32).
#[inline(always)]
pub(super) unsafe fn q4_k_codes(x: *const u8, c: usize) -> __m512i {
    let q = ld256(x.add(16 + 32 * c));
    let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4));
    _mm512_and_si512(both, _mm512_set1_epi8(0x0f))
}

/// Q5_K chunk pair `c`: the Q4_K-style nibbles of `qs` (at 48) plus the fifth bits (`qh` at
/// 16: bit 2c for the low 32 elements, bit 2c+1 for the high 32).
#[inline(always)]
pub(super) unsafe fn q5_k_codes(x: *const u8, c: usize) -> __m512i {
    let q = ld256(x.add(48 + 32 * c));
    let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4));
    let u = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
    let qh = _mm512_broadcast_i64x4(ld256(x.add(16)));
    let high = _mm512_test_epi8_mask(qh, halves_i8(1 << (2 * c), 2 << (2 * c)));
    _mm512_mask_add_epi8(u, high, u, _mm512_set1_epi8(16))
}

/// Q6_K chunk pair `p`: codes `c + 32` (0..63). Chunks 4h and 4h+1 are the low nibbles of
/// `ql[64h..64h+64]`, 4h+2 and 4h+3 the high nibbles; their two high bits sit at bit pairs
/// 0, 2, 4, 6 of `qh[32h..32h+32]`.
#[inline(always)]
pub(super) unsafe fn q6_k_codes(x: *const u8, p: usize) -> __m512i {
    let h = p / 2;
    let ql = ld512(x.add(64 * h));
    let qh = _mm512_broadcast_i64x4(ld256(x.add(128 + 32 * h)));
    let (m4, m30) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    if p.is_multiple_of(2) {
        _mm512_or_si512(
            _mm512_and_si512(ql, m4),
            _mm512_and_si512(_mm512_sllv_epi16(qh, halves_i16(4, 2)), m30),
        )
    } else {
        _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
            _mm512_and_si512(_mm512_srlv_epi16(qh, halves_i16(0, 2)), m30),
        )
    }
}

/// The min formats (Q2_K, Q4_K, Q5_K): `scales(x)` gives the block's i16 scales (for
/// `vpermw` with `pick`) and its mins as i16 lanes aligned with the activation's 16 group
/// sums; `d` and `dmin` are the f16 pair at `dm_at`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn min_format<const N: usize>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
    size: usize,
    dm_at: usize,
    pick: &[[u16; 32]; 4],
    scales: impl Fn(*const u8) -> (__m512i, __m256i),
    codes: impl Fn(*const u8, usize) -> __m512i,
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * size);
        prefetch_ahead(x, size);
        let (sc, mins) = scales(x);
        let mut ints = [_mm512_setzero_si512(); N];
        for p in 0..4 {
            let sv = pair_scales(pick, p, sc);
            madd_rows(&mut ints, codes(x, p), sv, &y, b * Q8K + 4 + 64 * p);
        }
        let (d, dmin) = (rd_f16(x.add(dm_at)), rd_f16(x.add(dm_at + 2)));
        for j in 0..N {
            let (yd, _, bsums) = act(y[j], b);
            let m = _mm256_madd_epi16(bsums, mins);
            acc[j] = accumulate(acc[j], d * yd, fold(ints[j]), dmin * yd, m);
        }
    }
    acc.map(|a| hsum_ps(a))
}

/// The offset formats (Q3_K: codes `c + 4`, Q6_K: `c + 32`): `scales(x)` gives the 16 signed
/// i16 scales; the offset `2^SHIFT · Σ scale·bsum` comes back out exactly; `d` is at `d_at`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn offset_format<const N: usize, const SHIFT: i32>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
    size: usize,
    d_at: usize,
    scales: impl Fn(*const u8) -> __m256i,
    codes: impl Fn(*const u8, usize) -> __m512i,
) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * size);
        prefetch_ahead(x, size);
        let sc = scales(x);
        let wide_scales = _mm512_castsi256_si512(sc);
        let mut ints = [_mm512_setzero_si512(); N];
        for p in 0..4 {
            let sv = pair_scales(&PICK16, p, wide_scales);
            madd_rows(&mut ints, codes(x, p), sv, &y, b * Q8K + 4 + 64 * p);
        }
        let d = rd_f16(x.add(d_at));
        for j in 0..N {
            let (yd, _, bsums) = act(y[j], b);
            let off = _mm256_slli_epi32::<SHIFT>(_mm256_madd_epi16(bsums, sc));
            let exact = _mm256_sub_epi32(fold(ints[j]), off);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(exact), acc[j]);
        }
    }
    acc.map(|a| hsum_ps(a))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn q2_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let scales = |x: *const u8| {
        let (sc, m4) = (ld128(x), _mm_set1_epi8(0x0f));
        (
            _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc, m4))),
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4)),
        )
    };
    min_format(nb, w, y, 84, 80, &PICK16, scales, |x, p| q2_k_codes(x, p))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn q3_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let scales = |x: *const u8| q3_k_scales(x.add(96));
    offset_format::<N, 2>(nb, w, y, 110, 108, scales, |x, p| q3_k_codes(x, p))
}

/// Q4_K / Q5_K scales: the eight 6-bit scales (i16, for `PICK8`) and the mins as pairs.
#[inline(always)]
unsafe fn k4_scale_vectors(x: *const u8) -> (__m512i, __m256i) {
    let (sc, mn) = k4_scales(x.add(4));
    let scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
    (scales, pairs_u8(mn))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn q4_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let scales = |x: *const u8| k4_scale_vectors(x);
    min_format(nb, w, y, 144, 0, &PICK8, scales, |x, c| q4_k_codes(x, c))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn q5_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let scales = |x: *const u8| k4_scale_vectors(x);
    min_format(nb, w, y, 176, 0, &PICK8, scales, |x, c| q5_k_codes(x, c))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn q6_k<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
    let scales = |x: *const u8| _mm256_cvtepi8_epi16(ld128(x.add(192)));
    offset_format::<N, 5>(nb, w, y, 210, 208, scales, |x, p| q6_k_codes(x, p))
}
