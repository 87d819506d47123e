//! Small AVX2 building blocks shared by the x86 kernels: unaligned loads through raw pointers,
//! f16 widening, horizontal sums, the signed 8-bit dot product and the per-16-element scale
//! vectors of the super-block formats.
//!
//! Every function here is `unsafe`: callers guarantee that the CPU has AVX2, FMA and F16C and
//! that each pointer is valid for the bytes read.

pub(super) use super::super::raw::{f16_to_f32, rd_f32, rd_u16, rd_u32, rd_u64};
use std::arch::x86_64::*;

#[inline(always)]
pub(super) unsafe fn ld256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
pub(super) unsafe fn ld128(p: *const u8) -> __m128i {
    _mm_loadu_si128(p as *const __m128i)
}

/// An f16 read from memory, widened by F16C.
///
/// Inline assembly, because from intrinsics LLVM narrows the zero-extending `vmovd` to a
/// `vpinsrw` into whatever register is at hand, often a loop accumulator, which chains every
/// block's scale conversion to the previous block's FMA (measured: ~3× slower Q4_1 decode).
/// `movzx` + `vmovd` write whole registers, so the conversion depends on the load alone.
/// Callers have F16C (every kernel here enables it).
#[inline(always)]
pub(super) unsafe fn rd_f16(p: *const u8) -> f32 {
    _mm_cvtss_f32(rd_f16x2_from(rd_u16(p) as u32))
}

/// Two adjacent f16 values (`p[0..2]`, `p[2..4]`) widened into lanes 0 and 1. One
/// `vcvtph2ps` with a memory operand, so it reads 8 bytes (`p` must have 8 readable bytes) and
/// lanes 2 and 3 hold whatever the next four bytes encode: callers use lanes 0 and 1 only.
#[inline(always)]
pub(super) unsafe fn rd_f16x2(p: *const u8) -> __m128 {
    let out: __m128;
    std::arch::asm!(
        "vcvtph2ps {x}, qword ptr [{p}]",
        p = in(reg) p,
        x = out(xmm_reg) out,
        options(pure, readonly, nostack, preserves_flags),
    );
    out
}

/// The two f16 halves of `bits` in lanes 0 and 1, with no dependency on an older register.
#[inline(always)]
unsafe fn rd_f16x2_from(bits: u32) -> __m128 {
    let out: __m128;
    std::arch::asm!(
        "vmovd {x}, {b:e}",
        "vcvtph2ps {x}, {x}",
        b = in(reg) bits,
        x = out(xmm_reg) out,
        options(pure, nomem, nostack, preserves_flags),
    );
    out
}

/// How far ahead of the block being decoded the weight stream is prefetched, in bytes. Decode
/// reads each weight once, a row after another; hardware prefetch alone kept only ~60 % of the
/// machine's read bandwidth busy (llama.cpp sits there too), and 2 KiB ahead took SmolLM2's
/// 2-thread decode from ~78 to ~95–120 tokens/s here (1, 4 and 8 KiB were no better).
pub(super) const PREFETCH: usize = 2048;

/// Prefetches the cache lines of the `bytes`-long block that starts [`PREFETCH`] bytes after
/// `x` (a hint: addresses past the end of the weights are harmless).
#[inline(always)]
pub(super) unsafe fn prefetch_ahead(x: *const u8, bytes: usize) {
    let at = x.wrapping_add(PREFETCH);
    let mut off = 0;
    while off < bytes {
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(off) as *const i8);
        off += 64;
    }
}

/// Σ of the 8 lanes, pairwise: (l0+l4 + l2+l6) + (l1+l5 + l3+l7).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// `Σ u·b` of unsigned `u` (≤ 128) and signed `b` bytes in 32-bit lanes: `vpdpbusd` when `W`
/// (the caller is compiled with AVX-512 VNNI + VL), else `vpmaddubsw` + `vpmaddwd`. Same
/// values: with `u ≤ 128` no pair sum reaches `vpmaddubsw`'s i16 saturation.
#[inline(always)]
pub(super) unsafe fn dot_u8_lanes<const W: bool>(u: __m256i, b: __m256i) -> __m256i {
    if W {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, b)
    } else {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, b), _mm256_set1_epi16(1))
    }
}

