//! Model-level parity: real models and the tiny DeepSeek-V3-shaped fixtures loaded through
//! `Model::load` on the wgpu backend produce the CPU backend's greedy tokens, with logits
//! within a small normalised error.
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

/// Largest logits NMSE accepted between the backends: float models differ only in summation
/// order; with quantized weights the CPU backend also rounds activations to 8 bits (ggml's
/// vec_dot types) where the GPU keeps them in f32.
const FLOAT_BOUND: f64 = 1e-4;
const QUANT_BOUND: f64 = 2e-3;

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
    assert_eq!(p.gpu.tokens, p.cpu.tokens, "{name}: greedy tokens differ");
    let bound = if p.quantized {
        QUANT_BOUND
    } else {
        FLOAT_BOUND
    };
    assert!(
        p.max_nmse <= bound,
        "{name}: logits NMSE {:e} > {bound:e}",
        p.max_nmse
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
