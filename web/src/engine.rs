//! A loaded model with its conversation: the part of the browser session that is plain Rust.
//!
//! [`Engine`] owns the model, the tokenizer and a [`Generator`] that borrows both, so that a
//! JavaScript object can hold a chat whose KV cache survives between turns. A turn follows
//! `sluice run`: in chat mode the whole conversation is rendered with the model's template and
//! only the text new since the last render is tokenized (with BOS on the first turn), as the
//! CLI's chat loop does; in completion mode (`-no-cnv`) the prompt is tokenized with BOS and
//! completed from an empty context. Everything here runs natively too, which is how it is
//! tested against the CLI's results without a browser.

use sluice_core::backend::Backend;
use sluice_core::chat::{ChatTemplate, Message};
use sluice_core::generate::{Generator, Perf, Stop};
use sluice_core::model::{Arch, Model};
use sluice_core::quant::GgmlType;
use sluice_core::sample::{Sampler, SamplerParams};
use sluice_core::source::LocalBoxFuture;
use sluice_core::tokenizer::Tokenizer;
use sluice_core::{Error, Result};
use std::ptr::NonNull;

/// What one call of `generate` asks for.
#[derive(Clone, Debug)]
pub struct TurnParams {
    pub sampler: SamplerParams,
    /// Seed used when `sampler.seed` is the "random" value.
    pub fallback_seed: u32,
    /// Tokens to generate; `None` until end of text or a full context.
    pub n_predict: Option<usize>,
    /// Apply the chat template (false: complete the raw prompt, like `-no-cnv`).
    pub chat: bool,
    /// System prompt of the conversation (a change starts a new conversation).
    pub system: Option<String>,
    /// Forget the conversation before this turn.
    pub reset: bool,
}

/// The result of a turn.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnOutput {
    /// Generated text (in chat mode without the end-of-generation token's text).
    pub text: String,
    /// The tokens this turn fed to the model.
    pub prompt_ids: Vec<u32>,
    /// Every sampled token, including a final end-of-generation token.
    pub ids: Vec<u32>,
    pub stop: Stop,
    /// Timings of this turn only.
    pub perf: Perf,
}

/// Returns a future to await when the caller should give the event loop a turn.
pub type YieldHook<'a> = &'a mut dyn FnMut() -> Option<LocalBoxFuture<'static, ()>>;

/// A model, its tokenizer, and a generator (KV cache, sampler) borrowing both.
pub struct Engine<B: Backend + 'static> {
    /// Borrows `*model` and `*tokenizer`; always dropped before them (see `Drop`).
    generator: Option<Generator<'static, 'static, B>>,
    model: NonNull<Model<B>>,
    tokenizer: NonNull<Tokenizer>,
    template: Option<ChatTemplate>,
    n_ctx: usize,
    cache_type: (GgmlType, GgmlType),
    clock: fn() -> f64,
    history: Vec<Message>,
    /// The conversation as last rendered (without a generation prompt).
    rendered: String,
    /// The context holds a raw completion, not a conversation.
    raw_context: bool,
}

