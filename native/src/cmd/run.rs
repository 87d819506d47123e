//! `sluice run`: text generation that accepts llama-cli (llama-completion) commands verbatim.
//!
//! Flag names, short forms, defaults and meanings follow llama.cpp; llama.cpp's multi-letter
//! single-dash spellings are rewritten by [`crate::llama_args`]. Generated text goes to stdout,
//! everything else (progress, notes, the timing summary) to stderr.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sluice_core::backend::Backend;
use sluice_core::chat::ChatTemplate;
use sluice_core::generate::{Generator, Stop};
use sluice_core::model::Arch;
use sluice_core::quant::GgmlType;
use sluice_core::sample::{SamplerParams, RANDOM_SEED};
use std::io::IsTerminal;
use std::time::Instant;

/// Options of `sluice run` (llama-cli compatible).
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Model file: a .gguf, or any part of a split model (…-00001-of-00006.gguf).
    #[arg(short = 'm', long)]
    pub model: String,
    /// Prompt to start generation with (in chat mode: the first user message).
    #[arg(short = 'p', long)]
    pub prompt: Option<String>,
    /// A file containing the prompt.
    #[arg(short = 'f', long = "file", value_name = "FNAME")]
    pub file: Option<String>,
    /// System prompt (chat mode).
    #[arg(long = "system-prompt", value_name = "PROMPT")]
    pub system_prompt: Option<String>,
    /// Tokens to generate (-1 = until end of text or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    /// Context size in tokens (0 = the size the model was trained with).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    pub ctx_size: usize,
    /// CPU threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0, allow_negative_numbers = true)]
    pub threads: i64,
    /// Repeating layers on the GPU, counted from the last (llama.cpp's rule); more than the
    /// model has (99, all) also puts the output there. Runs through wgpu: Vulkan, Metal, DX12.
    #[arg(long = "n-gpu-layers", value_name = "N", allow_hyphen_values = true)]
    pub n_gpu_layers: Option<String>,
    /// KV cache type for K: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1.
    #[arg(long = "cache-type-k", default_value = "f16", value_name = "TYPE")]
    pub cache_type_k: String,
    /// KV cache type for V (for MLA models V lives inside the K rows and follows -ctk).
    #[arg(long = "cache-type-v", value_name = "TYPE")]
    pub cache_type_v: Option<String>,
    /// Process/thread priority (-1 low … 3 realtime).
    #[arg(long, allow_negative_numbers = true)]
    pub prio: Option<i32>,
    /// Complete the prompt once and exit (no chat).
    #[arg(long = "no-conversation")]
    pub no_conversation: bool,
    /// Chat mode even when stdin is not a terminal.
    #[arg(long = "conversation", conflicts_with = "no_conversation")]
    pub conversation: bool,
    /// Process escapes (\n, \t, \", …) in the prompt (default on).
    #[arg(short = 'e', long = "escape")]
    pub escape: bool,
    /// Take the prompt literally.
    #[arg(long = "no-escape")]
    pub no_escape: bool,
    /// RNG seed (default: random).
    #[arg(short = 's', long, default_value_t = RANDOM_SEED)]
    pub seed: u32,
    /// Put weights whose name matches REGEX on DEVICE (CPU or GPU; Vulkan0, Metal, CUDA0 mean
    /// the GPU), e.g. -ot exps=CPU; comma-separated or repeated, first match wins.
    #[arg(long = "override-tensor", value_name = "REGEX=DEVICE")]
    pub override_tensor: Vec<String>,
    /// GPU adapter for offloaded layers: an index or name from `sluice devices` (Vulkan0,
    /// part of the adapter's name), or none.
    #[arg(long = "device", value_name = "DEVICE")]
    pub device: Option<String>,
    /// Keep every routed expert's weights on the CPU (the rest as -ngl says).
    #[arg(long = "cpu-moe")]
    pub cpu_moe: bool,
    /// Keep the MoE expert weights of the first N layers on the CPU.
    #[arg(long = "n-cpu-moe", value_name = "N")]
    pub n_cpu_moe: Option<usize>,
    /// Temperature (≤ 0: greedy).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temp: f32,
    /// Top-k sampling (0 = off).
    #[arg(long = "top-k", default_value_t = 40, allow_negative_numbers = true)]
    pub top_k: i32,
    /// Top-p sampling (1.0 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p sampling (0.0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalize repeated tokens (1.0 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties consider.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Presence penalty (0.0 = off).
    #[arg(long = "presence-penalty", default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Frequency penalty (0.0 = off).
    #[arg(long = "frequency-penalty", default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Chat template: deepseek3, chatml, llama3 (default: from the model).
    #[arg(long = "chat-template", value_name = "NAME")]
    pub chat_template: Option<String>,
    /// Show special tokens in the output.
    #[arg(long = "special")]
    pub special: bool,
    /// Do not echo the prompt.
    #[arg(long = "no-display-prompt")]
    pub no_display_prompt: bool,
    /// Read weights with file reads instead of a memory map.
    #[arg(long = "no-mmap")]
    pub no_mmap: bool,
    /// Flash attention (accepted for compatibility; sluice always fuses attention).
    #[arg(long = "flash-attn", value_name = "on|off|auto")]
    pub flash_attn: Option<String>,
    /// Logical batch size (accepted for compatibility).
    #[arg(short = 'b', long = "batch-size")]
    pub batch_size: Option<usize>,
    /// Physical batch size (accepted for compatibility).
    #[arg(long = "ubatch-size")]
    pub ubatch_size: Option<usize>,
    /// Skip the warm-up run (sluice does none; accepted for compatibility).
    #[arg(long = "no-warmup")]
    pub no_warmup: bool,
    /// Never end an answer with an end-of-generation token (generation stops at -n, a full
    /// context or Ctrl-C).
    #[arg(long = "ignore-eos")]
    pub ignore_eos: bool,
    /// One turn of chat, then exit.
    #[arg(long = "single-turn")]
    pub single_turn: bool,
    #[command(flatten)]
    pub experts: crate::expert_cache::ExpertCacheArgs,
    /// After each answer, print the token ids fed and generated as one JSON line on stderr:
    /// `{"prompt_token_ids":[…],"token_ids":[…]}` (for tests that compare runs).
    #[arg(long = "print-token-ids")]
    pub print_token_ids: bool,
}

