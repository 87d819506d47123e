//! The JavaScript API: `Session.load(url, options)`, `generate`, `stop`, `reset`, `stats`.
//!
//! Internal code uses sluice-core's errors; they become `JsError`s (with the CLI's wording)
//! only here. Methods take `&self` so that `stop()` and `stats()` can be called while a
//! `generate()` is running: the running generation holds the engine, and everything the
//! other methods read lives in [`Shared`].

use crate::engine::{detect_template, Engine, TurnOutput, TurnParams};
use crate::expert_cache::BudgetedExperts;
use crate::fetch::{FetchCounters, FetchOpener};
use crate::js::{self, Options};
use js_sys::{Array, Function, Object};
use sluice_core::backend::Backend;
use sluice_core::cpu::CpuBackend;
use sluice_core::experts::{ExpertStore, StoreStats};
use sluice_core::generate::{Perf, Stop};
use sluice_core::gguf::GgufModel;
use sluice_core::model::{Arch, LoadOptions, Model, EXPERT_TENSORS};
use sluice_core::sample::{SamplerParams, RANDOM_SEED};
use sluice_core::tokenizer::Tokenizer;
use sluice_core::{Error, Result};
use sluice_shaders::{GpuOptions, WgpuBackend};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Default context in the browser: the training context can need gigabytes of KV cache.
const DEFAULT_CTX: usize = 4096;
/// Default expert-cache budget on the CPU path.
const DEFAULT_EXPERT_BUDGET_MB: f64 = 256.0;
/// How long generation may run before the page gets a turn.
const YIELD_EVERY_MS: f64 = 30.0;

/// Which compute backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendChoice {
    Auto,
    Cpu,
    WebGpu,
}

/// What the non-generating methods can read at any time.
struct Shared {
    stop: Cell<bool>,
    fetch: Rc<FetchCounters>,
    /// The streaming cache's live counters, if experts are streamed.
    experts_live: Option<crate::expert_cache::SharedStats>,
    /// The expert counters as of the end of the last turn (resident experts).
    experts: Cell<StoreStats>,
    last_turn: Cell<Perf>,
    /// While generating: tokens so far and when the first arrived (for a live speed).
    generating: Cell<bool>,
    live_tokens: Cell<u32>,
    live_first_ms: Cell<f64>,
    load_ms: f64,
    backend: String,
    adapter: String,
    /// Why the requested backend was not used (e.g. no WebGPU adapter), if so.
    backend_note: String,
    expert_mode: String,
    expert_budget: u64,
    expert_total: u64,
}

enum AnyEngine {
    Cpu(Engine<CpuBackend>),
    Gpu(Engine<WgpuBackend>),
}

/// Runs `$body` with `$e` bound to the engine, whichever backend it has.
macro_rules! with_engine {
    ($engine:expr, $e:ident => $body:expr) => {
        match $engine {
            AnyEngine::Cpu($e) => $body,
            AnyEngine::Gpu($e) => $body,
        }
    };
}

impl AnyEngine {
    fn n_past(&self) -> usize {
        with_engine!(self, e => e.n_past())
    }
}

/// The backend chosen for a load: WebGPU when asked (an error if there is none) or, for
/// `auto`, when an adapter opens; otherwise the CPU, with the reason in the note.
async fn open_gpu(choice: BackendChoice) -> Result<(Option<WgpuBackend>, String), JsError> {
    match choice {
        BackendChoice::Cpu => Ok((None, String::new())),
        BackendChoice::WebGpu => WgpuBackend::new(GpuOptions::default())
            .await
            .map(|b| (Some(b), String::new()))
            .map_err(|e| JsError::new(&format!("backend webgpu: {e}"))),
        BackendChoice::Auto => Ok(match WgpuBackend::new(GpuOptions::default()).await {
            Ok(b) => (Some(b), String::new()),
            Err(e) => (None, format!("no WebGPU ({e}); using the CPU")),
        }),
    }
}

