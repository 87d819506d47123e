//! `sluice info MODEL`: summary and tensor table of a model given by path or `http://` URL.
//! Over HTTP only the headers are fetched, by range requests.

use crate::open::{open_model_with, OpenOptions};

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Model path or URL (any part of a split model).
    pub model: String,
    /// Also list every tensor.
    #[arg(long)]
    pub tensors: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let opened = open_model_with(&args.model, &OpenOptions::default())?;
    let model = opened.model;
    let md = model.metadata();
    let arch = md
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let size: u64 = model.parts.iter().map(|p| p.source.len()).sum();
    println!("model: {}", args.model);
    println!("architecture: {arch}");
    println!("parts: {}  bytes: {size}", model.parts.len());
    println!("tensors: {}", model.tensors().len());
    if opened.manifest.is_some() {
        println!("integrity: reads verified against the sidecar manifest");
    }
    if args.tensors {
        for t in model.tensors() {
            println!(
                "  {:<40} {:>8} {:?} part {} at {}",
                t.name(),
                t.info.ty.to_string(),
                t.info.dims,
                t.part + 1,
                t.data_start
            );
        }
    }
    Ok(())
}
