//! `sluice bench`: prompt-processing and generation speed, measured the way `llama-bench`
//! measures it, printed in its markdown (or JSON) layout so the two tables line up.
//!
//! For every model × thread count × test the model is loaded once; each test runs a warm-up,
//! then `-r` repetitions on an emptied KV cache:
//! * `ppN` evaluates N random tokens (the first is BOS when the vocabulary adds one) as one
//!   batch (in micro-batches of 512) and keeps only the last logits;
//! * `tgN` decodes N tokens one at a time from an empty cache, feeding random tokens (no
//!   sampling cost), as llama-bench's `test_gen` does.
//!
//! t/s is N / seconds per repetition; the table shows the mean ± sample standard deviation
//! over repetitions, JSON also lists every sample.
//!
//! The command is built as plain data: [`BenchArgs`] (flags) → [`BenchPlan`] (a list of
//! [`TestCase`]s) → [`run_case`] → [`CaseResult`] → a printer. Extensions (other sweeps,
//! plots) add fields to `TestCase` or consume the `CaseResult`s without touching the timing.

use anyhow::{bail, Context, Result};
use clap::Args;
use sluice_core::backend::Backend;
use sluice_core::model::Logits;
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Model file(s) (repeat -m or separate with commas).
    #[arg(short = 'm', long = "model", value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Prompt lengths to test (ppN); 0 skips.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test (tgN); 0 skips.
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub repetitions: usize,
    /// CPU threads (several values give several rows).
    #[arg(
        short = 't',
        long = "threads",
        value_delimiter = ',',
        default_value = "2"
    )]
    pub threads: Vec<usize>,
    /// KV cache type (MLA models keep one latent row: K and V share it).
    #[arg(long = "cache-type-k", visible_alias = "ctk", default_value = "f16")]
    pub cache_type_k: String,
    /// Output format: md or json.
    #[arg(short = 'o', long = "output", default_value = "md")]
    pub output: String,
    /// Skip the warm-up run before each test.
    #[arg(long = "no-warmup")]
    pub no_warmup: bool,
    /// Read weights with file reads instead of a memory map.
    #[arg(long = "no-mmap")]
    pub no_mmap: bool,
    /// Repeating layers on the GPU, counted from the last, as in `sluice run` (99: the whole
    /// model).
    #[arg(
        long = "n-gpu-layers",
        visible_alias = "ngl",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub n_gpu_layers: Option<String>,
    /// GPU adapter: an index or name from `sluice devices`, or none.
    #[arg(long = "device", value_name = "DEVICE")]
    pub device: Option<String>,
    /// Keep every routed expert on the CPU (with -ngl: the rest on the GPU).
    #[arg(long = "cpu-moe")]
    pub cpu_moe: bool,
}

/// What one test measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestKind {
    /// Evaluate this many prompt tokens in one batch.
    Prompt(usize),
    /// Decode this many tokens one by one.
    Gen(usize),
}

impl TestKind {
    pub fn label(self) -> String {
        match self {
            TestKind::Prompt(n) => format!("pp{n}"),
            TestKind::Gen(n) => format!("tg{n}"),
        }
    }

    fn tokens(self) -> usize {
        match self {
            TestKind::Prompt(n) | TestKind::Gen(n) => n,
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct TestCase {
    pub model: String,
    pub threads: usize,
    pub kind: TestKind,
    pub repetitions: usize,
    pub warmup: bool,
    pub cache_type: GgmlType,
}

/// Every case to run, grouped so each (model, threads) pair is loaded once.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub cases: Vec<TestCase>,
    pub no_mmap: bool,
}

impl BenchPlan {
    pub fn from_args(a: &BenchArgs) -> Result<Self> {
        if a.repetitions == 0 {
            bail!("-r 0: at least one repetition is needed");
        }
        let cache_type = GgmlType::from_name(&a.cache_type_k)
            .with_context(|| format!("--cache-type-k {}: unknown type", a.cache_type_k))?;
        let mut cases = Vec::new();
        for model in &a.models {
            for &threads in &a.threads {
                let kinds = a
                    .n_prompt
                    .iter()
                    .filter(|&&n| n > 0)
                    .map(|&n| TestKind::Prompt(n))
                    .chain(
                        a.n_gen
                            .iter()
                            .filter(|&&n| n > 0)
                            .map(|&n| TestKind::Gen(n)),
                    );
                for kind in kinds {
                    cases.push(TestCase {
                        model: model.clone(),
                        threads,
                        kind,
                        repetitions: a.repetitions,
                        warmup: !a.no_warmup,
                        cache_type,
                    });
                }
            }
        }
        Ok(Self {
            cases,
            no_mmap: a.no_mmap,
        })
    }
}

/// Static facts about a model, as llama-bench reports them.
#[derive(Clone, Debug)]
pub struct ModelFacts {
    /// `arch size ftype`, e.g. `deepseek2 3B IQ2_XXS - 2.0625 bpw`.
    pub description: String,
    /// Bytes of tensor data.
    pub size: u64,
    /// Number of weights.
    pub params: u64,
}

/// The measurements of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub case: TestCase,
    pub model: ModelFacts,
    pub backend: String,
    /// Tokens per second of each repetition.
    pub samples: Vec<f64>,
}

impl CaseResult {
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }

    /// Sample standard deviation (0 for one sample), as llama-bench.
    pub fn stddev(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples.iter().map(|s| (s - m) * (s - m)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// Entry point of `sluice bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let json = match args.output.as_str() {
        "md" => false,
        "json" => true,
        other => bail!("-o {other}: supported formats are md and json"),
    };
    let plan = BenchPlan::from_args(&args)?;
    if !json {
        print_md_header();
    }
    let mut results = Vec::new();
    let mut i = 0;
    while i < plan.cases.len() {
        // Cases of one (model, threads) share a loaded model.
        let (model, threads) = (&plan.cases[i].model, plan.cases[i].threads);
        let same = plan.cases[i..]
            .iter()
            .take_while(|c| &c.model == model && c.threads == threads)
            .count();
        let opened = crate::load::open(model, plan.no_mmap, &Default::default())?;
        let n_layer = sluice_core::model::Config::from_metadata(opened.gguf.metadata())
            .map(|c| c.n_layer)
            .with_context(|| format!("--model {model}"))?;
        let placement = crate::placement::PlacementArgs {
            n_gpu_layers: args.n_gpu_layers.clone(),
            cpu_moe: args.cpu_moe,
            ..Default::default()
        };
        let backend_plan = crate::placement::plan(&placement, n_layer)?;
        struct Cases<'a> {
            opened: crate::load::Opened,
            cases: &'a [TestCase],
            json: bool,
        }
        impl crate::load::WithBackend for Cases<'_> {
            type Output = Vec<CaseResult>;
            fn run<B: Backend + 'static>(self, backend: B) -> Result<Vec<CaseResult>> {
                let loaded = self.opened.load(backend)?;
                let facts = model_facts(&loaded);
                let mut out = Vec::new();
                for case in self.cases {
                    let r = run_case(&loaded, &facts, case)?;
                    if !self.json {
                        print_md_row(&r);
                    }
                    out.push(r);
                }
                Ok(out)
            }
        }
        let job = Cases {
            opened,
            cases: &plan.cases[i..i + same],
            json,
        };
        results.extend(crate::load::on_backend(
            backend_plan,
            threads,
            args.device.as_deref(),
            job,
        )?);
        i += same;
    }
    if json {
        print_json(&results);
    } else {
        println!();
    }
    Ok(())
}

fn ftype_name(id: u32) -> String {
    let name = match id {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        19 => "IQ2_XXS - 2.0625 bpw",
        20 => "IQ2_XS - 2.3125 bpw",
        21 => "Q2_K - Small",
        22 => "IQ3_XS - 3.3 bpw",
        23 => "IQ3_XXS - 3.0625 bpw",
        24 => "IQ1_S - 1.5625 bpw",
        25 => "IQ4_NL - 4.5 bpw",
        26 => "IQ3_S - 3.4375 bpw",
        27 => "IQ3_S mix - 3.66 bpw",
        28 => "IQ2_S - 2.5 bpw",
        29 => "IQ2_M - 2.7 bpw",
        30 => "IQ4_XS - 4.25 bpw",
        31 => "IQ1_M - 1.75 bpw",
        32 => "BF16",
        36 => "TQ1_0 - 1.69 bpw ternary",
        37 => "TQ2_0 - 2.06 bpw ternary",
        38 => "MXFP4 MoE",
        _ => return format!("ftype {id}"),
    };
    name.to_string()
}

/// Parameter count in llama.cpp's short style (135M, 6.7B).
fn short_count(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.0}B", n as f64 / 1e9)
    } else {
        format!("{:.0}M", n as f64 / 1e6)
    }
}

fn model_facts<B: Backend>(loaded: &crate::load::Loaded<B>) -> ModelFacts {
    let tensors = loaded.gguf.tensors();
    let size = tensors.iter().filter_map(|t| t.info.nbytes()).sum();
    let params = tensors.iter().map(|t| t.info.n_elements()).sum();
    let ftype = loaded
        .gguf
        .metadata()
        .get_u32("general.file_type")
        .ok()
        .flatten()
        .map(ftype_name)
        .unwrap_or_else(|| "?".into());
    let cfg = &loaded.model.config;
    ModelFacts {
        description: format!("{} {} {ftype}", cfg.arch.gguf_name(), short_count(params)),
        size,
        params,
    }
}

/// Deterministic token stream (xorshift), like llama-bench's use of `std::rand`.
struct Tokens {
    state: u64,
    n_vocab: u32,
}

impl Tokens {
    fn next(&mut self) -> u32 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % self.n_vocab as u64) as u32
    }
}