/// A model loaded in the page, with its conversation.
#[wasm_bindgen]
pub struct Session {
    engine: RefCell<AnyEngine>,
    shared: Rc<Shared>,
    info: Object,
}

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

fn with_context(context: String) -> impl FnOnce(Error) -> JsError {
    move |e| JsError::new(&format!("{context}: {e}"))
}

/// Expert tensors are streamed by the cache, not loaded up front.
fn is_expert_tensor(name: &str) -> bool {
    EXPERT_TENSORS
        .iter()
        .any(|t| name.ends_with(&format!(".{t}.weight")))
}

struct LoadSettings {
    backend: BackendChoice,
    ctx: Option<usize>,
    expert_budget: u64,
    stream_experts: Option<bool>,
    on_progress: Option<Function>,
}

fn load_settings(options: &JsValue) -> Result<LoadSettings> {
    let o = Options::new(options, "options")?;
    let backend = match o.string("backend")?.as_deref() {
        None | Some("auto") => BackendChoice::Auto,
        Some("cpu") => BackendChoice::Cpu,
        Some("webgpu") => BackendChoice::WebGpu,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "options.backend {other:?}: allowed values are auto, cpu, webgpu"
            )))
        }
    };
    let budget_mb = o
        .number("expertBudgetMB")?
        .unwrap_or(DEFAULT_EXPERT_BUDGET_MB);
    if budget_mb < 0.0 {
        return Err(Error::Invalid(
            "options.expertBudgetMB must not be negative".into(),
        ));
    }
    let stream_experts = match o.string("experts")?.as_deref() {
        None => None,
        Some("stream") => Some(true),
        Some("resident") => Some(false),
        Some(other) => {
            return Err(Error::Invalid(format!(
                "options.experts {other:?}: allowed values are stream, resident"
            )))
        }
    };
    Ok(LoadSettings {
        backend,
        ctx: o.integer("ctxSize", 0.0, 1e9)?.map(|n| n as usize),
        expert_budget: (budget_mb * 1024.0 * 1024.0) as u64,
        stream_experts,
        on_progress: o.function("onProgress")?,
    })
}

fn turn_params(options: &JsValue) -> Result<TurnParams> {
    let o = Options::new(options, "options")?;
    let d = SamplerParams::default();
    let seed = match o.integer("seed", -1.0, u32::MAX as f64)? {
        None | Some(-1) => RANDOM_SEED,
        Some(s) => s as u32,
    };
    let n_predict = match o.integer("nPredict", -1.0, 1e9)? {
        None | Some(-1) => None,
        Some(n) => Some(n as usize),
    };
    let f = |key: &str, default: f32| -> Result<f32> {
        Ok(o.number(key)?.map_or(default, |v| v as f32))
    };
    Ok(TurnParams {
        sampler: SamplerParams {
            temp: f("temp", d.temp)?.max(0.0),
            top_k: o
                .integer("topK", i32::MIN as f64, i32::MAX as f64)?
                .map_or(d.top_k, |v| v as i32),
            top_p: f("topP", d.top_p)?,
            min_p: f("minP", d.min_p)?,
            min_keep: 0,
            repeat_penalty: f("repeatPenalty", d.repeat_penalty)?,
            freq_penalty: f("frequencyPenalty", d.freq_penalty)?,
            presence_penalty: f("presencePenalty", d.presence_penalty)?,
            penalty_last_n: o
                .integer("repeatLastN", 0.0, 1e9)?
                .map_or(d.penalty_last_n, |v| v as usize),
            seed,
        },
        fallback_seed: js::random_seed(),
        n_predict,
        chat: o.boolean("chat")?.unwrap_or(true),
        system: o.string("system")?,
        reset: o.boolean("reset")?.unwrap_or(false),
    })
}

fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::EndOfText => "eos",
        Stop::Limit => "limit",
        Stop::ContextFull => "context-full",
        Stop::Cancelled => "cancelled",
    }
}

fn per_second(ms: f64, n: usize) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
}

