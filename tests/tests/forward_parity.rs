//! The CPU forward pass against llama.cpp on every fixture (see `sluice_tests::parity`).
//!
//! Bounds from the forward-pass issue: mean KL ≤ 1e-4 for F32/F16/BF16/Q8_0 and ≤ 2e-3 for
//! every other type (or 1.5 × llama.cpp's own flash-attention noise floor when that is
//! larger); top-1 agreement where llama.cpp's gap ≥ 0.1; greedy tokens identical up to the
//! first near-tie, for each recorded KV-cache type. Each test prints its measurements.

use sluice_tests::parity::check;

const FLOAT: f64 = 1e-4;
const QUANT: f64 = 2e-3;

macro_rules! parity {
    ($($test:ident => $name:literal, $bound:expr;)*) => {
        $(
            #[test]
            fn $test() {
                let report = check($name, $bound);
                println!("{report}");
            }
        )*
    };
}

parity! {
    mla_f32 => "tiny-dsv3-mla-F32", FLOAT;
    mla_f16 => "tiny-dsv3-mla-F16", FLOAT;
    mla_bf16 => "tiny-dsv3-mla-BF16", FLOAT;
    mla_q8_0 => "tiny-dsv3-mla-Q8_0", FLOAT;
    mla_q4_0 => "tiny-dsv3-mla-Q4_0", QUANT;
    mla_q4_1 => "tiny-dsv3-mla-Q4_1", QUANT;
    mla_q5_0 => "tiny-dsv3-mla-Q5_0", QUANT;
    mla_q5_1 => "tiny-dsv3-mla-Q5_1", QUANT;
    mla_q2_k => "tiny-dsv3-mla-Q2_K", QUANT;
    mla_q3_k => "tiny-dsv3-mla-Q3_K", QUANT;
    mla_q4_k => "tiny-dsv3-mla-Q4_K", QUANT;
    mla_q5_k => "tiny-dsv3-mla-Q5_K", QUANT;
    mla_q6_k => "tiny-dsv3-mla-Q6_K", QUANT;
    mla_iq1_s => "tiny-dsv3-mla-IQ1_S", QUANT;
    mla_iq1_m => "tiny-dsv3-mla-IQ1_M", QUANT;
    mla_iq2_xxs => "tiny-dsv3-mla-IQ2_XXS", QUANT;
    mla_iq2_xs => "tiny-dsv3-mla-IQ2_XS", QUANT;
    mla_iq2_s => "tiny-dsv3-mla-IQ2_S", QUANT;
    mla_iq3_xxs => "tiny-dsv3-mla-IQ3_XXS", QUANT;
    mla_iq3_s => "tiny-dsv3-mla-IQ3_S", QUANT;
    mla_iq4_nl => "tiny-dsv3-mla-IQ4_NL", QUANT;
    mla_iq4_xs => "tiny-dsv3-mla-IQ4_XS", QUANT;
    legacy_f32 => "tiny-dsv3-legacy-F32", FLOAT;
    legacy_q8_0 => "tiny-dsv3-legacy-Q8_0", FLOAT;
    legacy_q4_k => "tiny-dsv3-legacy-Q4_K", QUANT;
    legacy_iq2_xxs => "tiny-dsv3-legacy-IQ2_XXS", QUANT;
    lite_f32 => "tiny-dsv2-lite-F32", FLOAT;
    lite_q8_0 => "tiny-dsv2-lite-Q8_0", FLOAT;
    lite_q4_k => "tiny-dsv2-lite-Q4_K", QUANT;
    lite_iq2_xxs => "tiny-dsv2-lite-IQ2_XXS", QUANT;
    unsloth_style_mix => "tiny-deepseek-v3", QUANT;
}