/// Runs the warm-up and the repetitions of one case.
pub fn run_case<B: Backend + 'static>(
    loaded: &crate::load::Loaded<B>,
    facts: &ModelFacts,
    case: &TestCase,
) -> Result<CaseResult> {
    let model = &loaded.model;
    let cfg = &model.config;
    let n = case.kind.tokens();
    let n_ctx = n.max(1);
    let mut session = model.session(n_ctx, case.cache_type, case.cache_type)?;
    let mut tokens = Tokens {
        state: 0x9e37_79b9_7f4a_7c15,
        n_vocab: model.n_vocab as u32,
    };
    let bos = loaded
        .tokenizer
        .bos()
        .filter(|_| loaded.tokenizer.add_bos());
    let mut once =
        |session: &mut sluice_core::model::Session<'_, _>, kind: TestKind| -> Result<f64> {
            session.truncate(0);
            let start = Instant::now();
            match kind {
                TestKind::Prompt(n) => {
                    let mut prompt: Vec<u32> = (0..n).map(|_| tokens.next()).collect();
                    if let (Some(b), Some(first)) = (bos, prompt.first_mut()) {
                        *first = b;
                    }
                    block_on(session.eval(&prompt, Logits::Last))?;
                }
                TestKind::Gen(n) => {
                    let mut t = bos.unwrap_or_else(|| tokens.next());
                    for _ in 0..n {
                        block_on(session.eval(&[t], Logits::Last))?;
                        t = tokens.next();
                    }
                }
            }
            Ok(start.elapsed().as_secs_f64())
        };
    if case.warmup {
        let warm = match case.kind {
            TestKind::Prompt(n) => TestKind::Prompt(n.min(32)),
            TestKind::Gen(_) => TestKind::Gen(1),
        };
        once(&mut session, warm)?;
    }
    let mut samples = Vec::with_capacity(case.repetitions);
    for _ in 0..case.repetitions {
        let secs = once(&mut session, case.kind)?;
        samples.push(n as f64 / secs);
    }
    let _ = cfg;
    Ok(CaseResult {
        case: case.clone(),
        model: facts.clone(),
        backend: backend_label(&model.backend().describe()),
        samples,
    })
}

/// The backend column, llama-bench style: `CPU`, `Vulkan`, `Metal`, or `CPU+Vulkan` for a
/// mixed placement (from the backend's description, e.g. `vulkan: NVIDIA H200 …`).
fn backend_label(describe: &str) -> String {
    let api = |d: &str| {
        let name = d
            .split([':', ' '])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match name.as_str() {
            "cpu" => "CPU".to_string(),
            "vulkan" => "Vulkan".to_string(),
            "metal" => "Metal".to_string(),
            "dx12" => "DX12".to_string(),
            other => other.to_string(),
        }
    };
    match describe.split_once(" + ") {
        Some((a, b)) => format!("{}+{}", api(a), api(b)),
        None => api(describe),
    }
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    }
}

fn human_params(n: u64) -> String {
    let v = n as f64;
    if v >= 1e9 {
        format!("{:.2} B", v / 1e9)
    } else {
        format!("{:.2} M", v / 1e6)
    }
}

fn print_md_header() {
    println!(
        "| {:<30} | {:>10} | {:>10} | {:<10} | {:>7} | {:>15} | {:>20} |",
        "model", "size", "params", "backend", "threads", "test", "t/s"
    );
    println!(
        "| {} | {}: | {}: | {} | {}: | {}: | {}: |",
        "-".repeat(30),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(10),
        "-".repeat(6),
        "-".repeat(14),
        "-".repeat(19)
    );
}

fn print_md_row(r: &CaseResult) {
    println!(
        "| {:<30} | {:>10} | {:>10} | {:<10} | {:>7} | {:>15} | {:>20} |",
        r.model.description,
        human_size(r.model.size),
        human_params(r.model.params),
        r.backend,
        r.case.threads,
        r.case.kind.label(),
        format!("{:.2} ± {:.2}", r.mean(), r.stddev())
    );
}

fn print_json(results: &[CaseResult]) {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let (n_prompt, n_gen) = match r.case.kind {
                TestKind::Prompt(n) => (n, 0),
                TestKind::Gen(n) => (0, n),
            };
            serde_json::json!({
                "model_filename": r.case.model,
                "model_type": r.model.description,
                "model_size": r.model.size,
                "model_n_params": r.model.params,
                "backends": r.backend,
                "cpu_isa": sluice_core::cpu::kernels::active_isa().name(),
                "n_threads": r.case.threads,
                "type_k": r.case.cache_type.name().to_lowercase(),
                "n_prompt": n_prompt,
                "n_gen": n_gen,
                "test": r.case.kind.label(),
                "avg_ts": r.mean(),
                "stddev_ts": r.stddev(),
                "samples_ts": r.samples,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
    );
}
