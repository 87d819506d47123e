//! sluice's CPU kernels against the llama.cpp CPU backend (x86-64, AVX2 build).
//!
//! Fixtures from `tests/gen/quant_golden.py` (through `tests/gen/ggml_ref.c`):
//! * `from_float_<type>`: ggml-cpu's conversion of the activation rows to each activation and
//!   KV-cache type. sluice must produce the same bytes (bit-exact codes and scales).
//! * `vec_dot_<type>`: ggml-cpu's dot product of random weight rows with those activations.
//!   sluice's scalar kernels sum in ggml's portable order while the x86 build sums in SIMD
//!   lanes, so the results may differ by float rounding only: at most `DOT_TOLERANCE` times
//!   Σ|w·a| (the size of the terms being added).

use sluice_core::cpu::kernels::{dot_kernel, quantize_activation, quantize_row};
use sluice_core::quant::GgmlType;
use sluice_tests::fixtures_dir;
use sluice_tests::quant_fixture::{ActivationRows, FromFloat, VecDot};
use std::path::PathBuf;

/// Relative to Σ|w·a|. Measured on these fixtures: at most 6e-8 for every type.
const DOT_TOLERANCE: f64 = 2.5e-7;

fn dir() -> PathBuf {
    fixtures_dir().join("quant").join("kernels")
}

fn activations() -> ActivationRows {
    ActivationRows::read(&dir().join("x.bin")).unwrap_or_else(|e| panic!("{e}"))
}

fn row_bytes(ty: GgmlType, n: usize) -> usize {
    ty.row_bytes(n as u64).expect("whole blocks") as usize
}

/// `convert` must turn every activation row into ggml's bytes for `ty`.
fn check_from_float(
    ty: GgmlType,
    convert: fn(GgmlType, &[f32], &mut [u8]) -> sluice_core::Result<()>,
) {
    let x = activations();
    let path = dir().join(format!("from_float_{}.bin", ty.name().to_lowercase()));
    let fx = FromFloat::read(&path, row_bytes(ty, x.n)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((fx.type_id, fx.n), (ty.0, x.n), "{}", path.display());
    for (r, (xr, want)) in x.rows.iter().zip(&fx.rows).enumerate() {
        let mut got = vec![0u8; want.len()];
        convert(ty, xr, &mut got).unwrap_or_else(|e| panic!("{ty}: {e}"));
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            let block = ty.info().expect("known").block_bytes as usize;
            panic!(
                "{ty} row {r}: first differing byte {i} (block {}, offset {}): {:#04x}, ggml {:#04x}",
                i / block,
                i % block,
                got[i],
                want[i]
            );
        }
    }
}

fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f64> {
    let mut out = vec![0f32; n];
    ty.dequantize(bytes, &mut out).expect("whole blocks");
    out.into_iter().map(f64::from).collect()
}

fn check_vec_dot(weight: GgmlType) {
    let x = activations();
    let kernel = dot_kernel(weight).expect("kernel");
    let path = dir().join(format!("vec_dot_{}.bin", weight.name().to_lowercase()));
    let fx = VecDot::read(&path, row_bytes(weight, x.n)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (fx.weight_id, fx.act_id, fx.n),
        (weight.0, kernel.act.0, x.n)
    );
    let mut worst = 0.0f64;
    for (r, ((w, xr), &want)) in fx.weights.iter().zip(&x.rows).zip(&fx.dots).enumerate() {
        let mut act = vec![0u8; row_bytes(kernel.act, x.n)];
        quantize_activation(kernel.act, xr, &mut act).expect("activation");
        let got = kernel.dot(x.n, w, &act).expect("sizes");
        let scale: f64 = dequant(weight, w, x.n)
            .iter()
            .zip(dequant(kernel.act, &act, x.n))
            .map(|(a, b)| (a * b).abs())
            .sum();
        let rel = (got as f64 - want as f64).abs() / scale.max(f64::MIN_POSITIVE);
        worst = worst.max(rel);
        assert!(
            rel <= DOT_TOLERANCE,
            "{weight} row {r}: sluice {got:e}, ggml {want:e}, difference {rel:e} of Σ|w·a| = {scale:e}"
        );
    }
    eprintln!("{weight}: largest difference from ggml {worst:.2e} of Σ|w·a|");
}

