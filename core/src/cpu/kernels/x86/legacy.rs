//! AVX2 dot products of the 32-element-block formats with Q8_0 / Q8_1 activations: Q8_0, Q4_0,
//! Q4_1, Q5_0, Q5_1, IQ4_NL.
//!
//! Per block: the weight codes become 32 signed (or unsigned) bytes, the exact integer dot with
//! the activation codes lands in eight i32 lanes, and `d_w·d_a` times those lanes (converted
//! to f32) is added to eight f32 lane sums with FMA; the lanes are added at the end of the row.
//! Each kernel takes `N` activation rows and decodes every weight block once for all of them;
//! with `W` (the AVX-512 build, see `mod.rs`) the byte dot products are single VNNI
//! instructions.

use super::util::*;
use crate::quant::grids::KVALUES_IQ4NL;
use std::arch::x86_64::*;

const Q8_0: usize = 34;
const Q8_1: usize = 36;

/// The kernel body shared by the formats whose block decodes to 32 signed codes and whose
/// activation is Q8_0: `decode(x)` → (codes, weight scale).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn signed_blocks<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    block: usize,
    y: [*const u8; N],
    decode: impl Fn(*const u8) -> (__m256i, f32),
) -> [f32; N] {
    // Two accumulators per row (even and odd blocks) halve the FMA latency chain.
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    // A macro with a constant `half`, not a closure (see `unsigned_blocks`).
    macro_rules! block {
        ($b:expr, $half:literal) => {{
            let b = $b;
            prefetch_ahead(w.wrapping_add(b * block), 1);
            let (codes, dw) = decode(w.add(b * block));
            let abs = _mm256_sign_epi8(codes, codes);
            for j in 0..N {
                let yb = y[j].add(b * Q8_0);
                let yq = _mm256_sign_epi8(ld256(yb.add(2)), codes);
                let sum = dot_u8_lanes::<W>(abs, yq);
                let d = _mm256_set1_ps(dw * rd_f16(yb));
                acc[j][$half] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[j][$half]);
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
    acc.map(|a| hsum_ps(_mm256_add_ps(a[0], a[1])))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q8_0<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    signed_blocks::<N, W>(nb, w, 34, y, |x| (ld256(x.add(2)), rd_f16(x)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q4_0<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    signed_blocks::<N, W>(nb, w, 18, y, |x| {
        let codes = _mm256_sub_epi8(nibbles(x.add(2)), _mm256_set1_epi8(8));
        (codes, rd_f16(x))
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn iq4_nl<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    let table = _mm256_broadcastsi128_si256(ld128(KVALUES_IQ4NL.as_ptr() as *const u8));
    signed_blocks::<N, W>(nb, w, 18, y, |x| {
        (_mm256_shuffle_epi8(table, nibbles(x.add(2))), rd_f16(x))
    })
}

/// Bytes with value 16 where bit j of `bits` is set (the fifth bit of Q5 codes).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn fifth_bits(bits: u32) -> __m256i {
    // signs_from_bits gives −1 (0xff) where set and +1 elsewhere; keep 16 where 0xff.
    let s = signs_from_bits(bits);
    _mm256_and_si256(
        _mm256_cmpeq_epi8(s, _mm256_set1_epi8(-1)),
        _mm256_set1_epi8(16),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q5_0<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    signed_blocks::<N, W>(nb, w, 22, y, |x| {
        let u = _mm256_or_si256(nibbles(x.add(6)), fifth_bits(rd_u32(x.add(2))));
        (_mm256_sub_epi8(u, _mm256_set1_epi8(16)), rd_f16(x))
    })
}

/// Q4_1 / Q5_1 with Q8_1 activations: unsigned codes, `Σ d_w·d_a·Σu·q + m_w·s_a`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn unsigned_blocks<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    block: usize,
    y: [*const u8; N],
    decode: impl Fn(*const u8) -> __m256i,
) -> [f32; N] {
    // One accumulator per row, blocks in order, and m_w·s_a summed in lane 1 of `mins` (lane 0
    // holds unused d_w·d_a products): the scale pairs (d, m) and (d, s) are adjacent f16s, so
    // one conversion and one multiply serve both terms. This is the order of llama.cpp's AVX2
    // kernel (one FMA chain, a sequential sum of the min terms), so for equal activations the
    // results are bit-identical to its; a split into even/odd chains flipped a greedy token of
    // SmolLM2 (Q4_1) at a 0.3-logit margin. Decode reads memory slower than the chain runs.
    let mut acc = [_mm256_setzero_ps(); N];
    let mut mins = [_mm_setzero_ps(); N];
    for b in 0..nb {
        let x = w.add(b * block);
        prefetch_ahead(x, 1);
        let u = decode(x);
        let dm = rd_f16x2(x);
        for j in 0..N {
            let yb = y[j].add(b * Q8_1);
            let sum = dot_u8_lanes::<W>(u, ld256(yb.add(4)));
            let prod = _mm_mul_ps(dm, rd_f16x2(yb));
            let d = _mm256_broadcastss_ps(prod);
            acc[j] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[j]);
            mins[j] = _mm_add_ps(mins[j], prod);
        }
    }
    let mut out = [0.0f32; N];
    for j in 0..N {
        out[j] = hsum_ps(acc[j]) + _mm_cvtss_f32(_mm_movehdup_ps(mins[j]));
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q4_1<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    unsigned_blocks::<N, W>(nb, w, 20, y, |x| nibbles(x.add(4)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn q5_1<const N: usize, const W: bool>(
    nb: usize,
    w: *const u8,
    y: [*const u8; N],
) -> [f32; N] {
    unsigned_blocks::<N, W>(nb, w, 24, y, |x| {
        _mm256_or_si256(nibbles(x.add(8)), fifth_bits(rd_u32(x.add(4))))
    })
}