fn ids_array(ids: &[u32]) -> Array {
    ids.iter().map(|&i| JsValue::from(i)).collect()
}

async fn load_engine<B: Backend + 'static>(
    url: &str,
    gguf: GgufModel,
    backend: B,
    settings: &LoadSettings,
    stream: bool,
    shared_experts: &mut Option<crate::expert_cache::SharedStats>,
) -> Result<(Engine<B>, u64), JsError> {
    let tokenizer = Tokenizer::from_metadata(gguf.metadata())
        .map_err(with_context(format!("{url}: tokenizer")))?;
    let template = detect_template(gguf.metadata(), &tokenizer).map_err(js_error)?;
    let config = sluice_core::model::Config::from_metadata(gguf.metadata())
        .map_err(with_context(format!("loading {url}")))?;
    let mut options = LoadOptions::<B>::default();
    let mut expert_total = 0;
    if stream {
        let store = BudgetedExperts::<B>::new(&gguf, &config, settings.expert_budget, js::now_ms)
            .map_err(with_context(format!("loading {url}")))?;
        expert_total = store.layout().total_bytes();
        *shared_experts = Some(store.shared_stats());
        options.expert_store = Some(Box::new(store) as Box<dyn ExpertStore<B>>);
    }
    let model = Model::load(&gguf, backend, options)
        .await
        .map_err(with_context(format!("loading {url}")))?;
    let n_ctx = settings
        .ctx
        .filter(|&n| n > 0)
        .unwrap_or_else(|| model.config.n_ctx_train.min(DEFAULT_CTX));
    let engine = Engine::new(model, tokenizer, template, n_ctx, js::now_ms).map_err(js_error)?;
    Ok((engine, expert_total))
}

#[wasm_bindgen]
impl Session {
    /// Loads the model at `url` (a `.gguf` or any part of a split model).
    ///
    /// `options`: `backend` (`"auto"` | `"cpu"` | `"webgpu"`), `ctxSize` (tokens; default
    /// min(training context, 4096)), `experts` (`"stream"` | `"resident"`; default: stream on
    /// the CPU), `expertBudgetMB` (expert cache size when streaming; default 256),
    /// `onProgress(bytesFetched, bytesExpected)`.
    pub async fn load(url: String, options: JsValue) -> Result<Session, JsError> {
        let t0 = js::now_ms();
        let settings = load_settings(&options).map_err(js_error)?;
        let counters = Rc::new(FetchCounters::default());
        *counters.on_progress.borrow_mut() = settings.on_progress.clone();
        let opener = FetchOpener {
            counters: counters.clone(),
        };
        let gguf = GgufModel::open(&url, &opener)
            .await
            .map_err(with_context(format!("--model {url}")))?;
        let deepseek = sluice_core::model::Config::from_metadata(gguf.metadata())
            .map(|c| c.arch == Arch::DeepSeek2)
            .unwrap_or(false);
        let (gpu, note) = open_gpu(settings.backend).await?;
        let stream = deepseek && settings.stream_experts.unwrap_or(true);
        let expected: u64 = gguf
            .tensors()
            .iter()
            .filter(|t| !(stream && is_expert_tensor(t.name())))
            .filter_map(|t| t.info.nbytes())
            .sum();
        counters
            .expected
            .set(counters.bytes.get() + expected + 1024 * 1024);
        let mut expert_stats = None;
        let (engine, expert_total, backend_name, adapter, describe) = match gpu {
            Some(backend) => {
                let describe = backend.describe();
                let a = backend.adapter();
                let adapter = if a.name.is_empty() {
                    format!("{} ({} device)", a.backend, a.device_type.to_lowercase())
                } else {
                    format!("{} ({}, {})", a.name, a.backend, a.device_type)
                };
                let (engine, total) =
                    load_engine(&url, gguf, backend, &settings, stream, &mut expert_stats).await?;
                (AnyEngine::Gpu(engine), total, "webgpu", adapter, describe)
            }
            None => {
                let backend = CpuBackend::new(1).map_err(js_error)?;
                let describe = backend.describe();
                let (engine, total) =
                    load_engine(&url, gguf, backend, &settings, stream, &mut expert_stats).await?;
                (
                    AnyEngine::Cpu(engine),
                    total,
                    "cpu",
                    String::new(),
                    describe,
                )
            }
        };
        *counters.on_progress.borrow_mut() = None;
        let info = Object::new();
        with_engine!(&engine, engine => {
            let model = engine.model();
            let cfg = &model.config;
            js::set(&info, "url", url.as_str());
            js::set(
                &info,
                "name",
                cfg.name.clone().unwrap_or_else(|| url.clone()),
            );
            js::set(&info, "architecture", cfg.arch.gguf_name());
            js::set(&info, "layers", cfg.n_layer as u32);
            js::set(&info, "vocab", model.n_vocab as u32);
            js::set(&info, "ctxSize", engine.n_ctx() as u32);
            js::set(&info, "chatTemplate", engine.template().is_some());
            js::set(&info, "backend", describe.as_str());
        });
        let shared = Rc::new(Shared {
            stop: Cell::new(false),
            fetch: counters,
            experts_live: expert_stats,
            experts: Cell::new(StoreStats::default()),
            last_turn: Cell::new(Perf::default()),
            generating: Cell::new(false),
            live_tokens: Cell::new(0),
            live_first_ms: Cell::new(0.0),
            load_ms: js::now_ms() - t0,
            backend: format!("{backend_name}: {describe}"),
            adapter,
            backend_note: note,
            expert_mode: if stream { "stream" } else { "resident" }.to_string(),
            expert_budget: if stream { settings.expert_budget } else { 0 },
            expert_total,
        });
        Ok(Session {
            engine: RefCell::new(engine),
            shared,
            info,
        })
    }

