//! Models: loading a GGUF onto a backend and running the forward pass.
//!
//! [`Model`] holds the weights of one network (DeepSeek-V2/V3 or Llama) on one backend;
//! [`Session`] holds a KV cache and a position and turns tokens into logits. The networks are
//! written once against [`Backend`] and reach routed experts through an
//! [`ExpertStore`](crate::experts::ExpertStore).

pub mod config;
mod deepseek2;
mod llama;
pub mod routing;
pub mod weights;

pub use config::{Arch, Config, DeepSeekConfig, Gating};
pub use deepseek2::EXPERT_TENSORS;

use crate::backend::{Backend, CacheSpec, Segments};
use crate::experts::{ExpertStore, StoreStats};
use crate::gguf::GgufModel;
use crate::quant::GgmlType;
use crate::{Error, Result};
use deepseek2::DeepSeek2;
use llama::Llama;
use std::collections::HashMap;
use weights::Loader;

/// The Walsh–Hadamard rotations llama.cpp applies around a quantized KV cache in ordinary
/// (non-latent) attention: Q and K rotated in chunks of `k` before the scores, V in chunks of
/// `v` before caching and the attention output rotated back. Exact arithmetic would not
/// notice; quantization does, so matching llama.cpp means rotating too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheRotation {
    pub k: Option<usize>,
    pub v: Option<usize>,
}

impl CacheRotation {
    /// The rotations for a cache of `spec` with per-head sizes `head_k`/`head_v`.
    pub fn for_cache(spec: &CacheSpec, head_k: usize, head_v: usize) -> Self {
        if spec.v_cols.is_none() {
            return Self::default();
        }
        let quantized = |t: GgmlType| !matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        let k = (quantized(spec.k_type) && head_k.is_multiple_of(64)).then(|| {
            let mut n = 64;
            while head_k.is_multiple_of(n * 2) {
                n *= 2;
            }
            n
        });
        let v = (quantized(spec.v_type) && head_v.is_multiple_of(64)).then_some(64);
        Self { k, v }
    }
}

/// Intermediate tensors reused across layers and tokens, by name, so that steady-state
/// decoding allocates nothing.
pub struct Scratch<B: Backend> {
    free: HashMap<&'static str, B::Tensor>,
}

impl<B: Backend> Default for Scratch<B> {
    fn default() -> Self {
        Self {
            free: HashMap::new(),
        }
    }
}

impl<B: Backend> Scratch<B> {
    /// The tensor called `name` if it has this shape, a new one otherwise.
    pub fn take_new(&mut self, be: &B, name: &'static str, rows: usize, cols: usize) -> B::Tensor {
        match self.free.remove(name) {
            Some(t) if be.shape(&t) == (rows, cols) => t,
            _ => be.tensor(rows, cols),
        }
    }

    /// Returns a tensor for reuse.
    pub fn put(&mut self, name: &'static str, t: B::Tensor) {
        self.free.insert(name, t);
    }
}

/// A SwiGLU feed-forward block: `down · (silu(gate · x) ⊙ (up · x))`.
pub(crate) struct Ffn<B: Backend> {
    gate: B::Weight,
    up: B::Weight,
    down: B::Weight,
    width: usize,
}

impl<B: Backend> Ffn<B> {
    /// Loads `blk.{l}.ffn_{gate,up,down}{suffix}.weight`.
    async fn load(
        ld: &Loader<'_, B>,
        l: usize,
        suffix: &str,
        n_embd: usize,
        width: usize,
    ) -> Result<Self> {
        let n = |p: &str| format!("blk.{l}.ffn_{p}{suffix}.weight");
        let (e, w) = (n_embd as u64, width as u64);
        Ok(Self {
            gate: ld.matrix(&n("gate"), &[e, w]).await?,
            up: ld.matrix(&n("up"), &[e, w]).await?,
            down: ld.matrix(&n("down"), &[w, e]).await?,
            width,
        })
    }

    fn forward(
        &self,
        be: &B,
        x: &B::Tensor,
        out: &mut B::Tensor,
        s: &mut Scratch<B>,
    ) -> Result<()> {
        let t = be.shape(x).0;
        let mut g = s.take_new(be, "ffn_gate", t, self.width);
        let mut u = s.take_new(be, "ffn_up", t, self.width);
        be.matmul(&self.gate, x, &mut g)?;
        be.matmul(&self.up, x, &mut u)?;
        let mut act = s.take_new(be, "ffn_act", t, self.width);
        be.swiglu(&g, &u, &mut act)?;
        be.matmul(&self.down, &act, out)?;
        s.put("ffn_gate", g);
        s.put("ffn_up", u);
        s.put("ffn_act", act);
        Ok(())
    }
}

