//! `sluice manifest MODEL`: write the integrity manifest sidecar (see [`crate::manifest`]).

use crate::manifest::{manifest_path_for, Manifest};
use crate::open::{open_model_with, OpenOptions, Verify};
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ManifestArgs {
    /// The model (any part of a split model; all parts are hashed).
    pub model: String,
    /// Where to write (default: `<model prefix>.manifest.json` next to the model).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Replace an existing manifest.
    #[arg(long)]
    pub force: bool,
    /// Hashing threads (default: all cores).
    #[arg(long, short)]
    pub threads: Option<usize>,
}

pub fn run(args: ManifestArgs) -> anyhow::Result<()> {
    if crate::http::is_http_url(&args.model) && args.output.is_none() {
        anyhow::bail!(
            "{}: a remote model needs --output for its manifest",
            args.model
        );
    }
    let output = match args.output {
        Some(p) => p,
        None => PathBuf::from(
            manifest_path_for(&args.model)
                .with_context(|| format!("{}: not a .gguf path; pass --output", args.model))?,
        ),
    };
    if output.exists() && !args.force {
        anyhow::bail!(
            "{} already exists (pass --force to replace it)",
            output.display()
        );
    }
    let options = OpenOptions {
        verify: Verify::Off,
        ..OpenOptions::default()
    };
    let model = open_model_with(&args.model, &options)?.model;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = std::time::Instant::now();
    let manifest = Manifest::build(&model, threads)?;
    manifest.write(&output, args.force)?;
    let bytes: u64 = manifest.tensors.iter().map(|t| t.size).sum();
    let slabs: usize = manifest
        .tensors
        .iter()
        .filter_map(|t| t.experts.as_ref())
        .map(|e| e.hashes.len())
        .sum();
    println!(
        "wrote {}: {} tensors, {slabs} expert slabs, {:.2} GiB hashed in {:.1} s",
        output.display(),
        manifest.tensors.len(),
        bytes as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