macro_rules! from_float_tests {
    ($($test:ident => $ty:ident, $f:path;)*) => {
        $( #[test] fn $test() { check_from_float(GgmlType::$ty, $f); } )*
    };
}

from_float_tests! {
    activation_q8_0_matches_ggml_x86 => Q8_0, quantize_activation;
    activation_q8_1_matches_ggml_x86 => Q8_1, quantize_activation;
    activation_q8_k_matches_ggml_x86 => Q8_K, quantize_activation;
    activation_f16_matches_ggml_x86 => F16, quantize_activation;
    activation_bf16_matches_ggml_x86 => BF16, quantize_activation;
    storage_q8_0_matches_ggml_x86 => Q8_0, quantize_row;
    storage_f16_matches_ggml_x86 => F16, quantize_row;
    storage_bf16_matches_ggml_x86 => BF16, quantize_row;
    storage_q4_0_matches_ggml_x86 => Q4_0, quantize_row;
    storage_q4_1_matches_ggml_x86 => Q4_1, quantize_row;
    storage_q5_0_matches_ggml_x86 => Q5_0, quantize_row;
    storage_q5_1_matches_ggml_x86 => Q5_1, quantize_row;
    storage_iq4_nl_matches_ggml_x86 => IQ4_NL, quantize_row;
}

macro_rules! vec_dot_tests {
    ($($test:ident => $ty:ident,)*) => {
        $( #[test] fn $test() { check_vec_dot(GgmlType::$ty); } )*
    };
}

vec_dot_tests! {
    vec_dot_f32_close_to_ggml_x86 => F32,
    vec_dot_f16_close_to_ggml_x86 => F16,
    vec_dot_bf16_close_to_ggml_x86 => BF16,
    vec_dot_q4_0_close_to_ggml_x86 => Q4_0,
    vec_dot_q4_1_close_to_ggml_x86 => Q4_1,
    vec_dot_q5_0_close_to_ggml_x86 => Q5_0,
    vec_dot_q5_1_close_to_ggml_x86 => Q5_1,
    vec_dot_q8_0_close_to_ggml_x86 => Q8_0,
    vec_dot_iq4_nl_close_to_ggml_x86 => IQ4_NL,
    vec_dot_mxfp4_close_to_ggml_x86 => MXFP4,
    vec_dot_nvfp4_close_to_ggml_x86 => NVFP4,
    vec_dot_q1_0_close_to_ggml_x86 => Q1_0,
    vec_dot_q2_0_close_to_ggml_x86 => Q2_0,
    vec_dot_q2_k_close_to_ggml_x86 => Q2_K,
    vec_dot_q3_k_close_to_ggml_x86 => Q3_K,
    vec_dot_q4_k_close_to_ggml_x86 => Q4_K,
    vec_dot_q5_k_close_to_ggml_x86 => Q5_K,
    vec_dot_q6_k_close_to_ggml_x86 => Q6_K,
    vec_dot_iq4_xs_close_to_ggml_x86 => IQ4_XS,
    vec_dot_tq1_0_close_to_ggml_x86 => TQ1_0,
    vec_dot_tq2_0_close_to_ggml_x86 => TQ2_0,
    vec_dot_iq2_xxs_close_to_ggml_x86 => IQ2_XXS,
    vec_dot_iq2_xs_close_to_ggml_x86 => IQ2_XS,
    vec_dot_iq2_s_close_to_ggml_x86 => IQ2_S,
    vec_dot_iq3_xxs_close_to_ggml_x86 => IQ3_XXS,
    vec_dot_iq3_s_close_to_ggml_x86 => IQ3_S,
    vec_dot_iq1_s_close_to_ggml_x86 => IQ1_S,
    vec_dot_iq1_m_close_to_ggml_x86 => IQ1_M,
}
