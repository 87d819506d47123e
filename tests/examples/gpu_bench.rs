//! Decode speed and parity of the wgpu backend against the CPU backend on one model.
//! usage: cargo run --release -p sluice-tests --example gpu_bench -- MODEL.gguf [N_GEN] [THREADS]
use sluice_core::quant::GgmlType;
use sluice_tests::gpu_parity::{compare, SMOLLM2_PROMPT};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: gpu_bench MODEL.gguf [N_GEN] [THREADS]");
        std::process::exit(2);
    };
    let n_gen = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let threads = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    match compare(path, SMOLLM2_PROMPT, n_gen, threads, GgmlType::F16) {
        Ok(p) => {
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            println!("{}", p.summary(&name));
            if p.cpu.tokens != p.gpu.tokens {
                println!(
                    "  cpu tokens: {:?}\n  gpu tokens: {:?}",
                    p.cpu.tokens, p.gpu.tokens
                );
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("gpu_bench: {path}: {e}");
            std::process::exit(1);
        }
    }
}
