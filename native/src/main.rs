//! The `sluice` command line. Subcommands live in `sluice_native::cmd`, one file each.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run DeepSeek-V3-class GGUF models (llama.cpp compatible) on CPUs and GPUs"
)]
struct Cli {
    #[command(subcommand)]
    command: sluice_native::cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if sluice_native::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