/// Says once on stderr that an accepted flag does nothing in this build.
fn note_unsupported(what: &str) {
    eprintln!("note: {what}");
}

fn cache_type(flag: &str, name: &str) -> Result<GgmlType> {
    const ALLOWED: &[&str] = &[
        "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
    ];
    if !ALLOWED.contains(&name.to_ascii_lowercase().as_str()) {
        bail!("{flag} {name}: allowed values are {}", ALLOWED.join(", "));
    }
    GgmlType::from_name(name).ok_or_else(|| anyhow!("{flag} {name}: unknown type"))
}

impl RunArgs {
    fn sampler_params(&self) -> SamplerParams {
        SamplerParams {
            temp: self.temp.max(0.0),
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            min_keep: 0,
            repeat_penalty: self.repeat_penalty,
            freq_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            penalty_last_n: self.repeat_last_n,
            seed: self.seed,
        }
    }

    fn limit(&self) -> Option<usize> {
        if self.n_predict < 0 {
            None
        } else {
            Some(self.n_predict as usize)
        }
    }

    fn prompt_text(&self) -> Result<Option<String>> {
        let raw = match (&self.prompt, &self.file) {
            (Some(_), Some(_)) => bail!("give the prompt with -p or -f, not both"),
            (Some(p), None) => Some(p.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("-f {f}: cannot read the prompt file"))?,
            ),
            (None, None) => None,
        };
        Ok(raw.map(|p| {
            if self.no_escape {
                p
            } else {
                crate::llama_args::process_escapes(&p)
            }
        }))
    }

    /// The placement flags (`-ngl`, `-ot`, `--cpu-moe`, `--n-cpu-moe`).
    pub fn placement(&self) -> crate::placement::PlacementArgs {
        crate::placement::PlacementArgs {
            n_gpu_layers: self.n_gpu_layers.clone(),
            override_tensor: self.override_tensor.clone(),
            cpu_moe: self.cpu_moe,
            n_cpu_moe: self.n_cpu_moe,
        }
    }

    fn report_inactive_flags(&self) {
        if let Some(p) = self.prio {
            if p != 0 {
                note_unsupported(&format!(
                    "--prio {p}: priority changes are not implemented; running at normal priority"
                ));
            }
        }
    }
}

/// Entry point of `sluice run`.
pub fn run(args: RunArgs) -> Result<()> {
    let t_start = Instant::now();
    args.report_inactive_flags();
    let k_type = cache_type("--cache-type-k", &args.cache_type_k)?;
    let v_type = match &args.cache_type_v {
        Some(v) => cache_type("--cache-type-v", v)?,
        None => GgmlType::F16,
    };
    let opened = crate::load::open(&args.model, args.no_mmap, &args.experts)?;
    let n_layer = sluice_core::model::Config::from_metadata(opened.gguf.metadata())
        .map(|c| c.n_layer)
        .with_context(|| format!("--model {}", args.model))?;
    let plan = crate::placement::plan(&args.placement(), n_layer)?;
    struct Generate<'a> {
        args: &'a RunArgs,
        t_start: Instant,
        k_type: GgmlType,
        v_type: GgmlType,
        opened: crate::load::Opened,
    }
    impl crate::load::WithBackend for Generate<'_> {
        type Output = ();
        fn run<B: Backend + 'static>(self, backend: B) -> Result<()> {
            let loaded = self.opened.load(backend)?;
            generate_with(self.args, self.t_start, self.k_type, self.v_type, loaded)
        }
    }
    let job = Generate {
        args: &args,
        t_start,
        k_type,
        v_type,
        opened,
    };
    crate::load::on_backend(
        plan,
        crate::load::threads(args.threads),
        args.device.as_deref(),
        job,
    )
}

