//! Opening a model for a command: the GGUF parts, the tokenizer, the weights on a backend.

use crate::expert_cache::{self, Access, ExpertCacheArgs, ExpertPlan};
use crate::open::LocalAccess;
use crate::placement::Plan;
use anyhow::{Context, Result};
use sluice_core::backend::Backend;
use sluice_core::cpu::CpuBackend;
use sluice_core::experts::{ExpertStore, StreamingExperts, StreamingOptions};
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Model};
use sluice_core::source::block_on;
use sluice_core::tokenizer::Tokenizer;
use sluice_shaders::hybrid::HybridBackend;
use sluice_shaders::{GpuOptions, WgpuBackend};

/// A model ready to run, with what was read to get there.
pub struct Loaded<B: Backend = CpuBackend> {
    pub gguf: GgufModel,
    pub tokenizer: Tokenizer,
    pub model: Model<B>,
    /// Whether routed experts are streamed through a cache (print the store's summary at
    /// exit: [`crate::expert_cache::summary`]).
    pub streaming: bool,
}

/// Opens `path` (any split part; a local path or an `http://` URL), reads the tokenizer and
/// loads the weights on the CPU backend with `threads` threads (0 = all cores), experts as
/// the default [`ExpertCacheArgs`] say.
pub fn load(path: &str, threads: usize, no_mmap: bool) -> Result<Loaded> {
    load_with(path, threads, no_mmap, &ExpertCacheArgs::default())
}

/// As [`load`], with the expert-cache flags.
pub fn load_with(
    path: &str,
    threads: usize,
    no_mmap: bool,
    experts: &ExpertCacheArgs,
) -> Result<Loaded> {
    open(path, no_mmap, experts)?.load(CpuBackend::new(threads)?)
}

/// Something to do with a model's backend, whatever its type (see [`on_backend`]).
pub trait WithBackend {
    type Output;
    fn run<B: Backend + 'static>(self, backend: B) -> Result<Self::Output>;
}

/// Makes the backend `plan` asks for (CPU with `threads` threads, the GPU, or both) and hands it
/// to `job`. `device` picks the adapter (`--device`: an index or name from `sluice devices`;
/// `none`: no GPU). Without a usable GPU adapter the job runs on the CPU, with a note saying why.
pub fn on_backend<J: WithBackend>(
    plan: Plan,
    threads: usize,
    device: Option<&str>,
    job: J,
) -> Result<J::Output> {
    let cpu = || -> Result<CpuBackend> { Ok(CpuBackend::new(threads)?) };
    if matches!(plan, Plan::Cpu) || device.is_some_and(|d| d.eq_ignore_ascii_case("none")) {
        return job.run(cpu()?);
    }
    let opts = GpuOptions {
        adapter: device.map(str::to_string),
        ..GpuOptions::default()
    };
    let gpu = match block_on(WgpuBackend::new(opts)) {
        Ok(gpu) => gpu,
        // A named adapter that does not exist is the user's mistake, not a missing driver.
        Err(e) if device.is_some() => return Err(e.into()),
        Err(e) => {
            eprintln!("note: --n-gpu-layers: no usable GPU ({e}); running on the CPU");
            return job.run(cpu()?);
        }
    };
    match plan {
        Plan::Cpu => job.run(cpu()?),
        Plan::Gpu => job.run(gpu),
        Plan::Mixed(mix) => {
            eprintln!("sluice: placement: {}", mix.describe());
            job.run(HybridBackend::new(cpu()?, gpu, mix.to_hybrid()))
        }
    }
}

/// A model file opened and its expert plan made, before any weights are loaded.
pub struct Opened {
    pub path: String,
    pub gguf: GgufModel,
    pub tokenizer: Tokenizer,
    store: Option<StreamingOptions>,
}

/// Opens `path` and plans how experts are reached (the first half of [`load_with`]).
pub fn open(path: &str, no_mmap: bool, experts: &ExpertCacheArgs) -> Result<Opened> {
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
    let plan = expert_cache::plan(
        experts,
        &gguf,
        access_of(path, &gguf),
        expert_cache::usable_memory(),
    )
    .with_context(|| format!("{path}: experts"))?;
    let store = match plan {
        ExpertPlan::Resident => None,
        ExpertPlan::Streaming { options, note } => {
            if let Some(n) = note {
                eprintln!("{n}");
            }
            Some(options)
        }
    };
    Ok(Opened {
        path: path.to_string(),
        gguf,
        tokenizer,
        store,
    })
}

impl Opened {
    /// Loads the weights on `backend` (the second half of [`load_with`]).
    pub fn load<B: Backend + 'static>(self, backend: B) -> Result<Loaded<B>> {
        let Opened {
            path,
            mut gguf,
            tokenizer,
            store,
        } = self;
        let streaming = store.is_some();
        let spinner = crate::progress::spinner(&format!("loading {path}"));
        let model =
            build_model_on(&gguf, backend, store).with_context(|| format!("loading {path}"))?;
        // The tokenizer and the model are built: the parsed vocabulary is not read again.
        gguf.release_vocabulary();
        spinner.finish_and_clear();
        let cfg = &model.config;
        eprintln!(
            "sluice: {} ({}, {} layers, {} vocab) on {}",
            cfg.name.as_deref().unwrap_or(&path),
            cfg.arch.gguf_name(),
            cfg.n_layer,
            model.n_vocab,
            model.backend().describe()
        );
        Ok(Loaded {
            gguf,
            tokenizer,
            model,
            streaming,
        })
    }
}

/// How `gguf` (opened from `path`) is read.
pub fn access_of(path: &str, gguf: &GgufModel) -> Access {
    if crate::http::is_http_url(path) {
        Access::Remote
    } else if gguf.parts.iter().all(|p| p.source.as_slice().is_some()) {
        Access::Mapped
    } else {
        Access::Reads
    }
}

/// Loads the weights of `gguf` on a CPU backend of `threads` threads; with `streaming`,
/// routed experts go through a [`StreamingExperts`] store made with those options.
pub fn build_model(
    gguf: &GgufModel,
    threads: usize,
    streaming: Option<StreamingOptions>,
) -> sluice_core::Result<Model<CpuBackend>> {
    build_model_on(gguf, CpuBackend::new(threads)?, streaming)
}

/// As [`build_model`], on any backend.
pub fn build_model_on<B: Backend + 'static>(
    gguf: &GgufModel,
    backend: B,
    streaming: Option<StreamingOptions>,
) -> sluice_core::Result<Model<B>> {
    let expert_store =
        match streaming {
            Some(options) => Some(Box::new(StreamingExperts::<B>::from_model(gguf, options)?)
                as Box<dyn ExpertStore<B>>),
            None => None,
        };
    let opts = LoadOptions {
        expert_store,
        ..Default::default()
    };
    sluice_core::source::block_on(Model::load(gguf, backend, opts))
}

/// `--threads` as llama.cpp reads it: ≤ 0 means "choose".
pub fn threads(flag: i64) -> usize {
    if flag <= 0 {
        0
    } else {
        flag as usize
    }
}