    /// One turn of chat (or a raw completion with `chat: false`).
    ///
    /// `options`: `temp`, `topK`, `topP`, `minP`, `seed` (-1 random), `nPredict` (-1 until end
    /// of text), `repeatPenalty`, `repeatLastN`, `presencePenalty`, `frequencyPenalty`,
    /// `system`, `chat` (default true), `reset`. `onToken(text, id)` is called per token
    /// (`id` undefined for text held back to the end); returning `false` stops.
    /// Resolves to `{text, tokenIds, promptTokenIds, stop, tokensPerSecond, ...}`.
    pub async fn generate(
        &self,
        prompt: String,
        options: JsValue,
        on_token: Option<Function>,
    ) -> Result<JsValue, JsError> {
        let params = turn_params(&options).map_err(js_error)?;
        let mut engine = self.engine.try_borrow_mut().map_err(|_| {
            JsError::new("a generation is already running; stop() it or wait for it")
        })?;
        self.shared.stop.set(false);
        self.shared.live_tokens.set(0);
        self.shared.generating.set(true);
        let shared = self.shared.clone();
        let mut callback_error: Option<JsValue> = None;
        let mut callback = |id: Option<u32>, text: &str| -> bool {
            if id.is_some() {
                let n = shared.live_tokens.get();
                if n == 0 {
                    shared.live_first_ms.set(js::now_ms());
                }
                shared.live_tokens.set(n + 1);
            }
            if let Some(f) = &on_token {
                let id = id.map_or(JsValue::UNDEFINED, JsValue::from);
                match f.call2(&JsValue::NULL, &JsValue::from_str(text), &id) {
                    Ok(v) if v == JsValue::FALSE => return false,
                    Ok(_) => {}
                    Err(e) => {
                        callback_error = Some(e);
                        return false;
                    }
                }
            }
            !shared.stop.get()
        };
        let mut pause = || js::yield_if_due(YIELD_EVERY_MS);
        let result: Result<TurnOutput> = with_engine!(&mut *engine, e => {
            let r = e.turn(&prompt, &params, &mut callback, &mut pause).await;
            self.shared.experts.set(e.model().expert_stats());
            r
        });
        self.shared.generating.set(false);
        if let Some(e) = callback_error {
            return Err(JsError::new(&format!(
                "onToken threw: {}",
                js::describe(&e)
            )));
        }
        let out = result.map_err(js_error)?;
        self.shared.last_turn.set(out.perf);
        let o = Object::new();
        js::set(&o, "text", out.text.as_str());
        js::set(&o, "tokenIds", ids_array(&out.ids));
        js::set(&o, "promptTokenIds", ids_array(&out.prompt_ids));
        js::set(&o, "stop", stop_name(out.stop));
        js::set(
            &o,
            "tokensPerSecond",
            per_second(out.perf.eval_ms, out.perf.eval_tokens),
        );
        js::set(
            &o,
            "promptTokensPerSecond",
            per_second(out.perf.prompt_ms, out.perf.prompt_tokens),
        );
        js::set(&o, "nPast", engine.n_past() as u32);
        Ok(o.into())
    }

