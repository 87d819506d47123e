//! The `sluice` command line.

use clap::{Parser, Subcommand};
use sluice_native::cmd;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "DeepSeek-V3-class MoE inference, llama.cpp compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a model's metadata summary (path or http:// URL).
    Info(cmd::info::InfoArgs),
    /// Serve a directory of GGUF models over HTTP.
    Serve(cmd::serve::ServeArgs),
    /// Write an integrity manifest (per-tensor and per-expert hashes) next to a model.
    Manifest(cmd::manifest::ManifestArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Info(a) => cmd::info::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Manifest(a) => cmd::manifest::run(a),
    }
}
