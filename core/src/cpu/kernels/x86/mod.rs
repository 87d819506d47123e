//! x86-64 kernels (AVX2 + FMA + F16C), chosen at run time by feature detection.
//!
//! The intrinsics live in `util`, `legacy`, `kquants`, `kquants512`, `iquants`, `act`,
//! `attn`, `panel` and `panel_legacy` as `unsafe` functions over raw pointers. This module is
//! the only way in for the dot products: safe functions with the
//! [`VecDotFn`](super::VecDotFn) / [`VecDotMultiFn`](super::VecDotMultiFn) signatures that
//! (1) check that the CPU has the features (a cached flag; otherwise they run the scalar
//! kernel), and (2) clamp the block count to what both slices hold, so no pointer read can go
//! past a slice whatever the caller passes. The batched panel GEMM (`panel`) has its own safe
//! entry points with the same two checks, reached through [`super::panel`].
//!
//! # Two builds of each kernel
//!
//! Every dot kernel is compiled twice from the same source: once for AVX2 and once, as the
//! `avx512` table, with AVX-512 F/BW/VL + VNNI enabled. The second gets 32 vector registers
//! instead of 16, so the multi-row kernels keep all accumulators in registers (the AVX2 build
//! spills them: measured ~2× faster prompt processing on Q4_1); the 32-element-block formats
//! do their byte dot products with one `vpdpbusd` instead of `vpmaddubsw` + `vpmaddwd`
//! (identical values), and the k-quants run on 512-bit vectors (`kquants512`: two 32-element
//! chunks per instruction, the same integer sums, bit-identical results). The kernels take
//! that choice as the const parameter `W`.

mod act;
mod attn;
mod iquants;
mod kquants;
mod kquants512;
mod legacy;
pub(super) mod panel;
mod panel_legacy;
mod util;

use super::{DotKernel, VecDotFn, VecDotMultiFn};
use crate::quant::GgmlType;
use std::sync::OnceLock;

/// Whether this CPU runs the kernels of this module.
pub(crate) fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// Whether this CPU also runs the AVX-512 build (see the module docs).
pub(crate) fn available_wide() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        available()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// Whether the build `W` of the kernels can run here.
#[inline(always)]
fn can_run<const W: bool>() -> bool {
    if W {
        available_wide()
    } else {
        available()
    }
}

/// Stamps out the safe single-row and multi-row wrappers of a `<const N, const W>` kernel, for
/// both builds (`dot::<W>`, `multi::<W>`).
macro_rules! wrap {
    ($mod_:ident :: $f:ident, $ty:ident, $elems:expr, $wblock:expr, $ablock:expr, $scalar:path) => {
        pub(super) mod $f {
            use super::*;

            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn narrow<const N: usize>(
                nb: usize,
                w: *const u8,
                y: [*const u8; N],
            ) -> [f32; N] {
                $mod_::$f::<N, false>(nb, w, y)
            }

            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
            unsafe fn wide<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
                $mod_::$f::<N, true>(nb, w, y)
            }

            /// # Safety
            /// The CPU runs build `W`; `nb` blocks fit in the weight row and every `y` row.
            #[inline(always)]
            unsafe fn kernel<const N: usize, const W: bool>(
                nb: usize,
                w: *const u8,
                y: [*const u8; N],
            ) -> [f32; N] {
                if W {
                    wide::<N>(nb, w, y)
                } else {
                    narrow::<N>(nb, w, y)
                }
            }

            pub(crate) fn dot<const W: bool>(n: usize, w: &[u8], a: &[u8]) -> f32 {
                if !can_run::<W>() {
                    return $scalar(n, w, a);
                }
                let nb = crate::cpu::kernels::whole_blocks(n, $elems, w, $wblock, a, $ablock, 0, 1);
                // SAFETY: the features are present; `nb` blocks fit in both slices.
                unsafe { kernel::<1, W>(nb, w.as_ptr(), [a.as_ptr()])[0] }
            }

            pub(crate) fn multi<const W: bool>(
                n: usize,
                w: &[u8],
                a: &[u8],
                stride: usize,
                out: &mut [f32],
            ) {
                let rows = out.len();
                if !can_run::<W>() {
                    for (r, o) in out.iter_mut().enumerate() {
                        let start = (r * stride).min(a.len());
                        *o = $scalar(n, w, &a[start..]);
                    }
                    return;
                }
                let nb = crate::cpu::kernels::whole_blocks(
                    n, $elems, w, $wblock, a, $ablock, stride, rows,
                );
                let p = |r: usize| a.as_ptr().wrapping_add(r * stride);
                let mut r = 0;
                // SAFETY: as above, for every row r < rows (checked through the last row).
                unsafe {
                    while W && r + 8 <= rows {
                        let v = kernel::<8, W>(
                            nb,
                            w.as_ptr(),
                            [
                                p(r),
                                p(r + 1),
                                p(r + 2),
                                p(r + 3),
                                p(r + 4),
                                p(r + 5),
                                p(r + 6),
                                p(r + 7),
                            ],
                        );
                        out[r..r + 8].copy_from_slice(&v);
                        r += 8;
                    }
                    while r + 4 <= rows {
                        let v =
                            kernel::<4, W>(nb, w.as_ptr(), [p(r), p(r + 1), p(r + 2), p(r + 3)]);
                        out[r..r + 4].copy_from_slice(&v);
                        r += 4;
                    }
                    if r + 2 <= rows {
                        let v = kernel::<2, W>(nb, w.as_ptr(), [p(r), p(r + 1)]);
                        out[r..r + 2].copy_from_slice(&v);
                        r += 2;
                    }
                    if r < rows {
                        out[r] = kernel::<1, W>(nb, w.as_ptr(), [p(r)])[0];
                    }
                }
            }
        }
    };
}

