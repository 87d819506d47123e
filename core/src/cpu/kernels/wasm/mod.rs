//! wasm32 kernels (simd128), compiled in when the build enables `target-feature=+simd128`.
//!
//! WebAssembly has no run-time feature detection: a module either validates with the SIMD
//! instructions or not at all, so this module exists only in builds that enable simd128 (the
//! browser build does; every current browser runs it) and is then always usable.
//!
//! The intrinsics live in `util`, `legacy`, `kquants` and `iquants` as `unsafe` functions over
//! raw pointers, mirroring the x86 module's structure: a `<const N>` kernel multiplies one
//! weight row with `N` activation rows, decoding each weight block once. This module is the
//! only way in: safe functions with the [`VecDotFn`](super::VecDotFn) /
//! [`VecDotMultiFn`](super::VecDotMultiFn) signatures that clamp the block count to what both
//! slices hold, so no pointer read can go past a slice whatever the caller passes.
//!
//! Numerics are those of the other vectorised ISAs (see the `kernels` module docs): the same
//! exact integer sums per block or sub-block, with the float terms added in four f32 lanes
//! (multiply then add: simd128 has no fused multiply-add) and the lanes added at the end.

mod iquants;
mod kquants;
mod legacy;
mod util;

use super::{DotKernel, VecDotFn, VecDotMultiFn};
use crate::quant::GgmlType;

/// Whole blocks present in a weight row and in `n_acts` activation rows `stride` bytes apart.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn blocks(
    n: usize,
    elems: usize,
    w: &[u8],
    w_block: usize,
    a: &[u8],
    a_block: usize,
    stride: usize,
    n_acts: usize,
) -> usize {
    let want = n / elems;
    let in_w = w.len() / w_block;
    let last = (n_acts.max(1) - 1) * stride;
    let in_a = a.len().saturating_sub(last) / a_block;
    want.min(in_w).min(in_a)
}

/// Stamps out the safe single-row and multi-row wrappers of a `<const N>` kernel.
macro_rules! wrap {
    ($mod_:ident :: $f:ident, $elems:expr, $wblock:expr, $ablock:expr) => {
        mod $f {
            use super::*;

            pub(super) fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = blocks(n, $elems, w, $wblock, a, $ablock, 0, 1);
                // SAFETY: `nb` blocks fit in both slices.
                unsafe { $mod_::$f::<1>(nb, w.as_ptr(), [a.as_ptr()])[0] }
            }

            pub(super) fn multi(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32]) {
                let rows = out.len();
                let nb = blocks(n, $elems, w, $wblock, a, $ablock, stride, rows);
                let p = |r: usize| a.as_ptr().wrapping_add(r * stride);
                let mut r = 0;
                // SAFETY: as above, for every row r < rows (checked through the last row).
                unsafe {
                    while r + 4 <= rows {
                        let v =
                            $mod_::$f::<4>(nb, w.as_ptr(), [p(r), p(r + 1), p(r + 2), p(r + 3)]);
                        out[r..r + 4].copy_from_slice(&v);
                        r += 4;
                    }
                    if r + 2 <= rows {
                        let v = $mod_::$f::<2>(nb, w.as_ptr(), [p(r), p(r + 1)]);
                        out[r..r + 2].copy_from_slice(&v);
                        r += 2;
                    }
                    if r < rows {
                        out[r] = $mod_::$f::<1>(nb, w.as_ptr(), [p(r)])[0];
                    }
                }
            }
        }
    };
}

wrap!(legacy::q8_0, 32, 34, 34);
wrap!(legacy::q4_0, 32, 18, 34);
wrap!(legacy::q4_1, 32, 20, 36);
wrap!(legacy::q5_0, 32, 22, 34);
wrap!(legacy::q5_1, 32, 24, 36);
wrap!(legacy::iq4_nl, 32, 18, 34);
wrap!(kquants::q2_k, 256, 84, 292);
wrap!(kquants::q3_k, 256, 110, 292);
wrap!(kquants::q4_k, 256, 144, 292);
wrap!(kquants::q5_k, 256, 176, 292);
wrap!(kquants::q6_k, 256, 210, 292);
wrap!(kquants::iq4_xs, 256, 136, 292);
wrap!(iquants::iq2_xxs, 256, 66, 292);
wrap!(iquants::iq2_xs, 256, 74, 292);
wrap!(iquants::iq2_s, 256, 82, 292);
wrap!(iquants::iq3_xxs, 256, 98, 292);
wrap!(iquants::iq3_s, 256, 110, 292);
wrap!(iquants::iq1_s, 256, 50, 292);
wrap!(iquants::iq1_m, 256, 56, 292);

/// The simd128 dot product (single and multi-row) for a weight type, if this module has one.
fn dot_for(weight: GgmlType) -> Option<(VecDotFn, VecDotMultiFn)> {
    macro_rules! pick {
        ($f:ident) => {
            Some(($f::dot as VecDotFn, $f::multi as VecDotMultiFn))
        };
    }
    match weight {
        GgmlType::Q8_0 => pick!(q8_0),
        GgmlType::Q4_0 => pick!(q4_0),
        GgmlType::Q4_1 => pick!(q4_1),
        GgmlType::Q5_0 => pick!(q5_0),
        GgmlType::Q5_1 => pick!(q5_1),
        GgmlType::IQ4_NL => pick!(iq4_nl),
        GgmlType::Q2_K => pick!(q2_k),
        GgmlType::Q3_K => pick!(q3_k),
        GgmlType::Q4_K => pick!(q4_k),
        GgmlType::Q5_K => pick!(q5_k),
        GgmlType::Q6_K => pick!(q6_k),
        GgmlType::IQ4_XS => pick!(iq4_xs),
        GgmlType::IQ2_XXS => pick!(iq2_xxs),
        GgmlType::IQ2_XS => pick!(iq2_xs),
        GgmlType::IQ2_S => pick!(iq2_s),
        GgmlType::IQ3_XXS => pick!(iq3_xxs),
        GgmlType::IQ3_S => pick!(iq3_s),
        GgmlType::IQ1_S => pick!(iq1_s),
        GgmlType::IQ1_M => pick!(iq1_m),
        _ => None,
    }
}

/// The kernel table of this module: the scalar table with the vectorised entries swapped in
/// (the other types keep their scalar kernels).
pub(super) fn table(scalar: &[DotKernel]) -> Vec<DotKernel> {
    scalar
        .iter()
        .map(|k| match dot_for(k.weight) {
            Some((vec_dot, multi)) => DotKernel {
                vec_dot,
                multi,
                ..*k
            },
            None => *k,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{kernels_for, Isa, KERNELS};

    /// The shared tests (`simd_tests`) run every available table; this one makes sure the
    /// simd128 table is among them and carries the kernels of this module.
    #[test]
    fn simd128_table_is_available_and_vectorised() {
        assert!(Isa::all_available().contains(&Isa::Simd128));
        let table = kernels_for(Isa::Simd128).expect("simd128 table");
        let swapped = table
            .iter()
            .zip(KERNELS)
            .filter(|(v, s)| v.vec_dot as usize != s.vec_dot as usize)
            .count();
        assert_eq!(swapped, 19, "vectorised weight types");
    }
}
