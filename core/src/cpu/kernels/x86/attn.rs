//! AVX2 kernels of batched attention over f32 rows, each with an AVX-512 build that uses
//! 512-bit vectors (these loops are bound by loads and FMAs, not by the clock).
//!
//! * [`dot_f32_tile`] / [`dot_f32_tile_wide`]: the query·key scores of a few query vectors
//!   against a run of keys as a small GEMM. A register tile of `Q` queries × `K` keys is accumulated chunk by chunk (each
//!   key chunk loaded once for all `Q` queries, each query chunk once for all `K` keys), so
//!   the keys stream through the cache once per group of queries instead of once per query.
//!   Each product sums in one 8-lane FMA accumulator over the `d / 8` chunks in order, then
//!   the lanes pairwise ([`hsum_ps`]), then the `d % 8` tail by multiply and add (the AVX-512
//!   build in 16 lanes first: the same sum up to rounding, see [`tile512`]).
//! * [`weighted_row_sums`] / [`weighted_row_sums_wide`]: softmax-weighted sums of value rows
//!   for `H` weight rows, each value row read once for all of them; both builds give `axpy`'s
//!   sums exactly.

use super::util::hsum_ps;
use std::arch::x86_64::*;

/// One register tile: `out[j·ld + s] = Σ_{i < d} q[j·qs + i] · k[s·ks + i]` for `j < Q`,
/// `s < K`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const Q: usize, const K: usize>(
    d: usize,
    q: *const f32,
    qs: usize,
    k: *const f32,
    ks: usize,
    out: *mut f32,
    ld: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); K]; Q];
    let d8 = d / 8 * 8;
    let mut i = 0;
    while i < d8 {
        let mut kv = [_mm256_setzero_ps(); K];
        for (s, kv) in kv.iter_mut().enumerate() {
            *kv = _mm256_loadu_ps(k.add(s * ks + i));
        }
        for (j, acc) in acc.iter_mut().enumerate() {
            let qv = _mm256_loadu_ps(q.add(j * qs + i));
            for (acc, &kv) in acc.iter_mut().zip(&kv) {
                *acc = _mm256_fmadd_ps(qv, kv, *acc);
            }
        }
        i += 8;
    }
    for (j, acc) in acc.iter().enumerate() {
        for (s, &acc) in acc.iter().enumerate() {
            let mut sum = hsum_ps(acc);
            for t in d8..d {
                sum += *q.add(j * qs + t) * *k.add(s * ks + t);
            }
            *out.add(j * ld + s) = sum;
        }
    }
}

/// `nq` queries (any count: tiles of 4, then the rest) against `K` keys.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn key_block<const K: usize>(
    d: usize,
    q: *const f32,
    qs: usize,
    nq: usize,
    k: *const f32,
    ks: usize,
    out: *mut f32,
    ld: usize,
) {
    let mut j = 0;
    while j + 4 <= nq {
        tile::<4, K>(d, q.add(j * qs), qs, k, ks, out.add(j * ld), ld);
        j += 4;
    }
    let (q, out) = (q.add(j * qs), out.add(j * ld));
    match nq - j {
        3 => tile::<3, K>(d, q, qs, k, ks, out, ld),
        2 => tile::<2, K>(d, q, qs, k, ks, out, ld),
        1 => tile::<1, K>(d, q, qs, k, ks, out, ld),
        _ => {}
    }
}

/// `out[j·ld + s] = q_j · k_s` for `j < nq`, `s < nk`: keys in blocks of `KB` (each block
/// stays in L1 while every query passes over it), the last `nk % KB` one at a time.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<const KB: usize>(
    d: usize,
    q: *const f32,
    qs: usize,
    nq: usize,
    k: *const f32,
    ks: usize,
    nk: usize,
    out: *mut f32,
    ld: usize,
) {
    let mut s = 0;
    while s + KB <= nk {
        key_block::<KB>(d, q, qs, nq, k.add(s * ks), ks, out.add(s), ld);
        s += KB;
    }
    while s < nk {
        key_block::<1>(d, q, qs, nq, k.add(s * ks), ks, out.add(s), ld);
        s += 1;
    }
}