for_each_vectorised_type!(wrap);

fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !available() {
        return super::dot_float::dot_f32(n, w, a);
    }
    let n = n.min(w.len() / 4).min(a.len() / 4);
    // SAFETY: features present; n elements fit in both slices.
    unsafe { act::dot_f32(n, w.as_ptr(), a.as_ptr()) }
}

fn dot_f16<const W: bool>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !can_run::<W>() {
        return super::dot_float::dot_f16(n, w, a);
    }
    let n = n.min(w.len() / 2).min(a.len() / 2);
    // SAFETY: features present; n elements fit in both slices.
    unsafe {
        if W {
            act::dot_f16_wide(n, w.as_ptr(), a.as_ptr())
        } else {
            act::dot_f16(n, w.as_ptr(), a.as_ptr())
        }
    }
}

fn multi_f32(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32]) {
    super::multi_by_rows(dot_f32, n, w, a, stride, out)
}

fn multi_f16<const W: bool>(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32]) {
    super::multi_by_rows(dot_f16::<W>, n, w, a, stride, out)
}

/// The x86 dot product (single and multi-row) of build `W` for a weight type, if this module
/// has one.
fn dot_for<const W: bool>(weight: GgmlType) -> Option<(VecDotFn, VecDotMultiFn)> {
    macro_rules! pick {
        ($mod_:ident :: $f:ident, $ty:ident, $($rest:tt)*) => {
            if weight == GgmlType::$ty {
                return Some(($f::dot::<W> as VecDotFn, $f::multi::<W> as VecDotMultiFn));
            }
        };
    }
    match weight {
        GgmlType::F32 => return Some((dot_f32 as VecDotFn, multi_f32 as VecDotMultiFn)),
        GgmlType::F16 => return Some((dot_f16::<W> as VecDotFn, multi_f16::<W> as VecDotMultiFn)),
        _ => {}
    }
    for_each_vectorised_type!(pick);
    None
}

/// The x86 activation converter for `act`, if this module has one. The caller has checked
/// that `out` holds exactly `x.len()` elements of `act`.
pub(super) fn quantize(act: GgmlType, x: &[f32], out: &mut [u8]) -> bool {
    if !available() {
        return false;
    }
    // SAFETY: features present; the converters iterate over whole chunks of both slices.
    unsafe {
        match act {
            GgmlType::Q8_0 => act::quantize_q8_0(x, out),
            GgmlType::Q8_1 => act::quantize_q8_1(x, out),
            GgmlType::Q8_K => act::quantize_q8_k(x, out),
            GgmlType::F16 if out.len() >= 2 * x.len() => act::to_f16(x, out),
            _ => return false,
        }
    }
    true
}

/// F16 bytes → f32 (the caller has checked that `src` holds `dst.len()` values).
pub(super) fn f16_row(src: &[u8], dst: &mut [f32]) -> bool {
    if !available() {
        return false;
    }
    let n = dst.len().min(src.len() / 2);
    // SAFETY: features present; n values fit in both slices.
    unsafe { act::f16_to_f32_row(n, src.as_ptr(), dst.as_mut_ptr()) };
    true
}

