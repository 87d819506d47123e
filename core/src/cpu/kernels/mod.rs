//! CPU dot-product kernels with llama.cpp's CPU numerics.
//!
//! ggml's CPU `mul_mat` never dequantizes weights: it converts the activation row to the weight
//! type's "vec_dot type" (Q8_0, Q8_1, Q8_K, F16, BF16 or F32) and multiplies blocks with
//! integer sums. [`KERNELS`] is the one table pairing each weight type with that activation
//! format and its dot product, as ggml's `type_traits_cpu` does; [`quantize_activation`]
//! performs the conversion and [`quantize_row`] the storage conversion of KV-cache types.
//!
//! # Which ggml variant each piece mirrors
//!
//! The reference is llama.cpp built with `GGML_NATIVE` on x86-64 (AVX2 / AVX-512).
//!
//! * **Activation quantizers** decide the integer codes and scales, so they are mirrored
//!   exactly (see [`act`]): Q8_0 and Q8_1 follow the AVX path of `arch/x86/quants.c`
//!   (`id = 127/amax`, round half to even), not the portable `_ref` (`1/(amax/127)`, round half
//!   away from zero); Q8_K is the `_ref` quantizer, which x86 also uses; F16 is the F16C
//!   round-to-nearest-even conversion and BF16 ggml's scalar round-to-nearest-even.
//! * **Dot products** follow the structure of ggml's portable `*_generic` kernels in
//!   `ggml-cpu/quants.c` (and the scalar loops of `vec.cpp` for F32/F16/BF16): the same integer
//!   sums per sub-block and the same float combination, in the same order. The x86 build uses
//!   AVX kernels that add the per-block float terms in SIMD lanes (with FMA) and reduce the lanes
//!   at the end, so a result differs from llama.cpp's by float rounding of the final sum only
//!   (a few ulp of the per-block terms), never by a different quantization.
//! * Not mirrored (documented for the model code): llama.cpp on AVX2 machines repacks Q4_0,
//!   Q4_K, IQ4_NL, MXFP4 (and Q2_K with AVX-512) weights into interleaved layouts whose
//!   GEMV/GEMM kernels sum in yet another order, and for batches of ≥ 4 rows quantize
//!   activations with `ggml_quantize_mat_*`; the llamafile sgemm path may also take over
//!   multi-token matmuls. All of these use the same activation formats as this table.
//!
//! # Vectorised kernels
//!
//! Every entry carries the portable [`DotKernel::scalar`] function, the oracle for tests, and
//! [`DotKernel::vec_dot`] / [`DotKernel::multi`], the functions callers use. At first use the
//! backend picks one instruction set ([`Isa`]): AVX2 (+FMA, F16C) on x86-64 when the CPU has
//! it, NEON on aarch64, simd128 on wasm32 when compiled with it, else the scalar table. The
//! environment variable `SLUICE_CPU_ISA=scalar` forces the portable kernels (for A/B runs).
//! Only the per-ISA modules contain `unsafe`, each behind safe, length-clamping functions.
//!
//! ## How close a vectorised kernel is to the scalar one
//!
//! Both compute the same exact integer sums (per block or sub-block, in i32), so they differ
//! only in how the float terms `d_w·d_a·Σ…` are rounded and added: in eight SIMD lanes
//! (per-lane FMA, lanes added at the end) instead of ggml's order. For a row of `B` blocks the
//! difference is bounded by the summation error of the terms in two orders,
//! `|simd − scalar| ≤ 2·(B + 8)·2⁻²⁴·Σ_blocks(|d_w·d_a|·Σ|scale·code·q| + |dmin·d_a|·Σ|min·bsum|)`;
//! the tests check this bound with Σ|w·a| of the dequantized operands (the same quantity up to
//! the formats' min terms) and a margin for those.
//!
//! Batches on AVX-512 VNNI CPUs multiply k-quant and Q4_1 weights through [`panel`] instead:
//! the same integer sums, the per-block float terms added block after block per weight row
//! (as the scalar kernels do), checked against the same bound.