/// The two 128-bit halves of a 16 × i16 vector, each broadcast to both lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn split_scales(s16: __m256i) -> [__m256i; 2] {
    [
        _mm256_permute2x128_si256(s16, s16, 0x00),
        _mm256_permute2x128_si256(s16, s16, 0x11),
    ]
}

/// Shuffle masks picking i16 scale `2k` into the low 8 lanes and `2k + 1` into the high 8
/// lanes (k < 4, within one broadcast half).
const SCALE_PICK: [[u8; 32]; 4] = scale_pick();

const fn scale_pick() -> [[u8; 32]; 4] {
    let mut m = [[0u8; 32]; 4];
    let mut k = 0;
    while k < 4 {
        let mut i = 0;
        while i < 16 {
            m[k][i] = (4 * k + i % 2) as u8;
            m[k][16 + i] = (4 * k + 2 + i % 2) as u8;
            i += 1;
        }
        k += 1;
    }
    m
}

/// For the 32-element chunk `k` (< 8) of a super-block with 16 per-16-element scales (split by
/// [`split_scales`]): the i16 multiplier vector for `maddubs` output (8 pair lanes per group).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn chunk_scales(halves: &[__m256i; 2], k: usize) -> __m256i {
    let pick = ld256(SCALE_PICK[k % 4].as_ptr());
    _mm256_shuffle_epi8(halves[k / 4], pick)
}

/// Two 16-element groups with i16 scales `a` (low 8 pair lanes) and `b` (high 8).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn two_scales(a: i16, b: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a))
}

/// 16 nibbles → 32 bytes: low nibbles in the first 16, high nibbles in the last 16.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn nibbles(p: *const u8) -> __m256i {
    let q = ld128(p);
    let both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Bytes `±1` from 32 sign bits (bit j set → byte j = −1).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn signs_from_bits(bits: u32) -> __m256i {
    let v = _mm256_set1_epi32(bits as i32);
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_or_si256(set, _mm256_set1_epi8(1))
}

/// The ksigns table expanded to ±1 bytes: entry i has byte j = −1 where bit j of
/// `KSIGNS_IQ2XS[i]` is set, +1 elsewhere.
pub(super) static SIGNS64: [u64; 128] = signs64();

const fn signs64() -> [u64; 128] {
    let mut t = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        let parity = (i as u32).count_ones() & 1;
        let k = i as u32 | (parity << 7);
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            let byte: u64 = if (k >> j) & 1 != 0 { 0xff } else { 0x01 };
            v |= byte << (8 * j);
            j += 1;
        }
        t[i] = v;
        i += 1;
    }
    t
}

/// Four 7-bit ksigns indices packed at bits 0, 7, 14, 21 → 32 sign bytes (±1).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn ksigns_x4(aux: u32) -> __m256i {
    _mm256_set_epi64x(
        SIGNS64[((aux >> 21) & 127) as usize] as i64,
        SIGNS64[((aux >> 14) & 127) as usize] as i64,
        SIGNS64[((aux >> 7) & 127) as usize] as i64,
        SIGNS64[(aux & 127) as usize] as i64,
    )
}

/// Entry `i` of a grid of 8-byte entries, as a little-endian u64 (the caller keeps `i` in
/// range).
#[inline(always)]
pub(super) unsafe fn grid_entry<T>(grid: &[[T; 8]], i: usize) -> u64 {
    rd_u64(grid.as_ptr().add(i) as *const u8)
}

/// Four 8-byte grid entries (as little-endian u64) → one vector.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn grid_x4(g: [u64; 4]) -> __m256i {
    _mm256_set_epi64x(g[3] as i64, g[2] as i64, g[1] as i64, g[0] as i64)
}
