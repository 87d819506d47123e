//! The `sluice` command line.
//!
//! Subcommands live in `cmd/`, one module each; this file only lists them. Arguments pass
//! through [`sluice_native::llama_args::normalize`] first so llama.cpp spellings
//! (`-ngl`, `-no-cnv`, `--min_p`) work unchanged.

use clap::{CommandFactory, Parser, Subcommand};
use sluice_native::cmd;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run DeepSeek-V3-class GGUF models: llama.cpp compatible, GPU and browser ready"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Generate text; accepts llama-cli / llama-completion flags.
    Run(cmd::run::RunArgs),
    /// Perplexity of a text, or KL divergence against a base (llama-perplexity compatible).
    Perplexity(cmd::perplexity::PerplexityArgs),
    /// Show a model's metadata summary (path or http:// URL).
    Info(cmd::info::InfoArgs),
    /// Serve a directory of GGUF models over HTTP (ranges, HEAD, ETag, CORS, /models.json).
    Serve(cmd::serve::ServeArgs),
    /// Write an integrity manifest (per-tensor and per-expert hashes) next to a model.
    Manifest(cmd::manifest::ManifestArgs),
    /// List GPU adapters (backend, type, limits, features).
    Devices(cmd::devices::DevicesArgs),
    /// GGUF file tools: split and merge, compatible with llama.cpp's llama-gguf-split.
    Gguf(cmd::gguf::Args),
    /// Prompt-processing and generation speed, in llama-bench's table layout.
    Bench(cmd::bench::BenchArgs),
}

/// Whether the long option `flag` of any subcommand consumes a value.
fn takes_value(flag: &str) -> bool {
    let Some(long) = flag.strip_prefix("--") else {
        let short = flag
            .strip_prefix('-')
            .and_then(|s| s.chars().next().filter(|_| s.len() == 1));
        return short.is_some_and(|c| {
            Cli::command()
                .get_subcommands()
                .flat_map(|s| s.get_arguments())
                .any(|a| a.get_short() == Some(c) && a.get_action().takes_values())
        });
    };
    Cli::command()
        .get_subcommands()
        .flat_map(|s| s.get_arguments())
        .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
}

fn main() {
    let args = sluice_native::llama_args::normalize(std::env::args(), takes_value);
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Perplexity(a) => cmd::perplexity::run(a),
        Command::Info(a) => cmd::info::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Manifest(a) => cmd::manifest::run(a),
        Command::Gguf(a) => cmd::gguf::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Devices(a) => cmd::devices::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