/// `acc += a·x`.
pub(super) fn axpy(acc: &mut [f32], a: f32, x: &[f32]) -> bool {
    if !available() {
        return false;
    }
    let n = acc.len().min(x.len());
    // SAFETY: features present; n values fit in both slices.
    unsafe { act::axpy(n, acc.as_mut_ptr(), a, x.as_ptr()) };
    true
}

/// `acc[i] = f16(acc[i] + a·x[i])` (one FMA rounding, then to f16).
pub(super) fn axpy_round_f16(acc: &mut [f32], a: f32, x: &[f32]) -> bool {
    if !available() {
        return false;
    }
    let n = acc.len().min(x.len());
    // SAFETY: features present; n values fit in both slices.
    unsafe { act::axpy_round_f16(n, acc.as_mut_ptr(), a, x.as_ptr()) };
    true
}

/// See [`super::weighted_row_sums`] (build `wide` when the CPU runs it, else AVX2); the caller
/// has checked the lengths.
pub(super) fn weighted_row_sums(
    wide: bool,
    v: &[f32],
    stride: usize,
    rows: usize,
    w: &[f32],
    heads: usize,
    out: &mut [f32],
) -> bool {
    if !available() {
        return false;
    }
    let wide = wide && available_wide();
    let n = out.len() / heads.max(1);
    let (v, w, o) = (v.as_ptr(), w.as_ptr(), out.as_mut_ptr());
    // SAFETY: features present (AVX-512 checked for the wide kernel); the public wrapper
    // checked that `rows` value rows of `n` (at `stride`), `heads·rows` weights and `heads·n`
    // outputs are in bounds (the two halves of 8 heads are 4 heads each).
    unsafe {
        match heads {
            1 if wide => attn::weighted_row_sums_wide::<1>(n, rows, v, stride, w, o),
            2 if wide => attn::weighted_row_sums_wide::<2>(n, rows, v, stride, w, o),
            3 if wide => attn::weighted_row_sums_wide::<3>(n, rows, v, stride, w, o),
            4 if wide => attn::weighted_row_sums_wide::<4>(n, rows, v, stride, w, o),
            8 if wide => attn::weighted_row_sums_wide::<8>(n, rows, v, stride, w, o),
            1 => attn::weighted_row_sums::<1>(n, rows, v, stride, w, o),
            2 => attn::weighted_row_sums::<2>(n, rows, v, stride, w, o),
            3 => attn::weighted_row_sums::<3>(n, rows, v, stride, w, o),
            4 => attn::weighted_row_sums::<4>(n, rows, v, stride, w, o),
            8 => {
                attn::weighted_row_sums::<4>(n, rows, v, stride, w, o);
                let (w, o) = (w.add(4 * rows), o.add(4 * n));
                attn::weighted_row_sums::<4>(n, rows, v, stride, w, o);
            }
            _ => return false,
        }
    }
    true
}

/// See [`super::dot_f32_tile`] (build `wide` when the CPU runs it, else AVX2); the caller has
/// checked that `nq` rows of `d` at `qs` fit in `q`, `nk` rows of `d` at `ks` in `k`, and
/// `nq` rows of `nk` at `ld` in `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dot_f32_tile(
    wide: bool,
    d: usize,
    q: &[f32],
    qs: usize,
    nq: usize,
    k: &[f32],
    ks: usize,
    nk: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    if !available() {
        return false;
    }
    let (q, k, o) = (q.as_ptr(), k.as_ptr(), out.as_mut_ptr());
    // SAFETY: features present (AVX-512 checked for the wide kernel); bounds as above.
    unsafe {
        if wide && available_wide() {
            attn::dot_f32_tile_wide(d, q, qs, nq, k, ks, nk, o, ld);
        } else {
            attn::dot_f32_tile(d, q, qs, nq, k, ks, nk, o, ld);
        }
    }
    true
}

/// The kernel table of build `wide` (see the module docs): the scalar table with the
/// vectorised entries swapped in.
pub(super) fn table(scalar: &[DotKernel], wide: bool) -> Vec<DotKernel> {
    if wide {
        super::swap_in(scalar, dot_for::<true>)
    } else {
        super::swap_in(scalar, dot_for::<false>)
    }
}