/// Invokes `$wrap!(module::kernel, TYPE, elements per block, weight block bytes, activation block
/// bytes, scalar kernel)` for every quantized type the per-ISA modules vectorise: the one list
/// the x86, NEON and simd128 modules stamp their safe wrappers and their tables from.
#[allow(unused_macros)]
macro_rules! for_each_vectorised_type {
    ($wrap:ident $(, $lead:ident)?) => {
        $wrap!($($lead;)?
            legacy::q8_0,
            Q8_0,
            32,
            34,
            34,
            $crate::cpu::kernels::dot_legacy::dot_q8_0
        );
        $wrap!($($lead;)?
            legacy::q4_0,
            Q4_0,
            32,
            18,
            34,
            $crate::cpu::kernels::dot_legacy::dot_q4_0
        );
        $wrap!($($lead;)?
            legacy::q4_1,
            Q4_1,
            32,
            20,
            36,
            $crate::cpu::kernels::dot_legacy::dot_q4_1
        );
        $wrap!($($lead;)?
            legacy::q5_0,
            Q5_0,
            32,
            22,
            34,
            $crate::cpu::kernels::dot_legacy::dot_q5_0
        );
        $wrap!($($lead;)?
            legacy::q5_1,
            Q5_1,
            32,
            24,
            36,
            $crate::cpu::kernels::dot_legacy::dot_q5_1
        );
        $wrap!($($lead;)?
            legacy::iq4_nl,
            IQ4_NL,
            32,
            18,
            34,
            $crate::cpu::kernels::dot_legacy::dot_iq4_nl
        );
        $wrap!($($lead;)?
            kquants::q2_k,
            Q2_K,
            256,
            84,
            292,
            $crate::cpu::kernels::dot_kquants::dot_q2_k
        );
        $wrap!($($lead;)?
            kquants::q3_k,
            Q3_K,
            256,
            110,
            292,
            $crate::cpu::kernels::dot_kquants::dot_q3_k
        );
        $wrap!($($lead;)?
            kquants::q4_k,
            Q4_K,
            256,
            144,
            292,
            $crate::cpu::kernels::dot_kquants::dot_q4_k
        );
        $wrap!($($lead;)?
            kquants::q5_k,
            Q5_K,
            256,
            176,
            292,
            $crate::cpu::kernels::dot_kquants::dot_q5_k
        );
        $wrap!($($lead;)?
            kquants::q6_k,
            Q6_K,
            256,
            210,
            292,
            $crate::cpu::kernels::dot_kquants::dot_q6_k
        );
        $wrap!($($lead;)?
            kquants::iq4_xs,
            IQ4_XS,
            256,
            136,
            292,
            $crate::cpu::kernels::dot_kquants::dot_iq4_xs
        );
        $wrap!($($lead;)?
            iquants::iq2_xxs,
            IQ2_XXS,
            256,
            66,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq2_xxs
        );
        $wrap!($($lead;)?
            iquants::iq2_xs,
            IQ2_XS,
            256,
            74,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq2_xs
        );
        $wrap!($($lead;)?
            iquants::iq2_s,
            IQ2_S,
            256,
            82,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq2_s
        );
        $wrap!($($lead;)?
            iquants::iq3_xxs,
            IQ3_XXS,
            256,
            98,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq3_xxs
        );
        $wrap!($($lead;)?
            iquants::iq3_s,
            IQ3_S,
            256,
            110,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq3_s
        );
        $wrap!($($lead;)?
            iquants::iq1_s,
            IQ1_S,
            256,
            50,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq1_s
        );
        $wrap!($($lead;)?
            iquants::iq1_m,
            IQ1_M,
            256,
            56,
            292,
            $crate::cpu::kernels::dot_iquants::dot_iq1_m
        );
    };
}

/// `return Some(wrappers)` if `$weight` is the type of this list entry (for
/// [`for_each_vectorised_type!`] in the per-ISA `dot_for` functions).
#[allow(unused_macros)]
macro_rules! return_if_type {
    ($weight:ident; $mod_:ident :: $f:ident, $ty:ident, $($rest:tt)*) => {
        if $weight == $crate::quant::GgmlType::$ty {
            return Some(($f::dot as VecDotFn, $f::multi as VecDotMultiFn));
        }
    };
}

mod act;
mod dot_float;
mod dot_iquants;
mod dot_kquants;
mod dot_legacy;
mod isa;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod panel;
mod raw;
mod store;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod attn_tests;
#[cfg(test)]
mod simd_tests;
#[cfg(test)]
mod tests;

