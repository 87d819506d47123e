//! AVX2 activation quantizers (Q8_0, Q8_1, Q8_K, F16) and float dot products (F32, F16).
//!
//! The quantizers produce exactly the scalar converters' bytes (see `kernels/act.rs`): the
//! same scale arithmetic in f32, `cvtps_epi32` rounding half to even like
//! `round_ties_even` / ggml's `nearest_int`, and saturating packs where the scalar code
//! saturates. The float dots sum in eight f32 lanes with FMA.

use super::util::*;
use half::f16;
use std::arch::x86_64::*;

/// Eight f32 lanes of |x|.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn abs_ps(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hmax_ps(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// Four vectors of eight i32 (values within i8 range) → 32 bytes in element order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn pack_i8(v: [__m256i; 4]) -> __m256i {
    let ab = _mm256_packs_epi32(v[0], v[1]);
    let cd = _mm256_packs_epi32(v[2], v[3]);
    let abcd = _mm256_packs_epi16(ab, cd);
    _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// One 32-value block the AVX way: (d = amax/127, codes, Σcodes).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q8_block(x: *const f32) -> (f32, __m256i, i32) {
    let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(x.add(o)));
    let m = _mm256_max_ps(
        _mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
        _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3])),
    );
    let amax = hmax_ps(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let q = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, id)));
    let sum = hsum_epi32(_mm256_add_epi32(
        _mm256_add_epi32(q[0], q[1]),
        _mm256_add_epi32(q[2], q[3]),
    ));
    (d, pack_i8(q), sum)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(34)) {
        let (d, q, _) = q8_block(x.as_ptr());
        b[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        _mm256_storeu_si256(b.as_mut_ptr().add(2) as *mut __m256i, q);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_1(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(36)) {
        let (d, q, sum) = q8_block(x.as_ptr());
        b[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(d * sum as f32).to_le_bytes());
        _mm256_storeu_si256(b.as_mut_ptr().add(4) as *mut __m256i, q);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    for (x, b) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
        let p = x.as_ptr();
        let mut m = _mm256_setzero_ps();
        for k in 0..32 {
            m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(p.add(8 * k))));
        }
        let amax = hmax_ps(m);
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        // The first element of largest magnitude decides the sign of the scale.
        let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127.0 / max;
        let s = _mm256_set1_ps(iscale);
        let cap = _mm256_set1_epi32(127);
        let o = b.as_mut_ptr();
        for c in 0..8 {
            let q = [0, 8, 16, 24].map(|e| {
                let v = _mm256_mul_ps(s, _mm256_loadu_ps(p.add(32 * c + e)));
                _mm256_min_epi32(_mm256_cvtps_epi32(v), cap)
            });
            for g in 0..2 {
                let sum = hsum_epi32(_mm256_add_epi32(q[2 * g], q[2 * g + 1]));
                let at = 260 + 2 * (2 * c + g);
                b[at..at + 2].copy_from_slice(&(sum as i16).to_le_bytes());
            }
            _mm256_storeu_si256(o.add(4 + 32 * c) as *mut __m256i, pack_i8(q));
        }
        b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn to_f16(x: &[f32], out: &mut [u8]) {
    let n8 = x.len() / 8;
    for i in 0..n8 {
        let h = _mm256_cvtps_ph(
            _mm256_loadu_ps(x.as_ptr().add(8 * i)),
            _MM_FROUND_TO_NEAREST_INT,
        );
        _mm_storeu_si128(out.as_mut_ptr().add(16 * i) as *mut __m128i, h);
    }
    for i in 8 * n8..x.len() {
        out[2 * i..2 * i + 2].copy_from_slice(&f16::from_f32(x[i]).to_le_bytes());
    }
}

/// F32·F32 over `n` elements (`n ≤` both lengths / 4).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_f32(n: usize, w: *const u8, a: *const u8) -> f32 {
    let (w, a) = (w as *const f32, a as *const f32);
    let mut acc = [_mm256_setzero_ps(); 4];
    let n32 = n / 32;
    for i in 0..n32 {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = 32 * i + 8 * k;
            *acc = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(o)), _mm256_loadu_ps(a.add(o)), *acc);
        }
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for i in 32 * n32..n {
        sum += w.add(i).read_unaligned() * a.add(i).read_unaligned();
    }
    sum
}