/// Everything after loading: the session, then chat or one completion, then the timings.
fn generate_with<B: Backend + 'static>(
    args: &RunArgs,
    t_start: Instant,
    k_type: GgmlType,
    mut v_type: GgmlType,
    loaded: crate::load::Loaded<B>,
) -> Result<()> {
    let crate::load::Loaded {
        gguf,
        tokenizer,
        model,
        streaming,
    } = loaded;
    let cfg = &model.config;
    let mla = cfg.arch == Arch::DeepSeek2 && cfg.deepseek.as_ref().is_some_and(|d| d.mla);
    if mla && v_type != k_type {
        if args.cache_type_v.is_some() {
            eprintln!("note: this model keeps V inside the cached K rows; --cache-type-v {} is replaced by {k_type}", v_type);
        }
        v_type = k_type;
    }
    let n_ctx = if args.ctx_size == 0 {
        cfg.n_ctx_train
    } else {
        args.ctx_size
    };
    let session = model.session(n_ctx, k_type, v_type)?;
    let load_ms = t_start.elapsed().as_secs_f64() * 1e3;
    let fallback_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u32)
        .unwrap_or(0);
    let mut gen = Generator::new(
        session,
        &tokenizer,
        args.sampler_params(),
        fallback_seed,
        args.special,
        crate::clock_ms,
    );
    gen.perf.load_ms = load_ms;
    gen.ignore_eos = args.ignore_eos;

    let chat = !args.no_conversation && (args.conversation || std::io::stdin().is_terminal());
    if chat {
        let template = match &args.chat_template {
            Some(name) => ChatTemplate::by_name(name)?,
            None => ChatTemplate::detect(gguf.metadata(), &tokenizer)?.ok_or_else(|| {
                anyhow!("the model has no chat template sluice recognises; pass --chat-template NAME or use -no-cnv")
            })?,
        };
        let system = args.system_prompt.as_deref().map(|s| {
            if args.no_escape {
                s.to_string()
            } else {
                crate::llama_args::process_escapes(s)
            }
        });
        let first = args.prompt_text()?;
        crate::chat_loop::run(
            &mut gen,
            &template,
            system,
            first,
            args.limit(),
            args.single_turn,
            args.print_token_ids,
        )?;
    } else {
        complete(&mut gen, args)?;
    }
    eprint!(
        "\n{}",
        gen.perf.summary(t_start.elapsed().as_secs_f64() * 1e3)
    );
    if streaming {
        eprintln!("{}", crate::expert_cache::summary(&model.expert_stats()));
    }
    Ok(())
}

/// `-no-cnv`: echo the prompt, complete it once.
fn complete<B: Backend + 'static>(gen: &mut Generator<'_, '_, B>, args: &RunArgs) -> Result<()> {
    use std::io::Write;
    let tokenizer = gen.tokenizer();
    let prompt = args.prompt_text()?.unwrap_or_default();
    let ids = tokenizer.encode(&prompt, true, true);
    if ids.is_empty() {
        bail!("the prompt is empty; give one with -p or -f");
    }
    let mut out = std::io::stdout().lock();
    if !args.no_display_prompt {
        let echo = tokenizer.detokenize(&ids, false, args.special);
        out.write_all(&echo)?;
        out.flush()?;
    }
    sluice_core::source::block_on(gen.feed(&ids))?;
    let mut write_err = None;
    let mut generated = Vec::new();
    // Raw token bytes, as llama-completion writes them: the terminal joins UTF-8 sequences
    // split across tokens, and bytes that never form valid UTF-8 pass through unchanged.
    let special = args.special;
    let stop = sluice_core::source::block_on(gen.generate(args.limit(), &mut |id, _| {
        generated.push(id);
        let piece = tokenizer.token_to_piece(id, special);
        let r = out.write_all(&piece).and_then(|_| out.flush());
        let ok = r.is_ok();
        if let Err(e) = r {
            write_err = Some(e);
        }
        ok
    }))?;
    if let Some(e) = write_err {
        return Err(e).context("writing to stdout");
    }
    gen.flush();
    if args.print_token_ids {
        out.flush()?;
        eprintln!("{}", token_ids_json(&ids, &generated));
    }
    // llama-completion's ending, byte for byte: the marker on end of text, then a blank line.
    match stop {
        Stop::EndOfText => writeln!(out, " [end of text]")?,
        Stop::ContextFull => {
            out.flush()?;
            eprintln!("\nsluice: the context is full ({} tokens); stopping. Raise --ctx-size for longer output.", gen.session.n_ctx());
        }
        Stop::Limit | Stop::Cancelled => {}
    }
    out.write_all(b"\n\n")?;
    out.flush()?;
    Ok(())
}

/// The `--print-token-ids` line.
pub fn token_ids_json(prompt: &[u32], generated: &[u32]) -> String {
    serde_json::json!({ "prompt_token_ids": prompt, "token_ids": generated }).to_string()
}
