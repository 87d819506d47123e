//! aarch64 kernels (Advanced SIMD / NEON), the counterpart of the x86 AVX2 module.
//!
//! NEON is part of the aarch64 baseline, so there is no run-time detection: on aarch64 these
//! kernels always run (unless `SLUICE_CPU_ISA=scalar`). The intrinsics live in `util`,
//! `legacy`, `kquants` and `iquants` as `unsafe` functions over raw pointers, each taking `N`
//! activation rows and decoding every weight block once for all of them. This module is the
//! only way in: safe functions with the [`VecDotFn`](super::VecDotFn) /
//! [`VecDotMultiFn`](super::VecDotMultiFn) signatures that clamp the block count to what both
//! slices hold, so no pointer read can go past a slice whatever the caller passes.
//!
//! Numerics are those of the x86 kernels (see the `kernels` module docs): exact integer sums per
//! block or sub-block in i32, float terms `d_w·d_a·Σ…` added per lane (four f32 lanes, FMA) and
//! the lanes added at the end of the row. The plain float types (F32, F16, BF16) and the rarer
//! formats (MXFP4, NVFP4, Q1_0, Q2_0, TQ1_0, TQ2_0) keep the scalar kernels.
//!
//! The integer products take one of two paths, chosen per call from a cached feature check:
//! the `sdot` instruction of the dot-product extension (FEAT_DotProd: Apple M1 and later,
//! Neoverse, Cortex-A76 and later) where the CPU has it, else widening `smull`/`smlal`
//! multiplies, which every aarch64 CPU has. Each kernel is generic over the path
//! ([`util::Dot`]); both give the same integers, spread differently over the i32 lanes, so the
//! two may differ in the last bits of the float sum. `tests/cross/neon.sh` runs the tests under
//! qemu once with a CPU model that lacks the extension and once with one that has it.

mod iquants;
mod kquants;
mod legacy;
mod util;

use super::{DotKernel, VecDotFn, VecDotMultiFn};
use crate::quant::GgmlType;

/// Whether the CPU has the dot-product extension (`sdot`), e.g. Apple M1 and later, Neoverse,
/// Cortex-A76 and later. Detected once by the standard library and cached there.
#[inline(always)]
pub(crate) fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// Stamps out the safe single-row and multi-row wrappers of a `<const N>` kernel.
macro_rules! wrap {
    ($mod_:ident :: $f:ident, $ty:ident, $elems:expr, $wblock:expr, $ablock:expr, $scalar:path) => {
        pub(super) mod $f {
            use super::*;

            /// The kernel for `N` rows, on this CPU's integer dot-product path.
            #[inline(always)]
            unsafe fn run<const N: usize>(nb: usize, w: *const u8, y: [*const u8; N]) -> [f32; N] {
                if has_dotprod() {
                    $mod_::$f::<N, util::SDot>(nb, w, y)
                } else {
                    $mod_::$f::<N, util::Plain>(nb, w, y)
                }
            }

            pub(crate) fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = crate::cpu::kernels::whole_blocks(n, $elems, w, $wblock, a, $ablock, 0, 1);
                // SAFETY: NEON is baseline on aarch64; `nb` blocks fit in both slices.
                unsafe { run::<1>(nb, w.as_ptr(), [a.as_ptr()])[0] }
            }

            pub(crate) fn multi(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32]) {
                let rows = out.len();
                let nb = crate::cpu::kernels::whole_blocks(
                    n, $elems, w, $wblock, a, $ablock, stride, rows,
                );
                let p = |r: usize| a.as_ptr().wrapping_add(r * stride);
                let mut r = 0;
                // SAFETY: as above, for every row r < rows (checked through the last row; with
                // nb = 0 no row pointer is read).
                unsafe {
                    while r + 4 <= rows {
                        let v = run::<4>(nb, w.as_ptr(), [p(r), p(r + 1), p(r + 2), p(r + 3)]);
                        out[r..r + 4].copy_from_slice(&v);
                        r += 4;
                    }
                    if r + 2 <= rows {
                        let v = run::<2>(nb, w.as_ptr(), [p(r), p(r + 1)]);
                        out[r..r + 2].copy_from_slice(&v);
                        r += 2;
                    }
                    if r < rows {
                        out[r] = run::<1>(nb, w.as_ptr(), [p(r)])[0];
                    }
                }
            }
        }
    };
}

for_each_vectorised_type!(wrap);

/// The NEON dot product (single and multi-row) for a weight type, if this module has one.
fn dot_for(weight: GgmlType) -> Option<(VecDotFn, VecDotMultiFn)> {
    for_each_vectorised_type!(return_if_type, weight);
    None
}

/// The kernel table of this module: the scalar table with the vectorised entries swapped in.
pub(super) fn table(scalar: &[DotKernel]) -> Vec<DotKernel> {
    super::swap_in(scalar, dot_for)
}

#[cfg(test)]
mod tests {
    use super::super::KERNELS;
    use crate::quant::GgmlType;

    /// Every type the brief of this module names has a NEON kernel (none silently scalar).
    #[test]
    fn the_table_vectorises_the_quantized_types() {
        let t = super::table(KERNELS);
        for k in &t {
            let vectorised = k.vec_dot as usize != k.scalar as usize;
            let expected = super::dot_for(k.weight).is_some();
            assert_eq!(vectorised, expected, "{}", k.weight);
        }
        let n = t
            .iter()
            .filter(|k| k.vec_dot as usize != k.scalar as usize)
            .count();
        assert_eq!(n, 19);
        assert!(t.iter().any(|k| k.weight == GgmlType::IQ1_M));
        eprintln!("neon kernels: sdot path {}", super::has_dotprod());
        // tests/cross/neon.sh says which path the emulated CPU must take.
        if let Ok(want) = std::env::var("SLUICE_EXPECT_SDOT") {
            assert_eq!(super::has_dotprod(), want == "1", "dotprod detection");
        }
    }
}
