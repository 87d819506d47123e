//! Model-level parity: real models and the tiny DeepSeek-V3-shaped fixtures loaded through
//! `Model::load` on the wgpu backend produce the CPU backend's greedy tokens (up to the first
//! near-tie of the CPU's logits) and next-token distributions within a small KL divergence.
//!
//! Models: SmolLM2-135M-Instruct (Q4_1) from `$SLUICE_SMOLLM2`, else the path printed by
//! `tests/gen/smollm2.sh`; every GGUF under `tests/fixtures/models/` (or `$SLUICE_FIXTURES`). A missing model fails
//! the test with instructions (never a silent skip), and so does a missing GPU adapter (see
//! `sluice_shaders::testing`).

use sluice_core::quant::GgmlType;
use sluice_shaders::testing::backend_or_fail;
use sluice_shaders::GpuOptions;
use sluice_tests::gpu_parity::{compare, SMOLLM2_PROMPT};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Mean KL(cpu ‖ gpu) accepted. Float models differ only in the order of f32 sums. With
/// quantized weights both backends round activations to 8-bit codes (the same codes for the
/// same values), but a last-bit difference upstream (a reduction summed in another order, a
/// GPU `exp`) can move a value across a rounding boundary, and one code is 1/127 of a block's
/// largest value (an outlier feature in real models), which later layers amplify. The bound is
/// of the order of llama.cpp's own noise floor on the tiny fixtures (flash attention on vs
/// off: mean KL up to 1e-3, per-position KL up to 3e-2, logits moving by up to 1.7).
const FLOAT_KL: f64 = 1e-5;
const QUANT_KL: f64 = 2e-2;
/// Greedy tokens must agree until the CPU's top-1/top-2 logit gap falls below this (a
/// near-tie, well inside the logit noise above).
const NEAR_TIE: f32 = 0.5;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn smollm2_path() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_SMOLLM2") {
        return PathBuf::from(p);
    }
    let script = repo_root().join("tests/gen/smollm2.sh");
    let found = script
        .exists()
        .then(|| Command::new("bash").arg(&script).output().ok())
        .flatten();
    match found {
        Some(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(text.lines().last().unwrap_or("").trim())
        }
        _ => panic!(
            "SmolLM2-135M-Instruct.Q4_1.gguf not found: set SLUICE_SMOLLM2=/path/to/it \
             or provide tests/gen/smollm2.sh"
        ),
    }
}

/// Skips (by returning false) only where `sluice_shaders::testing` allows running without a GPU.
fn have_gpu() -> bool {
    backend_or_fail(GpuOptions::default()).is_some()
}

fn check(path: &Path, prompt: &[u32], n_gen: usize) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let p = compare(&path.to_string_lossy(), prompt, n_gen, 2, GgmlType::F16)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("{}", p.summary(&name));
    if let Some((step, gap)) = p.divergence {
        assert!(
            gap < NEAR_TIE,
            "{name}: greedy tokens differ at step {step} where the CPU's top-2 gap is {gap}\n  cpu {:?}\n  gpu {:?}",
            p.cpu.tokens,
            p.gpu.tokens
        );
    }
    let bound = if p.quantized { QUANT_KL } else { FLOAT_KL };
    assert!(
        p.mean_kl <= bound,
        "{name}: mean KL {:e} > {bound:e}",
        p.mean_kl
    );
}

#[test]
fn smollm2_greedy_tokens_match_cpu() {
    if !have_gpu() {
        return;
    }
    let path = smollm2_path();
    assert!(path.exists(), "{} does not exist", path.display());
    check(&path, SMOLLM2_PROMPT, 16);
}

#[test]
fn deepseek2_fixtures_match_cpu() {
    if !have_gpu() {
        return;
    }
    let dir = sluice_tests::parity::fixture_root().join("models");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the tiny model fixtures are missing)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    models.sort();
    assert!(!models.is_empty(), "no .gguf fixtures in {}", dir.display());
    let prompt: Vec<u32> = (0..12u32).map(|i| 1 + i * 37).collect();
    for m in &models {
        check(m, &prompt, 8);
    }
}
