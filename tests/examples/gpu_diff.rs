//! Which op makes the GPU and CPU backends drift apart on a real model: every op runs on both,
//! is compared (NMSE), and the GPU side is reset to the CPU's before the next op.
//! usage: cargo run -p sluice-tests --example gpu_diff -- MODEL.gguf [N_TOKENS]
use sluice_core::cpu::CpuBackend;
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use sluice_native::open::{LocalAccess, LocalOpener};
use sluice_shaders::{GpuOptions, WgpuBackend};
use sluice_tests::gpu_diff::DiffBackend;
use sluice_tests::gpu_parity::{argmax, SMOLLM2_PROMPT};

fn main() -> sluice_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: gpu_diff MODEL.gguf [N_TOKENS]");
        std::process::exit(2);
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let opener = LocalOpener {
        access: LocalAccess::Mmap,
    };
    let gguf = block_on(GgufModel::open(path, &opener))?;
    let mut be = DiffBackend::new(
        CpuBackend::new(0)?,
        block_on(WgpuBackend::new(GpuOptions::default()))?,
    );
    be.settle = std::env::var("FREE").is_err();
    let model = block_on(Model::load(&gguf, be, LoadOptions::default()))?;
    let prompt: Vec<u32> = SMOLLM2_PROMPT
        .iter()
        .map(|&t| t % model.n_vocab as u32)
        .collect();
    let mut s = model.session(prompt.len() + n + 1, GgmlType::F16, GgmlType::F16)?;
    let mut logits = block_on(s.eval(&prompt, Logits::Last))?;
    for _ in 0..n {
        logits = block_on(s.eval(&[argmax(&logits)], Logits::Last))?;
    }
    println!("{}", model.backend().report());
    for (i, (op, e)) in model.backend().trace.borrow().iter().enumerate().take(400) {
        println!("{i:4} {op:>16} {e:.2e}");
    }
    Ok(())
}
