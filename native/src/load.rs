//! Opening a model for a command: the GGUF parts, the tokenizer, the weights on a backend.

use crate::open::LocalAccess;
use anyhow::{Context, Result};
use sluice_core::backend::Backend;
use sluice_core::cpu::CpuBackend;
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Model};
use sluice_core::tokenizer::Tokenizer;

/// A model ready to run, with what was read to get there.
pub struct Loaded {
    pub gguf: GgufModel,
    pub tokenizer: Tokenizer,
    pub model: Model<CpuBackend>,
}

/// Opens `path` (any split part; a local path or an `http://` URL), reads the tokenizer and loads the weights on the CPU
/// backend with `threads` threads (0 = all cores).
pub fn load(path: &str, threads: usize, no_mmap: bool) -> Result<Loaded> {
    let access = if no_mmap {
        LocalAccess::Read
    } else {
        LocalAccess::Mmap
    };
    let options = crate::open::OpenOptions {
        access,
        ..Default::default()
    };
    let gguf = crate::open::open_model_with(path, &options)
        .map(|opened| opened.model)
        .with_context(|| format!("--model {path}"))?;
    let tokenizer =
        Tokenizer::from_metadata(gguf.metadata()).with_context(|| format!("{path}: tokenizer"))?;
    let backend = CpuBackend::new(threads)?;
    let spinner = crate::progress::spinner(&format!("loading {path}"));
    let model = sluice_core::source::block_on(Model::load(&gguf, backend, LoadOptions::default()))
        .with_context(|| format!("loading {path}"))?;
    spinner.finish_and_clear();
    let cfg = &model.config;
    eprintln!(
        "sluice: {} ({}, {} layers, {} vocab) on {}",
        cfg.name.as_deref().unwrap_or(path),
        cfg.arch.gguf_name(),
        cfg.n_layer,
        model.n_vocab,
        model.backend().describe()
    );
    Ok(Loaded {
        gguf,
        tokenizer,
        model,
    })
}

/// `--threads` as llama.cpp reads it: ≤ 0 means "choose".
pub fn threads(flag: i64) -> usize {
    if flag <= 0 {
        0
    } else {
        flag as usize
    }
}
