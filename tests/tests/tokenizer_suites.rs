//! llama.cpp's tokenizer suites: `models/ggml-vocab-*.gguf` with `.inp` (test strings separated
//! by `\n__ggml_vocab_test__\n`) and `.out` (one line of expected ids per string).
//!
//! Run as llama.cpp's test-tokenizer-0 runs them: `add_special = false`, `parse_special = false`.
//! Every string must tokenize exactly; failures are listed.

use sluice_core::tokenizer::Tokenizer;
use sluice_tests::reference::{llama_cpp_src, read_gguf_metadata};

const SEPARATOR: &str = "\n__ggml_vocab_test__\n";

fn read_cases(vocab: &str) -> Vec<(String, Vec<u32>)> {
    let models = llama_cpp_src().join("models");
    let inp_path = models.join(format!("ggml-vocab-{vocab}.gguf.inp"));
    let out_path = models.join(format!("ggml-vocab-{vocab}.gguf.out"));
    let inp = std::fs::read_to_string(&inp_path)
        .unwrap_or_else(|e| panic!("{}: {e}", inp_path.display()));
    let out = std::fs::read_to_string(&out_path)
        .unwrap_or_else(|e| panic!("{}: {e}", out_path.display()));
    // Split like test-tokenizer-0: a trailing separator does not start an empty case.
    let mut inputs = Vec::new();
    let mut rest = inp.as_str();
    while !rest.is_empty() {
        match rest.find(SEPARATOR) {
            Some(at) => {
                inputs.push(rest[..at].to_owned());
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => {
                inputs.push(rest.to_owned());
                break;
            }
        }
    }
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|t| {
                    t.parse()
                        .unwrap_or_else(|e| panic!("{}: {t:?}: {e}", out_path.display()))
                })
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        expected.len(),
        "{vocab}: .inp and .out disagree on the case count"
    );
    inputs.into_iter().zip(expected).collect()
}

fn run_suite(vocab: &str) {
    let path = llama_cpp_src().join(format!("models/ggml-vocab-{vocab}.gguf"));
    let md = read_gguf_metadata(&path);
    let tok = Tokenizer::from_metadata(&md).unwrap_or_else(|e| panic!("{vocab}: {e}"));
    let cases = read_cases(vocab);
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let got = tok.encode(text, false, false);
        if &got != want {
            failures.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    println!(
        "suite {vocab}: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{vocab}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

macro_rules! suites {
    ($($name:ident => $vocab:literal,)*) => {
        $(
            #[test]
            fn $name() {
                run_suite($vocab);
            }
        )*
    };
}

suites! {
    command_r => "command-r",
    deepseek_coder => "deepseek-coder",
    deepseek_llm => "deepseek-llm",
    falcon => "falcon",
    gpt_2 => "gpt-2",
    llama_bpe => "llama-bpe",
    llama_spm => "llama-spm",
    mpt => "mpt",
    phi_3 => "phi-3",
    qwen2 => "qwen2",
    qwen35 => "qwen35",
    refact => "refact",
    starcoder => "starcoder",
}
