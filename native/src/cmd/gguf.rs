//! `sluice gguf split` and `sluice gguf merge`: llama.cpp's `llama-gguf-split`, same files.
//!
//! Splitting and merging produce the bytes `llama-gguf-split` produces (same metadata, key
//! order, tensor order, padding); the rules are in `sluice_core::gguf::split`. Differences, all
//! on the safe side: existing output files are never overwritten (llama-gguf-split refuses only
//! for merge), a failed run removes the files it created, any part of a split model can be
//! given as input, and a model already split can be split again differently.
//!
//! Tensor bytes are copied in chunks straight from the memory-mapped input (or read in chunks
//! when the input is an `http://` URL), so memory use does not grow with the model; a
//! progress bar shows on a terminal for large models.

use crate::open::{open_model_with, OpenOptions};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use sluice_core::gguf::split::{
    parse_split_size, plan_merge, plan_split, split_path, PlannedFile, SplitLimit, SplitOptions,
};
use sluice_core::gguf::{GgufModel, TensorData, TensorInfo};
use sluice_core::Error;
use std::fs::File;
use std::io::{BufWriter, Write};

/// GGUF file tools: split and merge, compatible with llama.cpp's llama-gguf-split.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub op: Op,
}

#[derive(clap::Subcommand, Debug)]
pub enum Op {
    /// Split a model into PREFIX-00001-of-0000N.gguf, ... (metadata in the first part).
    Split(SplitArgs),
    /// Merge the parts of a split model into one file.
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("limit").multiple(false))]
pub struct SplitArgs {
    /// The model to split: a single file or any part of a split model.
    pub input: String,
    /// Output prefix; parts are written as PREFIX-00001-of-0000N.gguf.
    pub output_prefix: String,
    /// At most N tensors per part (the default, with N = 128).
    #[arg(long, alias = "split_max_tensors", value_name = "N", group = "limit")]
    pub split_max_tensors: Option<u64>,
    /// At most this much tensor data per part: a whole number and M (10^6 bytes) or G (10^9).
    #[arg(long, alias = "split_max_size", value_name = "N(M|G)", group = "limit",
          value_parser = parse_size_arg)]
    pub split_max_size: Option<u64>,
    /// Put no tensors in the first part (metadata only).
    #[arg(long, alias = "no_tensor_first_split")]
    pub no_tensor_first_split: bool,
    /// Print the plan and write nothing.
    #[arg(long, alias = "dry_run")]
    pub dry_run: bool,
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Any part of the split model.
    pub input: String,
    /// The merged file to write (must not exist).
    pub output: String,
    /// Remove the split.* keys instead of setting split.count to 0 as llama-gguf-split does
    /// (merging a split of a file without them then gives back that file byte for byte).
    #[arg(long)]
    pub drop_split_keys: bool,
    /// Print what would be written and write nothing.
    #[arg(long, alias = "dry_run")]
    pub dry_run: bool,
}