use crate::quant::GgmlType;
use crate::{Error, Result};

pub use act::{quantize_activation, quantize_activation_scalar};
pub use isa::{active_isa, dot_kernel, kernels_for, Isa};
pub use store::quantize_row;

/// Dot product of `n` elements: a weight row (raw blocks of the weight type) with an activation
/// row already converted to the kernel's activation type.
///
/// The slices must hold exactly `n` elements of their types (see [`DotKernel::dot`] for the
/// checked call). Shorter slices are never read out of bounds: the sum then covers only the
/// whole blocks present in both.
pub type VecDotFn = fn(n: usize, weight_row: &[u8], act_row: &[u8]) -> f32;

/// One weight row with several activation rows: `out[r] = weight_row · act_rows[r·stride..]`
/// for `r < out.len()`. Vectorised versions decode each weight block once for all rows.
/// Out-of-range activation rows are never read (the sums then cover the blocks present).
pub type VecDotMultiFn =
    fn(n: usize, weight_row: &[u8], act_rows: &[u8], stride: usize, out: &mut [f32]);

/// How the CPU multiplies a row of weights of one type with an activation row.
#[derive(Debug, Clone, Copy)]
pub struct DotKernel {
    pub weight: GgmlType,
    /// vec_dot_type: Q8_0, Q8_1, Q8_K, F16, BF16 or F32.
    pub act: GgmlType,
    /// The dot product to call (vectorised where the ISA has one; see the module docs).
    pub vec_dot: VecDotFn,
    /// One weight row times several activation rows.
    pub multi: VecDotMultiFn,
    /// The portable scalar implementation, kept as the reference for faster variants.
    pub scalar: VecDotFn,
}

impl DotKernel {
    /// Checked dot product: `weight_row` and `act_row` must hold exactly `n` elements.
    pub fn dot(&self, n: usize, weight_row: &[u8], act_row: &[u8]) -> Result<f32> {
        check_len(self.weight, n, weight_row.len(), "weight row")?;
        check_len(self.act, n, act_row.len(), "activation row")?;
        Ok((self.vec_dot)(n, weight_row, act_row))
    }
}

pub(crate) fn check_len(ty: GgmlType, n: usize, len: usize, what: &str) -> Result<()> {
    match ty.row_bytes(n as u64) {
        Some(b) if b == len as u64 => Ok(()),
        Some(b) => Err(Error::Invalid(format!(
            "{what}: {n} elements of {ty} take {b} bytes, got {len}"
        ))),
        None => Err(Error::Invalid(format!(
            "{what}: {n} elements are not whole blocks of {ty}"
        ))),
    }
}

macro_rules! kernels {
    ($( $weight:ident => $act:ident, $f:path; )*) => {
        /// Every weight type the CPU can multiply, with its activation type (ggml's
        /// `vec_dot_type`) and dot product.
        pub static KERNELS: &[DotKernel] = &[
            $( DotKernel {
                weight: GgmlType::$weight,
                act: GgmlType::$act,
                vec_dot: $f,
                multi: |n, w, a, stride, out| multi_by_rows($f, n, w, a, stride, out),
                scalar: $f,
            }, )*
        ];
    };
}

kernels! {
    F32 => F32, dot_float::dot_f32;
    F16 => F16, dot_float::dot_f16;
    BF16 => BF16, dot_float::dot_bf16;
    Q4_0 => Q8_0, dot_legacy::dot_q4_0;
    Q4_1 => Q8_1, dot_legacy::dot_q4_1;
    Q5_0 => Q8_0, dot_legacy::dot_q5_0;
    Q5_1 => Q8_1, dot_legacy::dot_q5_1;
    Q8_0 => Q8_0, dot_legacy::dot_q8_0;
    IQ4_NL => Q8_0, dot_legacy::dot_iq4_nl;
    MXFP4 => Q8_0, dot_legacy::dot_mxfp4;
    NVFP4 => Q8_0, dot_legacy::dot_nvfp4;
    Q1_0 => Q8_0, dot_legacy::dot_q1_0;
    Q2_0 => Q8_0, dot_legacy::dot_q2_0;
    Q2_K => Q8_K, dot_kquants::dot_q2_k;
    Q3_K => Q8_K, dot_kquants::dot_q3_k;
    Q4_K => Q8_K, dot_kquants::dot_q4_k;
    Q5_K => Q8_K, dot_kquants::dot_q5_k;
    Q6_K => Q8_K, dot_kquants::dot_q6_k;
    IQ4_XS => Q8_K, dot_kquants::dot_iq4_xs;
    TQ1_0 => Q8_K, dot_kquants::dot_tq1_0;
    TQ2_0 => Q8_K, dot_kquants::dot_tq2_0;
    IQ2_XXS => Q8_K, dot_iquants::dot_iq2_xxs;
    IQ2_XS => Q8_K, dot_iquants::dot_iq2_xs;
    IQ2_S => Q8_K, dot_iquants::dot_iq2_s;
    IQ3_XXS => Q8_K, dot_iquants::dot_iq3_xxs;
    IQ3_S => Q8_K, dot_iquants::dot_iq3_s;
    IQ1_S => Q8_K, dot_iquants::dot_iq1_s;
    IQ1_M => Q8_K, dot_iquants::dot_iq1_m;
}

