//! Model-level parity of the GPU backend with the CPU backend: the same GGUF loaded on both,
//! a prompt evaluated, then greedy decoding; logits compared at every step and decode speed
//! measured. Used by `tests/gpu_model.rs` and the `gpu_bench` example.

use sluice_core::backend::Backend;
use sluice_core::cpu::CpuBackend;
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use sluice_native::open::{LocalAccess, LocalOpener};
use sluice_shaders::{GpuOptions, WgpuBackend};
use std::time::Instant;

/// One backend's greedy run.
#[derive(Clone, Debug)]
pub struct Run {
    pub backend: String,
    pub tokens: Vec<u32>,
    /// Logits after the prompt, then after each generated token but the last.
    pub logits: Vec<Vec<f32>>,
    pub prompt_ms: f64,
    pub decode_tokens_per_s: f64,
}

/// Greedy decoding of `n_gen` tokens after `prompt` on `backend`.
pub fn greedy<B: Backend + 'static>(
    gguf: &GgufModel,
    backend: B,
    prompt: &[u32],
    n_gen: usize,
    cache: GgmlType,
) -> sluice_core::Result<Run> {
    let model = block_on(Model::load(gguf, backend, LoadOptions::default()))?;
    let describe = model.backend().describe();
    let mut s = model.session(prompt.len() + n_gen + 1, cache, cache)?;
    let prompt: Vec<u32> = prompt.iter().map(|&t| t % model.n_vocab as u32).collect();
    let t0 = Instant::now();
    let mut logits = block_on(s.eval(&prompt, Logits::Last))?;
    let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut all = vec![logits.clone()];
    let mut tokens = Vec::with_capacity(n_gen);
    let t1 = Instant::now();
    for i in 0..n_gen {
        let next = argmax(&logits);
        tokens.push(next);
        if i + 1 < n_gen {
            logits = block_on(s.eval(&[next], Logits::Last))?;
            all.push(logits.clone());
        }
    }
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(Run {
        backend: describe,
        tokens,
        logits: all,
        prompt_ms,
        decode_tokens_per_s: (n_gen.saturating_sub(1)) as f64 / decode_s.max(1e-9),
    })
}

/// Top-1 minus top-2 logit.
pub fn top_gap(v: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in v {
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    a - b
}

pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Σ(a − b)² / Σb².
pub fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let (mut e, mut n) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        e += (x as f64 - y as f64).powi(2);
        n += (y as f64).powi(2);
    }
    e / n.max(f64::MIN_POSITIVE)
}

/// Both runs of one model and how far apart they are.
pub struct Parity {
    pub cpu: Run,
    pub gpu: Run,
    /// Largest NMSE of the logits over the steps where both decoded the same tokens.
    pub max_nmse: f64,
    /// Mean KL(cpu ‖ gpu) of the next-token distributions over those steps.
    pub mean_kl: f64,
    /// The first step whose greedy tokens differ, and the CPU's top-1/top-2 logit gap there.
    pub divergence: Option<(usize, f32)>,
    /// Some weights are quantized: the CPU backend then rounds activations to 8 bits for its
    /// dot products (as ggml does) while the GPU multiplies f32 activations.
    pub quantized: bool,
}

impl Parity {
    pub fn summary(&self, name: &str) -> String {
        let tokens = match self.divergence {
            None => format!("{} greedy tokens match", self.cpu.tokens.len()),
            Some((step, gap)) => format!(
                "greedy tokens match for {step} of {} (then differ where the CPU's top-2 gap is {gap:.3})",
                self.cpu.tokens.len()
            ),
        };
        format!(
            "{name}: {tokens}; mean KL {:.2e}; max logits NMSE {:.2e}; decode {:.1} tok/s ({}) vs {:.1} tok/s ({}); prompt {:.0} ms vs {:.0} ms",
            self.mean_kl,
            self.max_nmse,
            self.gpu.decode_tokens_per_s,
            self.gpu.backend,
            self.cpu.decode_tokens_per_s,
            self.cpu.backend,
            self.gpu.prompt_ms,
            self.cpu.prompt_ms,
        )
    }
}

/// Opens `path` and runs it on the CPU (`threads`) and the GPU.
pub fn compare(
    path: &str,
    prompt: &[u32],
    n_gen: usize,
    threads: usize,
    cache: GgmlType,
) -> sluice_core::Result<Parity> {
    let opener = LocalOpener {
        access: LocalAccess::Mmap,
    };
    let gguf = block_on(GgufModel::open(path, &opener))?;
    let gpu = block_on(WgpuBackend::new(GpuOptions::default()))?;
    let gpu = greedy(&gguf, gpu, prompt, n_gen, cache)?;
    let cpu = greedy(&gguf, CpuBackend::new(threads)?, prompt, n_gen, cache)?;
    let same = cpu
        .tokens
        .iter()
        .zip(&gpu.tokens)
        .take_while(|(a, b)| a == b)
        .count();
    let steps: Vec<(&Vec<f32>, &Vec<f32>)> =
        cpu.logits.iter().zip(&gpu.logits).take(same + 1).collect();
    let max_nmse = steps.iter().map(|(c, g)| nmse(g, c)).fold(0f64, f64::max);
    let mean_kl = steps
        .iter()
        .map(|(c, g)| crate::parity::kl(c, g))
        .sum::<f64>()
        / steps.len().max(1) as f64;
    let divergence = (same < cpu.tokens.len()).then(|| (same, top_gap(&cpu.logits[same])));
    let quantized = gguf
        .tensors()
        .iter()
        .any(|t| ![GgmlType::F32, GgmlType::F16, GgmlType::BF16].contains(&t.info.ty));
    Ok(Parity {
        cpu,
        gpu,
        max_nmse,
        mean_kl,
        divergence,
        quantized,
    })
}

/// SmolLM2-135M-Instruct's chat prompt "<|im_start|>system\n…" as token ids (from its
/// tokenizer), so parity runs need no tokenizer.
pub const SMOLLM2_PROMPT: &[u32] = &[
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
    198,
];