/// F16·F16 over `n` elements in the order of ggml's AVX2 build of `ggml_vec_dot_f16`: four
/// 8-lane FMA accumulators over steps of 32, reduced as `(a0 + a2) + (a1 + a3)` and then by two
/// horizontal adds; the tail (`n % 32`) added in f64. Attention scores over an F16 cache come
/// from here, and a last-bit difference in one score can move the logits by as much as
/// llama.cpp's own flash-attention switch does, so the order is worth mirroring.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_f16(n: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let n32 = n / 32;
    let wide = |p: *const u8, i: usize| _mm256_cvtph_ps(ld128(p.add(2 * i)));
    for i in 0..n32 {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = 32 * i + 8 * k;
            *acc = _mm256_fmadd_ps(wide(w, o), wide(a, o), *acc);
        }
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    let t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let t1 = _mm_hadd_ps(t0, t0);
    let mut sum = _mm_cvtss_f32(_mm_hadd_ps(t1, t1)) as f64;
    for i in 32 * n32..n {
        sum += (f16_to_f32(rd_u16(w.add(2 * i))) * f16_to_f32(rd_u16(a.add(2 * i)))) as f64;
    }
    sum as f32
}

/// [`dot_f16`] in the order of ggml's AVX-512 build: four 16-lane accumulators over steps of
/// 64, reduced as `(a0 + a2) + (a1 + a3)`, then 512 → 256 → 128 bits and the last four lanes
/// as `(l0 + l2) + (l1 + l3)` (`_mm512_reduce_add_ps`); the tail in f64.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub(super) unsafe fn dot_f16_wide(n: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let n64 = n / 64;
    let wide = |p: *const u8, i: usize| _mm512_cvtph_ps(ld256(p.add(2 * i)));
    for i in 0..n64 {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = 64 * i + 16 * k;
            *acc = _mm512_fmadd_ps(wide(w, o), wide(a, o), *acc);
        }
    }
    let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    let h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps::<1>(v));
    let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    let p = _mm_add_ps(q, _mm_shuffle_ps(q, q, 0b01_00_11_10));
    let mut sum = (_mm_cvtss_f32(p) + _mm_cvtss_f32(_mm_movehdup_ps(p))) as f64;
    for i in 64 * n64..n {
        sum += (f16_to_f32(rd_u16(w.add(2 * i))) * f16_to_f32(rd_u16(a.add(2 * i)))) as f64;
    }
    sum as f32
}

/// `acc[i] = f16(acc[i] + a·x[i])` with one FMA rounding and then rounding to f16 (ggml's
/// `ggml_vec_mad_f16` on a value kept in f16), for `n` values (`n ≤` both lengths).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn axpy_round_f16(n: usize, acc: *mut f32, a: f32, x: *const f32) {
    let va = _mm256_set1_ps(a);
    let n8 = n / 8;
    let round = |v: __m256| _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
    for i in 0..n8 {
        let p = acc.add(8 * i);
        let v = _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(8 * i)), _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, round(v));
    }
    for i in 8 * n8..n {
        let v = (*x.add(i)).mul_add(a, *acc.add(i));
        *acc.add(i) = f16::from_f32(v).to_f32();
    }
}

/// F16 → f32 for `n` values (`n ≤` both lengths).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_to_f32_row(n: usize, src: *const u8, dst: *mut f32) {
    let n8 = n / 8;
    for i in 0..n8 {
        _mm256_storeu_ps(dst.add(8 * i), _mm256_cvtph_ps(ld128(src.add(16 * i))));
    }
    for i in 8 * n8..n {
        *dst.add(i) = f16_to_f32(rd_u16(src.add(2 * i)));
    }
}

/// `acc[i] += a·x[i]` for `n` values (`n ≤` both lengths), with FMA.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn axpy(n: usize, acc: *mut f32, a: f32, x: *const f32) {
    let va = _mm256_set1_ps(a);
    let n8 = n / 8;
    for i in 0..n8 {
        let p = acc.add(8 * i);
        _mm256_storeu_ps(
            p,
            _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(8 * i)), _mm256_loadu_ps(p)),
        );
    }
    for i in 8 * n8..n {
        *acc.add(i) += a * *x.add(i);
    }
}
