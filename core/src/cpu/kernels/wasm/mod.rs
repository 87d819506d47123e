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

/// Stamps out the safe single-row and multi-row wrappers of a `<const N>` kernel.
macro_rules! wrap {
    ($mod_:ident :: $f:ident, $ty:ident, $elems:expr, $wblock:expr, $ablock:expr, $scalar:path) => {
        mod $f {
            use super::*;

            pub(super) fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = crate::cpu::kernels::whole_blocks(n, $elems, w, $wblock, a, $ablock, 0, 1);
                // SAFETY: `nb` blocks fit in both slices.
                unsafe { $mod_::$f::<1>(nb, w.as_ptr(), [a.as_ptr()])[0] }
            }

            pub(super) fn multi(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32]) {
                let rows = out.len();
                let nb = crate::cpu::kernels::whole_blocks(
                    n, $elems, w, $wblock, a, $ablock, stride, rows,
                );
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

for_each_vectorised_type!(wrap);

/// The simd128 dot product (single and multi-row) for a weight type, if this module has one.
fn dot_for(weight: GgmlType) -> Option<(VecDotFn, VecDotMultiFn)> {
    for_each_vectorised_type!(return_if_type, weight);
    None
}

/// The kernel table of this module: the scalar table with the vectorised entries swapped in
/// (the other types keep their scalar kernels).
pub(super) fn table(scalar: &[DotKernel]) -> Vec<DotKernel> {
    super::swap_in(scalar, dot_for)
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
