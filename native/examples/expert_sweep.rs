//! Expert-cache benchmark: eviction policies replayed on a recorded routing trace, prefetch
//! prediction accuracy, and decode tokens/s against the expert-cache budget (with an SVG plot).
//!
//! ```sh
//! cargo run --release -p sluice --example expert_sweep -- MODEL.gguf|http://… \
//!     --text tests/fixtures/text/river-notes.txt --decode 48 \
//!     --budgets 5%,10%,25%,50%,100% --plot sweep.svg [--no-mmap] [--prefetch off] [--policies]
//! ```
//!
//! The decode tokens are the text's tokens fed one at a time (teacher-forced), so every budget
//! sees the same routing. Until `sluice bench` exists this example is the entry point for
//! `bench_sweep`; `tests/bench/expert-cache.sh` drives it.

use anyhow::{Context, Result};
use clap::Parser;
use sluice_core::experts::{ExpertLayout, PolicyKind};
use sluice_core::tokenizer::Tokenizer;
use sluice_native::bench_sweep::{
    compare_policies, parse_budgets, record_trace, svg, sweep, table, SweepConfig,
};
use sluice_native::expert_cache::gib;
use sluice_native::open::{open_model_with, LocalAccess, OpenOptions};

#[derive(Parser)]
struct Args {
    /// Model path or http:// URL (any split part).
    model: String,
    /// Text whose tokens drive the run.
    #[arg(long)]
    text: String,
    /// Tokens evaluated as the prompt batch before timing.
    #[arg(long, default_value_t = 16)]
    prompt: usize,
    /// Tokens decoded one at a time and timed.
    #[arg(long, default_value_t = 32)]
    decode: usize,
    /// Budgets, as shares of all expert bytes or sizes.
    #[arg(long, default_value = "5%,10%,25%,50%,100%")]
    budgets: String,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Positioned reads instead of a memory map.
    #[arg(long = "no-mmap")]
    no_mmap: bool,
    /// Prefetch on or off.
    #[arg(long, default_value = "on")]
    prefetch: String,
    /// Also replay the routing trace through LRU and LRFU variants.
    #[arg(long)]
    policies: bool,
    /// Skip the timed sweep (policies and accuracy only).
    #[arg(long = "no-sweep")]
    no_sweep: bool,
    /// Write the sweep plot here.
    #[arg(long)]
    plot: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = OpenOptions {
        access: if args.no_mmap {
            LocalAccess::Read
        } else {
            LocalAccess::Mmap
        },
        ..Default::default()
    };
    let gguf = open_model_with(&args.model, &options)
        .with_context(|| args.model.clone())?
        .model;
    let tokenizer = Tokenizer::from_metadata(gguf.metadata())?;
    let text = std::fs::read_to_string(&args.text).with_context(|| args.text.clone())?;
    let tokens = tokenizer.encode(&text, true, false);
    anyhow::ensure!(
        tokens.len() >= args.prompt + args.decode,
        "{} has {} tokens; --prompt + --decode need {}",
        args.text,
        tokens.len(),
        args.prompt + args.decode
    );
    let layout = ExpertLayout::from_model(&gguf)?;
    let moe_layers = layout.layers.iter().flatten().count();
    println!(
        "model {}: {} MoE layers x {} experts ({} used), {} of experts, {} per expert (largest)",
        args.model,
        moe_layers,
        layout.n_expert,
        layout.k_used,
        gib(layout.total_bytes()),
        gib(layout.max_expert_bytes())
    );
    let model_bytes: u64 = gguf.parts.iter().map(|p| p.source.len()).sum();
    println!(
        "sizes: model_bytes={model_bytes} expert_bytes={}",
        layout.total_bytes()
    );
    let cfg = SweepConfig {
        budgets: parse_budgets(&args.budgets)?,
        threads: args.threads,
        prefetch: args.prefetch != "off",
        prompt: tokens[..args.prompt].to_vec(),
        decode: tokens[args.prompt..args.prompt + args.decode].to_vec(),
    };
    if args.policies {
        let trace = record_trace(&gguf, &cfg)?;
        let n_total = moe_layers * layout.n_expert;
        let policies = [
            PolicyKind::Lru,
            PolicyKind::Lrfu {
                half_life: 0.25 * n_total as f64,
            },
            PolicyKind::Lrfu {
                half_life: n_total as f64,
            },
            PolicyKind::default_for(n_total),
            PolicyKind::Lrfu {
                half_life: 16.0 * n_total as f64,
            },
            PolicyKind::Lrfu {
                half_life: f64::INFINITY,
            },
        ];
        println!(
            "\nhit rate by policy, replaying the decode trace ({} requests; default = {}):\n",
            trace.uses().map(|(_, e)| e.len()).sum::<usize>(),
            PolicyKind::default_for(n_total).label()
        );
        print!(
            "{}",
            compare_policies(&trace, &layout, &cfg.budgets, &policies)
        );
        println!(
            "\nnext-layer prediction accuracy (share of predicted experts used): {:.1}%",
            100.0 * trace.prediction_accuracy()
        );
    }
    if !args.no_sweep {
        let rows = sweep(&gguf, &cfg)?;
        println!(
            "\ndecode sweep ({} tokens, prefetch {}):\n",
            args.decode, args.prefetch
        );
        print!("{}", table(&rows));
        if let Some(path) = &args.plot {
            let title = format!(
                "{}: decode vs expert cache",
                sluice_native::manifest::file_name_of(&args.model)
            );
            std::fs::write(path, svg(&rows, &title)).with_context(|| path.clone())?;
            println!("\nplot: {path}");
        }
    }
    Ok(())
}