/// Decodes one row of `ty` (`out.len()` values) to f32, vectorised for F16 where the active ISA
/// can (same values: the conversion is exact).
pub fn row_to_f32(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if ty == GgmlType::F16
        && active_isa().is_x86()
        && bytes.len() == 2 * out.len()
        && x86::f16_row(bytes, out)
    {
        return Ok(());
    }
    ty.dequantize(bytes, out)
}

/// `Σ a[i]·b[i]` over the common length, by the active ISA's F32 kernel.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_f32_fn()(a, b)
}

/// [`dot_f32`] with the kernel looked up once, for hot loops: a closure over the active ISA's
/// F32 dot product.
pub fn dot_f32_fn() -> impl Fn(&[f32], &[f32]) -> f32 + Copy + Send + Sync {
    let f = dot_kernel(GgmlType::F32).map_or(dot_float::dot_f32 as VecDotFn, |k| k.vec_dot);
    move |a: &[f32], b: &[f32]| {
        let n = a.len().min(b.len());
        f(
            n,
            bytemuck::cast_slice(&a[..n]),
            bytemuck::cast_slice(&b[..n]),
        )
    }
}

/// `acc[i] = f16(acc[i] + a·x[i])` over the common length, rounded once after a fused
/// multiply-add and then to f16: how ggml accumulates attention values kept in f16.
pub fn axpy_round_f16(acc: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if active_isa().is_x86() && x86::axpy_round_f16(acc, a, x) {
        return;
    }
    acc.iter_mut()
        .zip(x)
        .for_each(|(o, &v)| *o = half::f16::from_f32(v.mul_add(a, *o)).to_f32());
}

/// `out[h·n + i] = Σ_{s < rows} w[h·rows + s] · v[s·stride + i]` for `heads` weight rows
/// (`n = out.len() / heads`): attention's weighted sum of value rows for a group of heads that
/// share them, each value row read once. Per element it is [`axpy`] applied for `s` in order,
/// with the same rounding. Panics if a slice is too short.
pub fn weighted_row_sums(
    v: &[f32],
    stride: usize,
    rows: usize,
    w: &[f32],
    heads: usize,
    out: &mut [f32],
) {
    weighted_row_sums_isa(active_isa(), v, stride, rows, w, heads, out)
}

/// [`weighted_row_sums`] by the kernels of `isa` (for tests of every build).
pub(crate) fn weighted_row_sums_isa(
    isa: Isa,
    v: &[f32],
    stride: usize,
    rows: usize,
    w: &[f32],
    heads: usize,
    out: &mut [f32],
) {
    let n = out.len() / heads.max(1);
    assert!(heads > 0 && out.len() == heads * n && w.len() >= heads * rows);
    assert!(rows == 0 || v.len() >= (rows - 1) * stride + n);
    #[cfg(target_arch = "x86_64")]
    if isa.is_x86() && x86::weighted_row_sums(isa == Isa::Avx512, v, stride, rows, w, heads, out) {
        return;
    }
    let _ = isa;
    for (h, o) in out.chunks_exact_mut(n).enumerate() {
        o.fill(0.0);
        for s in 0..rows {
            axpy(o, w[h * rows + s], &v[s * stride..s * stride + n]);
        }
    }
}