enum Network<B: Backend> {
    DeepSeek2(DeepSeek2<B>),
    Llama(Llama<B>),
}

/// Options for [`Model::load`].
pub struct LoadOptions<B: Backend> {
    /// Where routed experts come from; `None` keeps them all resident.
    pub expert_store: Option<Box<dyn ExpertStore<B>>>,
    /// Deliberately wrong routing, for experiments and for tests that prove the real rules
    /// matter. Never set in normal use.
    pub routing_ablation: RoutingAblation,
}

/// Parts of MoE routing to switch off (see [`LoadOptions::routing_ablation`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutingAblation {
    /// Select experts without the `exp_probs_b` selection bias.
    pub ignore_bias: bool,
    /// Select experts without the group limit.
    pub ignore_groups: bool,
}

impl<B: Backend> Default for LoadOptions<B> {
    fn default() -> Self {
        Self {
            expert_store: None,
            routing_ablation: RoutingAblation::default(),
        }
    }
}

/// A model's weights on a backend.
pub struct Model<B: Backend> {
    pub config: Config,
    pub n_vocab: usize,
    backend: B,
    net: Network<B>,
    tok_embd: B::Weight,
    output_norm: B::Tensor,
    output: B::Weight,
}

/// Which positions' logits an evaluation returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (generation).
    Last,
    /// Every token's (parity tests).
    All,
    /// Those of the tokens from this index on (perplexity scores the second half).
    From(usize),
}