    /// Stops a running generation after the current token.
    pub fn stop(&self) {
        self.shared.stop.set(true);
    }

    /// Forgets the conversation (the next `generate` starts from an empty context).
    pub fn reset(&self) -> Result<(), JsError> {
        let mut engine = self
            .engine
            .try_borrow_mut()
            .map_err(|_| JsError::new("cannot reset while a generation is running"))?;
        with_engine!(&mut *engine, e => e.reset().map_err(js_error))
    }

    /// Model facts: `name`, `architecture`, `layers`, `vocab`, `ctxSize`, `chatTemplate`,
    /// `backend`.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> Object {
        self.info.clone()
    }

    /// Live counters (callable during a generation): speed of the last turn, expert-cache
    /// hits and misses, bytes fetched, backend and adapter.
    pub fn stats(&self) -> Object {
        let s = &self.shared;
        let perf = s.last_turn.get();
        let experts = s.experts_live.as_ref().map_or(s.experts.get(), |l| l.get());
        let o = Object::new();
        js::set(&o, "generating", s.generating.get());
        js::set(&o, "backend", s.backend.as_str());
        js::set(&o, "adapter", s.adapter.as_str());
        js::set(&o, "backendNote", s.backend_note.as_str());
        let speed = if s.generating.get() {
            // Tokens after the first, over the time since the first arrived.
            let n = s.live_tokens.get();
            per_second(
                js::now_ms() - s.live_first_ms.get(),
                n.saturating_sub(1) as usize,
            )
        } else {
            per_second(perf.eval_ms, perf.eval_tokens)
        };
        js::set(&o, "tokensPerSecond", speed);
        js::set(
            &o,
            "promptTokensPerSecond",
            per_second(perf.prompt_ms, perf.prompt_tokens),
        );
        js::set(&o, "evalTokens", perf.eval_tokens as u32);
        js::set(&o, "promptTokens", perf.prompt_tokens as u32);
        js::set(&o, "loadMs", s.load_ms);
        js::set(&o, "expertMode", s.expert_mode.as_str());
        js::set(&o, "expertHits", experts.hits as f64);
        js::set(&o, "expertMisses", experts.misses as f64);
        let lookups = experts.hits + experts.misses;
        js::set(
            &o,
            "expertHitRate",
            if lookups > 0 {
                experts.hits as f64 / lookups as f64
            } else {
                0.0
            },
        );
        js::set(&o, "expertStallMs", experts.stall_ms);
        js::set(&o, "expertBudgetMB", s.expert_budget as f64 / 1048576.0);
        js::set(&o, "expertTotalMB", s.expert_total as f64 / 1048576.0);
        js::set(&o, "bytesFetched", s.fetch.bytes.get() as f64);
        js::set(&o, "mbFetched", s.fetch.bytes.get() as f64 / 1048576.0);
        js::set(&o, "requests", s.fetch.requests.get() as f64);
        js::set(&o, "retries", s.fetch.retries.get() as f64);
        o
    }
}