/// `out[j·ld + s] = Σ_{i < d} q[j·q_stride + i] · k[s·k_stride + i]` for `j < n_q`, `s < n_k`:
/// attention's query·key scores for a few query vectors against a run of keys, as one small
/// GEMM. On x86 a register tile of queries × keys is accumulated together (each key loaded
/// once per tile of queries), each product in one FMA accumulator of 8 lanes (AVX2) or 16
/// lanes (AVX-512) over the chunks of `d`, lanes added pairwise, the `d % 8` tail by multiply
/// and add: a rounding of the sum that differs from [`dot_f32`]'s only in the order of addition. Elsewhere it is [`dot_f32`] per
/// pair. Panics if a slice is too short or `ld < n_k`.
#[allow(clippy::too_many_arguments)]
pub fn dot_f32_tile(
    d: usize,
    q: &[f32],
    q_stride: usize,
    n_q: usize,
    k: &[f32],
    k_stride: usize,
    n_k: usize,
    out: &mut [f32],
    ld: usize,
) {
    dot_f32_tile_isa(active_isa(), d, q, q_stride, n_q, k, k_stride, n_k, out, ld)
}

/// [`dot_f32_tile`] by the kernels of `isa` (for tests of every build).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_f32_tile_isa(
    isa: Isa,
    d: usize,
    q: &[f32],
    q_stride: usize,
    n_q: usize,
    k: &[f32],
    k_stride: usize,
    n_k: usize,
    out: &mut [f32],
    ld: usize,
) {
    if n_q == 0 || n_k == 0 {
        return;
    }
    assert!(ld >= n_k && out.len() >= (n_q - 1) * ld + n_k);
    assert!(q.len() >= (n_q - 1) * q_stride + d && k.len() >= (n_k - 1) * k_stride + d);
    #[cfg(target_arch = "x86_64")]
    if isa.is_x86()
        && x86::dot_f32_tile(
            isa == Isa::Avx512,
            d,
            q,
            q_stride,
            n_q,
            k,
            k_stride,
            n_k,
            out,
            ld,
        )
    {
        return;
    }
    let dot = kernels_for(isa)
        .and_then(|t| t.iter().find(|k| k.weight == GgmlType::F32))
        .map_or(dot_float::dot_f32 as VecDotFn, |k| k.vec_dot);
    for j in 0..n_q {
        let qj: &[u8] = bytemuck::cast_slice(&q[j * q_stride..j * q_stride + d]);
        for (s, o) in out[j * ld..j * ld + n_k].iter_mut().enumerate() {
            *o = dot(
                d,
                bytemuck::cast_slice(&k[s * k_stride..s * k_stride + d]),
                qj,
            );
        }
    }
}

/// `acc[i] += a·x[i]` over the common length (FMA on the vectorised ISAs, so the last bit may
/// differ from the scalar loop's separate multiply and add).
pub fn axpy(acc: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if active_isa().is_x86() && x86::axpy(acc, a, x) {
        return;
    }
    acc.iter_mut().zip(x).for_each(|(o, &v)| *o += a * v);
}

/// Whole blocks present in a weight row and in `n_acts` activation rows `stride` bytes apart:
/// all a vectorised kernel may read (the per-ISA wrappers clamp their block counts to it).
#[allow(clippy::too_many_arguments, dead_code)]
#[inline(always)]
fn whole_blocks(
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

/// An ISA's table: `scalar` with the entries `pick` has vectorised swapped in.
#[allow(dead_code)]
fn swap_in(
    scalar: &[DotKernel],
    pick: impl Fn(GgmlType) -> Option<(VecDotFn, VecDotMultiFn)>,
) -> Vec<DotKernel> {
    scalar
        .iter()
        .map(|k| match pick(k.weight) {
            Some((vec_dot, multi)) => DotKernel {
                vec_dot,
                multi,
                ..*k
            },
            None => *k,
        })
        .collect()
}

/// [`VecDotMultiFn`] from a single-row kernel: one call per activation row.
pub(crate) fn multi_by_rows(
    f: VecDotFn,
    n: usize,
    w: &[u8],
    a: &[u8],
    stride: usize,
    out: &mut [f32],
) {
    for (r, o) in out.iter_mut().enumerate() {
        let start = (r * stride).min(a.len());
        *o = f(n, w, &a[start..]);
    }
}