impl<B: Backend + 'static> Engine<B> {
    /// Takes ownership of a loaded model; `n_ctx` 0 means the training context.
    pub fn new(
        model: Model<B>,
        tokenizer: Tokenizer,
        template: Option<ChatTemplate>,
        n_ctx: usize,
        clock: fn() -> f64,
    ) -> Result<Self> {
        let n_ctx = if n_ctx == 0 {
            model.config.n_ctx_train
        } else {
            n_ctx
        };
        // The CLI's defaults: f16 cache; MLA keeps V inside the K rows, so V follows K.
        let k_type = GgmlType::F16;
        let mla = model.config.arch == Arch::DeepSeek2
            && model.config.deepseek.as_ref().is_some_and(|d| d.mla);
        let v_type = if mla { k_type } else { GgmlType::F16 };
        let mut engine = Engine {
            generator: None,
            model: NonNull::from(Box::leak(Box::new(model))),
            tokenizer: NonNull::from(Box::leak(Box::new(tokenizer))),
            template,
            n_ctx,
            cache_type: (k_type, v_type),
            clock,
            history: Vec::new(),
            rendered: String::new(),
            raw_context: false,
        };
        engine.reset()?;
        Ok(engine)
    }

    pub fn model(&self) -> &Model<B> {
        // SAFETY: `model` came from `Box::leak` in `new`, is never mutated, and is freed only in
        // `drop`, after the generator; the reference cannot outlive `self`.
        unsafe { self.model.as_ref() }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        // SAFETY: as for `model`.
        unsafe { self.tokenizer.as_ref() }
    }

    pub fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Tokens in the context now.
    pub fn n_past(&self) -> usize {
        self.generator.as_ref().map_or(0, |g| g.session.n_past())
    }

    /// Forgets the conversation: a fresh KV cache and sampler.
    pub fn reset(&mut self) -> Result<()> {
        self.generator = None;
        self.history.clear();
        self.rendered.clear();
        self.raw_context = false;
        // SAFETY: the boxes outlive the generator (dropped first in `drop`, and replaced only
        // here after the old one was dropped); both are only read through these references.
        let (model, tokenizer): (&'static Model<B>, &'static Tokenizer) =
            unsafe { (&*self.model.as_ptr(), &*self.tokenizer.as_ptr()) };
        let session = model.session(self.n_ctx, self.cache_type.0, self.cache_type.1)?;
        self.generator = Some(Generator::new(
            session,
            tokenizer,
            SamplerParams::default(),
            0,
            false,
            self.clock,
        ));
        Ok(())
    }

    /// Runs one turn: feeds `prompt`, then samples, calling `on_token(Some(id), text)` per
    /// token (returning false stops) and `on_token(None, text)` for text held back until the
    /// end, and awaiting `yield_hook`'s future between tokens.
    pub async fn turn(
        &mut self,
        prompt: &str,
        params: &TurnParams,
        on_token: &mut dyn FnMut(Option<u32>, &str) -> bool,
        yield_hook: YieldHook<'_>,
    ) -> Result<TurnOutput> {
        let system = params.system.clone().filter(|s| !s.is_empty());
        let system_changed = self
            .history
            .first()
            .filter(|m| m.role == "system")
            .map(|m| m.content.clone())
            != system;
        let fresh = params.reset
            || !params.chat
            || self.raw_context
            || (!self.history.is_empty() && system_changed);
        if fresh || self.generator.is_none() {
            self.reset()?;
        }
        let result = self
            .turn_inner(prompt, system, params, on_token, yield_hook)
            .await;
        if result.is_err() {
            // The conversation may be half-updated: start the next turn from scratch.
            let _ = self.reset();
        }
        result
    }

    async fn turn_inner(
        &mut self,
        prompt: &str,
        system: Option<String>,
        params: &TurnParams,
        on_token: &mut dyn FnMut(Option<u32>, &str) -> bool,
        yield_hook: YieldHook<'_>,
    ) -> Result<TurnOutput> {
        let tokenizer: &Tokenizer = {
            // SAFETY: as in `reset`; the reference does not escape this call.
            unsafe { &*self.tokenizer.as_ptr() }
        };
        let prompt_ids = if params.chat {
            let template = self.template.clone().ok_or_else(|| {
                Error::Invalid(
                    "the model has no chat template sluice recognises; generate with chat: false"
                        .into(),
                )
            })?;
            if self.history.is_empty() {
                if let Some(s) = &system {
                    self.history.push(message("system", s));
                }
            }
            self.history.push(message("user", prompt));
            let full = template.render(&self.history, true);
            let delta = full
                .strip_prefix(self.rendered.as_str())
                .unwrap_or(&full)
                .to_string();
            tokenizer.encode(&delta, self.rendered.is_empty(), true)
        } else {
            self.raw_context = true;
            tokenizer.encode(prompt, true, true)
        };
        if prompt_ids.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        let gen = self
            .generator
            .as_mut()
            .ok_or_else(|| Error::Invalid("the session was not initialised".into()))?;
        gen.sampler = Sampler::new(params.sampler.clone(), params.fallback_seed);
        let before = gen.perf;
        gen.feed(&prompt_ids).await?;
        let mut text = String::new();
        let mut ids = Vec::new();
        let chat = params.chat;
        // One token per call of the shared loop, so the page can repaint and stop between them.
        let stop = loop {
            if params.n_predict.is_some_and(|n| ids.len() >= n) {
                break Stop::Limit;
            }
            let stop = gen
                .generate(Some(1), &mut |id, piece| {
                    ids.push(id);
                    if !(chat && tokenizer.is_eog(id)) {
                        text.push_str(piece);
                    }
                    on_token(Some(id), piece)
                })
                .await?;
            if stop != Stop::Limit {
                break stop;
            }
            if let Some(pause) = yield_hook() {
                pause.await;
            }
        };
        let tail = gen.flush();
        if !tail.is_empty() {
            on_token(None, &tail);
            text.push_str(&tail);
        }
        let perf = perf_delta(&gen.perf, &before);
        if chat {
            self.history.push(message("assistant", &text));
            if let Some(template) = &self.template {
                self.rendered = template.render(&self.history, false);
            }
        }
        Ok(TurnOutput {
            text,
            prompt_ids,
            ids,
            stop,
            perf,
        })
    }
}

impl<B: Backend + 'static> Drop for Engine<B> {
    fn drop(&mut self) {
        self.generator = None;
        // SAFETY: both pointers came from `Box::leak` in `new`, nothing borrows them any more
        // (the generator is gone and `model()`/`tokenizer()` borrows end with `&self`), and they
        // are freed exactly once, here.
        unsafe {
            drop(Box::from_raw(self.model.as_ptr()));
            drop(Box::from_raw(self.tokenizer.as_ptr()));
        }
    }
}

fn message(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

fn perf_delta(now: &Perf, before: &Perf) -> Perf {
    Perf {
        load_ms: now.load_ms,
        prompt_ms: now.prompt_ms - before.prompt_ms,
        prompt_tokens: now.prompt_tokens - before.prompt_tokens,
        eval_ms: now.eval_ms - before.eval_ms,
        eval_tokens: now.eval_tokens - before.eval_tokens,
        sample_ms: now.sample_ms - before.sample_ms,
        samples: now.samples - before.samples,
    }
}

/// The model's chat template, as the CLI finds it when `--chat-template` is not given.
pub fn detect_template(
    md: &sluice_core::gguf::Metadata,
    tokenizer: &Tokenizer,
) -> Result<Option<ChatTemplate>> {
    ChatTemplate::detect(md, tokenizer)
}