/// Query·key dot products, AVX2 build: tiles of 4 queries × 2 keys (8 accumulators, 11 of the
/// 16 registers).
///
/// # Safety
/// AVX2, FMA and F16C are present; `q` holds `nq` rows of `d` at stride `qs`, `k` holds `nk`
/// rows of `d` at stride `ks`, `out` holds `nq` rows of `nk` at stride `ld`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dot_f32_tile(
    d: usize,
    q: *const f32,
    qs: usize,
    nq: usize,
    k: *const f32,
    ks: usize,
    nk: usize,
    out: *mut f32,
    ld: usize,
) {
    tile_rows::<2>(d, q, qs, nq, k, ks, nk, out, ld)
}

/// [`tile`] in 512-bit vectors: each product sums in one 16-lane accumulator over the `d / 16`
/// chunks, whose halves are then added into an 8-lane one that takes a last chunk of 8 (if
/// `d % 16 ≥ 8`) and is reduced like [`tile`]'s.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512<const Q: usize, const K: usize>(
    d: usize,
    q: *const f32,
    qs: usize,
    k: *const f32,
    ks: usize,
    out: *mut f32,
    ld: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); K]; Q];
    let d16 = d / 16 * 16;
    let mut i = 0;
    while i < d16 {
        let mut kv = [_mm512_setzero_ps(); K];
        for (s, kv) in kv.iter_mut().enumerate() {
            *kv = _mm512_loadu_ps(k.add(s * ks + i));
        }
        for (j, acc) in acc.iter_mut().enumerate() {
            let qv = _mm512_loadu_ps(q.add(j * qs + i));
            for (acc, &kv) in acc.iter_mut().zip(&kv) {
                *acc = _mm512_fmadd_ps(qv, kv, *acc);
            }
        }
        i += 16;
    }
    let d8 = d / 8 * 8;
    for (j, acc) in acc.iter().enumerate() {
        for (s, &acc) in acc.iter().enumerate() {
            let mut a8 = _mm256_add_ps(
                _mm512_castps512_ps256(acc),
                _mm512_extractf32x8_ps::<1>(acc),
            );
            if d16 < d8 {
                let (qv, kv) = (q.add(j * qs + d16), k.add(s * ks + d16));
                a8 = _mm256_fmadd_ps(_mm256_loadu_ps(qv), _mm256_loadu_ps(kv), a8);
            }
            let mut sum = hsum_ps(a8);
            for t in d8..d {
                sum += *q.add(j * qs + t) * *k.add(s * ks + t);
            }
            *out.add(j * ld + s) = sum;
        }
    }
}

/// [`key_block`] with [`tile512`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn key_block512<const K: usize>(
    d: usize,
    q: *const f32,
    qs: usize,
    nq: usize,
    k: *const f32,
    ks: usize,
    out: *mut f32,
    ld: usize,
) {
    let mut j = 0;
    while j + 4 <= nq {
        tile512::<4, K>(d, q.add(j * qs), qs, k, ks, out.add(j * ld), ld);
        j += 4;
    }
    let (q, out) = (q.add(j * qs), out.add(j * ld));
    match nq - j {
        3 => tile512::<3, K>(d, q, qs, k, ks, out, ld),
        2 => tile512::<2, K>(d, q, qs, k, ks, out, ld),
        1 => tile512::<1, K>(d, q, qs, k, ks, out, ld),
        _ => {}
    }
}

/// [`dot_f32_tile`], AVX-512 build: 512-bit tiles of 4 queries × 4 keys (16 accumulators, 21
/// of the 32 registers; see [`tile512`] for the order of the sums, which differs from the
/// AVX2 build's only in rounding).
///
/// # Safety
/// As [`dot_f32_tile`], and the CPU has AVX-512 F/VL/BW/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dot_f32_tile_wide(
    d: usize,
    q: *const f32,
    qs: usize,
    nq: usize,
    k: *const f32,
    ks: usize,
    nk: usize,
    out: *mut f32,
    ld: usize,
) {
    let mut s = 0;
    while s + 4 <= nk {
        key_block512::<4>(d, q, qs, nq, k.add(s * ks), ks, out.add(s), ld);
        s += 4;
    }
    while s < nk {
        key_block512::<1>(d, q, qs, nq, k.add(s * ks), ks, out.add(s), ld);
        s += 1;
    }
}

