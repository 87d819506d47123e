//! A real, confident model: SmolLM2-135M-Instruct Q4_1 (llama architecture). Greedy answers to
//! three chat prompts equal llama.cpp's up to its first near-tie, our tokenizer and chat
//! template produce llama.cpp's prompt tokens, and `sluice perplexity` matches
//! llama-perplexity's PPL within 0.5 % (golden: tests/fixtures/golden/smollm2-135m-instruct-q4_1.json).
//! The model is fetched by `tests/gen/smollm2.sh` (run by `tests/setup.sh`).

use serde_json::Value;
use sluice_core::chat::{ChatTemplate, Message};
use sluice_core::cpu::CpuBackend;
use sluice_core::model::{LoadOptions, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use sluice_core::tokenizer::Tokenizer;
use sluice_tests::parity::greedy_run;
use std::path::PathBuf;

fn model_path() -> PathBuf {
    let dir = std::env::var_os("SLUICE_REF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sluice-ref")
        });
    let p = dir.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} is missing: run tests/gen/smollm2.sh (or tests/setup.sh)",
        p.display()
    );
    p
}

fn golden() -> Value {
    let p = sluice_tests::fixtures_dir().join("golden/smollm2-135m-instruct-q4_1.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_answers_match_llama_cpp() {
    let path = model_path();
    let gguf = sluice_native::open::open_model(path.to_str().unwrap(), Default::default()).unwrap();
    let tok = Tokenizer::from_metadata(gguf.metadata()).unwrap();
    let template = ChatTemplate::detect(gguf.metadata(), &tok)
        .unwrap()
        .expect("SmolLM2 has a chat template");
    let model = block_on(Model::load(
        &gguf,
        CpuBackend::new(2).unwrap(),
        LoadOptions::default(),
    ))
    .unwrap();
    for (i, g) in golden()["greedy"].as_array().unwrap().iter().enumerate() {
        let prompt_text = g["prompt_text"].as_str().unwrap();
        let prompt = ids(&g["prompt_ids"]);
        assert_eq!(
            tok.encode(prompt_text, true, true),
            prompt,
            "prompt {i}: tokenization differs from llama.cpp's"
        );
        // The prompt text is what the chat template renders for the user message.
        let user = prompt_text
            .split("<|im_start|>user\n")
            .nth(1)
            .and_then(|s| s.split("<|im_end|>").next())
            .unwrap();
        assert_eq!(
            template.render(&[Message::new("user", user)], true),
            prompt_text,
            "prompt {i}: chat template"
        );
        let want = ids(&g["ids"]);
        let covered = g["steps_before_near_tie"].as_u64().unwrap() as usize;
        let got = greedy_run(&model, &prompt, want.len(), GgmlType::F16);
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        println!("prompt {i}: {same} of {} tokens identical ({covered} before llama.cpp's first near-tie)", want.len());
        assert!(
            same >= covered,
            "prompt {i}: diverges at step {same}\n  ours   {got:?}\n  theirs {want:?}"
        );
    }
}

#[test]
fn perplexity_matches_llama_perplexity() {
    let g = golden();
    let want = g["perplexity"]["ppl"].as_f64().unwrap();
    let text =
        std::fs::read_to_string(sluice_tests::fixtures_dir().join("text/river-notes.txt")).unwrap();
    let loaded = sluice_native::load::load(model_path().to_str().unwrap(), 2, false).unwrap();
    let tokens = loaded.tokenizer.encode(&text, true, true);
    // llama-perplexity -c 128: every whole chunk of the text.
    let got = sluice_native::cmd::perplexity::score(
        &loaded,
        &tokens,
        128,
        tokens.len() / 128,
        None,
        &mut |_, _| {},
    )
    .unwrap()
    .ppl;
    let rel = (got - want).abs() / want;
    println!(
        "PPL sluice {got:.4}, llama-perplexity {want:.4}: {:.3} % apart",
        100.0 * rel
    );
    assert!(
        rel <= 0.005,
        "PPL {got} is {:.2} % from llama-perplexity's {want}",
        100.0 * rel
    );
}