impl<B: Backend + 'static> Model<B> {
    /// Loads a `deepseek2` or `llama` model from `gguf` onto `backend`.
    pub async fn load(gguf: &GgufModel, backend: B, opts: LoadOptions<B>) -> Result<Self> {
        let config = Config::from_metadata(gguf.metadata())?;
        let ld = Loader::new(gguf, &backend);
        let embd = gguf
            .tensor("token_embd.weight")
            .ok_or_else(|| Error::model("required tensor token_embd.weight is missing"))?;
        let n_vocab = embd.info.ne(1) as usize;
        let e = config.n_embd as u64;
        let tok_embd = ld.matrix("token_embd.weight", &[e, n_vocab as u64]).await?;
        let output_norm = ld.vector("output_norm.weight", config.n_embd).await?;
        let output = match ld.matrix_opt("output.weight", &[e, n_vocab as u64]).await? {
            Some(w) => w,
            None => ld.matrix("token_embd.weight", &[e, n_vocab as u64]).await?,
        };
        let net = match config.arch {
            Arch::DeepSeek2 => Network::DeepSeek2(
                DeepSeek2::load(&config, &ld, opts.expert_store, opts.routing_ablation).await?,
            ),
            Arch::Llama => Network::Llama(Llama::load(&config, &ld).await?),
        };
        // MTP blocks (after the trunk) are skipped, as llama.cpp does unless asked for them.
        let mtp_prefixes: Vec<String> = (config.n_layer..config.n_layer + 8)
            .map(|l| format!("blk.{l}."))
            .collect();
        let unclaimed: Vec<String> = ld
            .unclaimed()
            .into_iter()
            .filter(|n| !mtp_prefixes.iter().any(|p| n.starts_with(p.as_str())))
            .collect();
        if !unclaimed.is_empty() {
            return Err(Error::model(format!(
                "{} tensor(s) in the file are not part of a {} model: {}",
                unclaimed.len(),
                config.arch.gguf_name(),
                unclaimed
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        drop(ld);
        Ok(Self {
            config,
            n_vocab,
            backend,
            net,
            tok_embd,
            output_norm,
            output,
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The KV cache shape for `n_ctx` tokens with the given cache types.
    pub fn cache_spec(&self, n_ctx: usize, k_type: GgmlType, v_type: GgmlType) -> CacheSpec {
        match &self.net {
            Network::DeepSeek2(n) => n.cache_spec(n_ctx, k_type, v_type),
            Network::Llama(n) => n.cache_spec(n_ctx, k_type, v_type),
        }
    }

    /// Expert-store counters (all zero for dense models).
    pub fn expert_stats(&self) -> StoreStats {
        match &self.net {
            Network::DeepSeek2(n) => n.experts.stats(),
            Network::Llama(_) => StoreStats::default(),
        }
    }

    /// A new session with an empty cache of `n_ctx` tokens.
    pub fn session(
        &self,
        n_ctx: usize,
        k_type: GgmlType,
        v_type: GgmlType,
    ) -> Result<Session<'_, B>> {
        let spec = self.cache_spec(n_ctx, k_type, v_type);
        let cache = self.backend.new_cache(&spec)?;
        let (head_k, head_v) = match &self.config.deepseek {
            Some(ds) => (ds.d_qk, ds.d_v),
            None => (self.config.head_dim_k, self.config.head_dim_v),
        };
        Ok(Session {
            model: self,
            cache,
            n_past: 0,
            n_ctx,
            scratch: Scratch::default(),
            rotation: CacheRotation::for_cache(&spec, head_k, head_v),
        })
    }
}

/// A sequence being evaluated: the KV cache and how many tokens it holds.
pub struct Session<'m, B: Backend> {
    model: &'m Model<B>,
    cache: B::Cache,
    n_past: usize,
    n_ctx: usize,
    scratch: Scratch<B>,
    rotation: CacheRotation,
}

/// Tokens evaluated per forward call (llama.cpp's default micro-batch).
pub const MAX_BATCH: usize = 512;

impl<B: Backend + 'static> Session<'_, B> {
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Forgets everything after the first `n` tokens (the cache rows stay but are overwritten).
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    /// Evaluates `tokens` after what the session holds; returns logits (`n_vocab` per returned
    /// position).
    pub async fn eval(&mut self, tokens: &[u32], which: Logits) -> Result<Vec<f32>> {
        if self.n_past + tokens.len() > self.n_ctx {
            return Err(Error::ContextFull(format!(
                "{} tokens in the context plus {} new exceed the context size {} (raise --ctx-size)",
                self.n_past,
                tokens.len(),
                self.n_ctx
            )));
        }
        let n_vocab = self.model.n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary ({n_vocab})"
            )));
        }
        let from = match which {
            Logits::All => 0,
            Logits::Last => tokens.len().saturating_sub(1),
            Logits::From(k) => k,
        };
        let mut logits = Vec::new();
        for (i, chunk) in tokens.chunks(MAX_BATCH).enumerate() {
            let begin = i * MAX_BATCH;
            // Rows of this batch whose logits are wanted: those at or after `from`.
            let skip = from.saturating_sub(begin);
            let rows = chunk.len().saturating_sub(skip);
            logits.extend(self.eval_batch(chunk, rows).await?);
        }
        Ok(logits)
    }

    /// Evaluates one batch; returns the logits of its last `rows` tokens.
    async fn eval_batch(&mut self, tokens: &[u32], rows: usize) -> Result<Vec<f32>> {
        let m = self.model;
        let be = &m.backend;
        let t = tokens.len();
        let n_embd = m.config.n_embd;
        let s = &mut self.scratch;
        let mut x = s.take_new(be, "x", t, n_embd);
        be.enter_layer(None);
        be.embed(&m.tok_embd, tokens, &mut x)?;
        let start = self.n_past;
        match &m.net {
            Network::DeepSeek2(n) => {
                n.layers(be, &mut self.cache, &mut x, start, self.rotation, s)
                    .await?
            }
            Network::Llama(n) => n.layers(be, &mut self.cache, &mut x, start, self.rotation, s)?,
        }
        self.n_past += t;
        be.enter_layer(None);
        let result = match rows {
            0 => Vec::new(),
            rows => {
                let mut last = s.take_new(be, "x_out", rows, n_embd);
                be.copy_rows(&x, t - rows, &mut last)?;
                let mut normed = s.take_new(be, "x_norm", rows, n_embd);
                be.rms_norm(
                    &last,
                    &m.output_norm,
                    Segments::whole(n_embd),
                    m.config.rms_eps,
                    &mut normed,
                )?;
                let mut logits = s.take_new(be, "logits", rows, m.n_vocab);
                be.matmul(&m.output, &normed, &mut logits)?;
                let host = be.download(&logits).await?;
                s.put("x_out", last);
                s.put("x_norm", normed);
                s.put("logits", logits);
                host
            }
        };
        s.put("x", x);
        Ok(result)
    }
}