/// `out[h·n + i] = Σ_{s < rows} w[h·rows + s] · v[s·stride + i]` for `h < H`, `i < n`: each
/// value row read once for all `H` weight rows, 16 columns of every head kept in registers
/// over all `s`. Per element this is `axpy` applied row after row (`s` in order, one FMA per
/// term; plain multiply-add in the `n % 8` tail, as `axpy`'s tail), so the sums are the same.
///
/// # Safety
/// AVX2, FMA and F16C are present; `v` holds `rows` rows of `n` at `stride`, `w` holds
/// `H·rows` values, `out` holds `H·n`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn weighted_row_sums<const H: usize>(
    n: usize,
    rows: usize,
    v: *const f32,
    stride: usize,
    w: *const f32,
    out: *mut f32,
) {
    weighted_cols::<H>(0, n, rows, v, stride, w, out)
}

/// [`weighted_row_sums`] for the columns `c0..n` only.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn weighted_cols<const H: usize>(
    c0: usize,
    n: usize,
    rows: usize,
    v: *const f32,
    stride: usize,
    w: *const f32,
    out: *mut f32,
) {
    let mut c = c0;
    while c + 16 <= n {
        let mut acc = [[_mm256_setzero_ps(); 2]; H];
        for s in 0..rows {
            let vp = v.add(s * stride + c);
            let (v0, v1) = (_mm256_loadu_ps(vp), _mm256_loadu_ps(vp.add(8)));
            for (h, acc) in acc.iter_mut().enumerate() {
                let ws = _mm256_set1_ps(*w.add(h * rows + s));
                acc[0] = _mm256_fmadd_ps(ws, v0, acc[0]);
                acc[1] = _mm256_fmadd_ps(ws, v1, acc[1]);
            }
        }
        for (h, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(h * n + c), acc[0]);
            _mm256_storeu_ps(out.add(h * n + c + 8), acc[1]);
        }
        c += 16;
    }
    // The rest as `axpy` does it: FMA up to the last whole group of 8, then multiply and add.
    let fused_end = n / 8 * 8;
    for i in c..n {
        for h in 0..H {
            let mut a = 0f32;
            for s in 0..rows {
                let (wt, vt) = (*w.add(h * rows + s), *v.add(s * stride + i));
                a = if i < fused_end {
                    wt.mul_add(vt, a)
                } else {
                    a + wt * vt
                };
            }
            *out.add(h * n + i) = a;
        }
    }
}

/// [`weighted_row_sums`] in the AVX-512 build for `H ≤ 8`: 32 columns of every head in two
/// 512-bit registers (16 accumulators for 8 heads), so each pass over the rows loads two whole
/// cache lines of each value row; the columns left over as [`weighted_row_sums`]. Every
/// element is the same FMA chain, so the sums are identical.
///
/// # Safety
/// As [`weighted_row_sums`], and the CPU has AVX-512 F/VL/BW/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
pub(super) unsafe fn weighted_row_sums_wide<const H: usize>(
    n: usize,
    rows: usize,
    v: *const f32,
    stride: usize,
    w: *const f32,
    out: *mut f32,
) {
    let mut c = 0;
    while c + 32 <= n {
        let mut acc = [[_mm512_setzero_ps(); 2]; H];
        for s in 0..rows {
            let vp = v.add(s * stride + c);
            let (v0, v1) = (_mm512_loadu_ps(vp), _mm512_loadu_ps(vp.add(16)));
            for (h, acc) in acc.iter_mut().enumerate() {
                let ws = _mm512_set1_ps(*w.add(h * rows + s));
                acc[0] = _mm512_fmadd_ps(ws, v0, acc[0]);
                acc[1] = _mm512_fmadd_ps(ws, v1, acc[1]);
            }
        }
        for (h, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(h * n + c), acc[0]);
            _mm512_storeu_ps(out.add(h * n + c + 16), acc[1]);
        }
        c += 32;
    }
    weighted_cols::<H>(c, n, rows, v, stride, w, out)
}