fn parse_size_arg(text: &str) -> std::result::Result<u64, String> {
    parse_split_size(text).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> Result<()> {
    match args.op {
        Op::Split(a) => split(a),
        Op::Merge(a) => merge(a),
    }
}

fn tensor_infos(model: &GgufModel) -> Vec<TensorInfo> {
    model.tensors().iter().map(|t| t.info.clone()).collect()
}

fn split(args: SplitArgs) -> Result<()> {
    let model = open_model_with(&args.input, &OpenOptions::default())?.model;
    let limit = match (args.split_max_tensors, args.split_max_size) {
        (_, Some(bytes)) => SplitLimit::Bytes(bytes),
        (Some(n), None) => SplitLimit::Tensors(n),
        (None, None) => SplitOptions::default().limit,
    };
    let options = SplitOptions {
        limit,
        no_tensor_first_split: args.no_tensor_first_split,
    };
    let plan = plan_split(model.metadata(), &tensor_infos(&model), options)?;
    let n_split = plan.len() as u32;
    println!("n_split: {n_split}");
    for (i, file) in plan.iter().enumerate() {
        // As llama-gguf-split reports it: header plus unpadded tensor bytes, in 10^6 bytes.
        let data: u64 = file
            .writer
            .tensors()
            .iter()
            .filter_map(TensorInfo::nbytes)
            .sum();
        let size = (file.writer.header_bytes().len() as u64 + data) / 1_000_000;
        println!(
            "split {:05}: n_tensors = {}, total_size = {size}M",
            i + 1,
            file.writer.tensors().len()
        );
    }
    if args.dry_run {
        return Ok(());
    }
    let paths: Vec<String> = (1..=n_split)
        .map(|no| split_path(&args.output_prefix, no, n_split))
        .collect();
    write_files(&model, &plan, &paths)?;
    eprintln!(
        "{n_split} part(s) written with a total of {} tensors",
        model.tensors().len()
    );
    Ok(())
}

fn merge(args: MergeArgs) -> Result<()> {
    let model = open_model_with(&args.input, &OpenOptions::default())?.model;
    let plan = plan_merge(
        model.metadata(),
        &tensor_infos(&model),
        args.drop_split_keys,
    )?;
    println!(
        "merging {} part(s) with {} tensors into {} ({} bytes)",
        model.parts.len(),
        model.tensors().len(),
        args.output,
        plan.writer.file_len()
    );
    if args.dry_run {
        return Ok(());
    }
    write_files(&model, std::slice::from_ref(&plan), &[args.output])
}

/// Writes each planned file to its path, refusing to overwrite anything; on failure the
/// files this call created are removed again.
fn write_files(model: &GgufModel, plan: &[PlannedFile], paths: &[String]) -> Result<()> {
    for path in paths {
        if std::fs::symlink_metadata(path).is_ok() {
            bail!("output file {path} already exists; sluice never overwrites files");
        }
    }
    let total: u64 = plan.iter().map(|f| f.writer.data_len()).sum();
    let bar = progress_bar(total);
    let mut created = Vec::new();
    let result = (|| -> Result<()> {
        for (file, path) in plan.iter().zip(paths) {
            let out = File::options()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("cannot create {path}"))?;
            created.push(path.clone());
            bar.set_message(format!("writing {path}"));
            let mut out = BufWriter::with_capacity(1 << 20, out);
            let mut copier = Copier {
                model,
                sources: &file.sources,
                bar: &bar,
            };
            file.writer.write_to(&mut out, path, &mut copier)?;
            let out = out.into_inner().map_err(|e| e.into_error())?;
            out.sync_all()
                .with_context(|| format!("cannot flush {path} to disk"))?;
        }
        Ok(())
    })();
    bar.finish_and_clear();
    if result.is_err() {
        for path in &created {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// Files with at least this many bytes of tensor data in all get a progress bar.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

fn progress_bar(total: u64) -> ProgressBar {
    if total < PROGRESS_MIN_BYTES {
        return ProgressBar::hidden();
    }
    crate::progress::bytes(total, "writing")
}

/// Copies tensor bytes in bounded chunks.
const CHUNK: usize = 8 << 20;

/// Streams the bytes of the planned file's tensors from the model's parts.
struct Copier<'a> {
    model: &'a GgufModel,
    sources: &'a [usize],
    bar: &'a ProgressBar,
}

impl TensorData for Copier<'_> {
    fn write_tensor(
        &mut self,
        index: usize,
        tensor: &TensorInfo,
        out: &mut dyn Write,
    ) -> sluice_core::Result<()> {
        let t = self
            .sources
            .get(index)
            .and_then(|&i| self.model.tensors().get(i))
            .filter(|t| t.info.name == tensor.name)
            .ok_or_else(|| Error::Invalid(format!("no source for tensor {}", tensor.name)))?;
        let source = self.model.source_of(t);
        let write_err = |e: std::io::Error| Error::io("output", format!("write failed: {e}"));
        if let Some(bytes) = self.model.tensor_bytes(t)? {
            for chunk in bytes.chunks(CHUNK) {
                out.write_all(chunk).map_err(write_err)?;
                self.bar.inc(chunk.len() as u64);
            }
            return Ok(());
        }
        let n = tensor
            .nbytes()
            .ok_or_else(|| Error::Unsupported(format!("size of tensor {}", tensor.name)))?;
        let mut done = 0u64;
        while done < n {
            let len = (n - done).min(CHUNK as u64) as usize;
            let bytes = sluice_core::source::block_on(source.read_at(t.data_start + done, len))?;
            out.write_all(&bytes).map_err(write_err)?;
            self.bar.inc(len as u64);
            done += len as u64;
        }
        Ok(())
    }
}
