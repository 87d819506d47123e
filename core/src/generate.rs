//! The generation loop shared by the CLI and the browser: feed a prompt, sample, stream text.
//!
//! It follows llama-completion's loop: prompt tokens go through the sampler's history (for
//! repetition penalties), each sampled token is streamed as soon as its text is complete
//! UTF-8, an end-of-generation token stops without being evaluated, and the last sampled
//! token is evaluated only when more text follows (the next chat turn). Time is read from a
//! caller-supplied clock because core cannot read one on every platform.

use crate::backend::Backend;
use crate::model::{Logits, Session};
use crate::sample::{Sampler, SamplerParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use crate::{Error, Result};

/// Timings in llama.cpp's summary terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Perf {
    pub load_ms: f64,
    pub prompt_ms: f64,
    pub prompt_tokens: usize,
    pub eval_ms: f64,
    pub eval_tokens: usize,
    pub sample_ms: f64,
    pub samples: usize,
}

impl Perf {
    /// The summary lines, worded like llama.cpp's `llama_perf_context_print`.
    pub fn summary(&self, total_ms: f64) -> String {
        let per = |ms: f64, n: usize| {
            if n == 0 {
                (0.0, 0.0)
            } else {
                (ms / n as f64, 1e3 / ms * n as f64)
            }
        };
        let (sp, ss) = per(self.sample_ms, self.samples);
        let (pp, ps) = per(self.prompt_ms, self.prompt_tokens);
        let (ep, es) = per(self.eval_ms, self.eval_tokens);
        format!(
            "sluice_perf_sampler_print:    sampling time = {:10.2} ms / {:5} runs   ({:8.2} ms per token, {:8.2} tokens per second)\n\
             sluice_perf_context_print:        load time = {:10.2} ms\n\
             sluice_perf_context_print: prompt eval time = {:10.2} ms / {:5} tokens ({:8.2} ms per token, {:8.2} tokens per second)\n\
             sluice_perf_context_print:        eval time = {:10.2} ms / {:5} runs   ({:8.2} ms per token, {:8.2} tokens per second)\n\
             sluice_perf_context_print:       total time = {:10.2} ms / {:5} tokens\n",
            self.sample_ms,
            self.samples,
            sp,
            ss,
            self.load_ms,
            self.prompt_ms,
            self.prompt_tokens,
            pp,
            ps,
            self.eval_ms,
            self.eval_tokens,
            ep,
            es,
            total_ms,
            self.prompt_tokens + self.eval_tokens
        )
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The model produced an end-of-generation token.
    EndOfText,
    /// The token limit (`-n`) was reached.
    Limit,
    /// The context window is full.
    ContextFull,
    /// The caller asked to stop.
    Cancelled,
}

/// A session plus a sampler and a streaming decoder.
pub struct Generator<'m, 't, B: Backend> {
    pub session: Session<'m, B>,
    tokenizer: &'t Tokenizer,
    pub sampler: Sampler,
    decoder: StreamDecoder,
    logits: Vec<f32>,
    /// The last sampled token, not yet evaluated.
    pending: Option<u32>,
    pub perf: Perf,
    /// Never sample an end-of-generation token (llama-cli's `--ignore-eos`): their logits
    /// are set to −∞ before sampling, as llama.cpp's logit bias does.
    pub ignore_eos: bool,
    clock: fn() -> f64,
}

impl<'m, 't, B: Backend + 'static> Generator<'m, 't, B> {
    /// `clock` returns milliseconds from any fixed origin; `special` shows control tokens.
    pub fn new(
        session: Session<'m, B>,
        tokenizer: &'t Tokenizer,
        params: SamplerParams,
        fallback_seed: u32,
        special: bool,
        clock: fn() -> f64,
    ) -> Self {
        Self {
            session,
            tokenizer,
            sampler: Sampler::new(params, fallback_seed),
            decoder: StreamDecoder::new(special),
            logits: Vec::new(),
            pending: None,
            perf: Perf::default(),
            ignore_eos: false,
            clock,
        }
    }

    pub fn tokenizer(&self) -> &'t Tokenizer {
        self.tokenizer
    }

    /// Evaluates `tokens` (after any pending sampled token) and records them in the sampler.
    pub async fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        let mut all = Vec::with_capacity(tokens.len() + 1);
        all.extend(self.pending.take());
        all.extend_from_slice(tokens);
        if all.is_empty() {
            return Ok(());
        }
        let t0 = (self.clock)();
        self.logits = self.session.eval(&all, Logits::Last).await?;
        self.perf.prompt_ms += (self.clock)() - t0;
        self.perf.prompt_tokens += all.len();
        for &t in tokens {
            self.sampler.accept(t);
        }
        Ok(())
    }

    /// Samples up to `limit` tokens (None: until end of text or a full context), calling
    /// `on_text(id, text)` for each; `on_text` returns false to stop.
    pub async fn generate(
        &mut self,
        limit: Option<usize>,
        on_text: &mut dyn FnMut(u32, &str) -> bool,
    ) -> Result<Stop> {
        if self.logits.is_empty() {
            return Err(Error::Invalid(
                "generate called before any prompt was fed".into(),
            ));
        }
        if limit == Some(0) {
            return Ok(Stop::Limit);
        }
        let mut produced = 0usize;
        loop {
            if let Some(id) = self.pending.take() {
                if self.session.n_past() >= self.session.n_ctx() {
                    self.pending = Some(id);
                    return Ok(Stop::ContextFull);
                }
                let t0 = (self.clock)();
                self.logits = self.session.eval(&[id], Logits::Last).await?;
                self.perf.eval_ms += (self.clock)() - t0;
                self.perf.eval_tokens += 1;
            }
            let t0 = (self.clock)();
            if self.ignore_eos {
                for &e in self.tokenizer.eog_tokens() {
                    if let Some(l) = self.logits.get_mut(e as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let id = self.sampler.sample(&self.logits);
            self.sampler.accept(id);
            self.perf.sample_ms += (self.clock)() - t0;
            self.perf.samples += 1;
            self.pending = Some(id);
            produced += 1;
            let text = self.decoder.push(self.tokenizer, id);
            let keep_going = on_text(id, &text);
            if self.tokenizer.is_eog(id) {
                return Ok(Stop::EndOfText);
            }
            if !keep_going {
                return Ok(Stop::Cancelled);
            }
            if limit.is_some_and(|l| produced >= l) {
                return Ok(Stop::Limit);
            }
        }
    }

    /// Text held back because it ends inside a UTF-8 sequence.
    pub fn flush(&mut self) -> String {
        self.decoder.finish()
    }
}
