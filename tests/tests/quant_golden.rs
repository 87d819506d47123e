//! Bit-exact dequantization of every ggml type against golden values.
//!
//! The fixtures in `tests/fixtures/quant/` come from `tests/gen/quant_golden.py`: gguf-py's
//! numpy dequantizers, or ggml's own C code for the types gguf-py lacks (each file records its
//! reference). Every value must match to the bit (`f32::to_bits`), including the sign of zero
//! and infinities from huge scales.

use sluice_core::quant::GgmlType;
use sluice_tests::fixtures_dir;
use sluice_tests::quant_fixture::QuantFixture;

fn check(ty: GgmlType) {
    let info = ty.info().expect("type in the table");
    let path = fixtures_dir()
        .join("quant")
        .join(format!("{}.bin", info.name.to_lowercase()));
    let fx = QuantFixture::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fx.type_id,
        ty.0,
        "{}: fixture holds another type",
        path.display()
    );
    assert_eq!(
        fx.block_bytes, info.block_bytes as usize,
        "{ty}: block bytes"
    );
    assert_eq!(
        fx.block_elems, info.block_elems as usize,
        "{ty}: block elements"
    );
    assert!(fx.n_blocks > 0, "{ty}: empty fixture");

    let mut out = vec![f32::NAN; fx.expected.len()];
    ty.dequantize(&fx.blocks, &mut out)
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    if let Some(i) = (0..out.len()).find(|&i| out[i].to_bits() != fx.expected[i].to_bits()) {
        panic!(
            "{ty}: first mismatch at element {i} (block {}, offset {}): got {:e} ({:#010x}), \
             {} says {:e} ({:#010x})",
            i / fx.block_elems,
            i % fx.block_elems,
            out[i],
            out[i].to_bits(),
            fx.reference,
            fx.expected[i],
            fx.expected[i].to_bits()
        );
    }
}

macro_rules! golden_tests {
    ($($test:ident => $ty:ident,)*) => {
        $(
            #[test]
            fn $test() {
                check(GgmlType::$ty);
            }
        )*
    };
}

golden_tests! {
    dequant_f32_matches_gguf_py => F32,
    dequant_f16_matches_gguf_py => F16,
    dequant_bf16_matches_gguf_py => BF16,
    dequant_i8_matches_numpy_cast => I8,
    dequant_i16_matches_numpy_cast => I16,
    dequant_i32_matches_numpy_cast => I32,
    dequant_i64_matches_numpy_cast => I64,
    dequant_f64_matches_numpy_cast => F64,
    dequant_q4_0_matches_gguf_py => Q4_0,
    dequant_q4_1_matches_gguf_py => Q4_1,
    dequant_q5_0_matches_gguf_py => Q5_0,
    dequant_q5_1_matches_gguf_py => Q5_1,
    dequant_q8_0_matches_gguf_py => Q8_0,
    dequant_q8_1_matches_gguf_py_q8_0 => Q8_1,
    dequant_q2_k_matches_gguf_py => Q2_K,
    dequant_q3_k_matches_gguf_py => Q3_K,
    dequant_q4_k_matches_gguf_py => Q4_K,
    dequant_q5_k_matches_gguf_py => Q5_K,
    dequant_q6_k_matches_gguf_py => Q6_K,
    dequant_q8_k_matches_ggml_c => Q8_K,
    dequant_iq2_xxs_matches_gguf_py => IQ2_XXS,
    dequant_iq2_xs_matches_gguf_py => IQ2_XS,
    dequant_iq2_s_matches_gguf_py => IQ2_S,
    dequant_iq3_xxs_matches_gguf_py => IQ3_XXS,
    dequant_iq3_s_matches_gguf_py => IQ3_S,
    dequant_iq1_s_matches_gguf_py => IQ1_S,
    dequant_iq1_m_matches_gguf_py => IQ1_M,
    dequant_iq4_nl_matches_gguf_py => IQ4_NL,
    dequant_iq4_xs_matches_gguf_py => IQ4_XS,
    dequant_tq1_0_matches_gguf_py => TQ1_0,
    dequant_tq2_0_matches_gguf_py => TQ2_0,
    dequant_mxfp4_matches_gguf_py => MXFP4,
    dequant_nvfp4_matches_gguf_py => NVFP4,
    dequant_q1_0_matches_ggml_c => Q1_0,
    dequant_q2_0_matches_ggml_c => Q2_0,
}

/// Every decodable type of the table has a golden test above.
#[test]
fn every_type_has_a_fixture() {
    for t in sluice_core::quant::TYPES.iter().filter(|t| !t.removed) {
        let path = fixtures_dir()
            .join("quant")
            .join(format!("{}.bin", t.name.to_lowercase()));
        assert!(path.exists(), "no golden file for {}", t.name);
    }
}
