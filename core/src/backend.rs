//! The op-level interface every compute backend implements.
//!
//! The model code (DeepSeek-V3, Llama) is written once against [`Backend`]; the CPU backend in
//! `crate::cpu` and the wgpu backend in `sluice-shaders` implement it. Ops are deliberately
//! small and shape-explicit: activations are 2-D `f32` tensors of `[rows][cols]` (one row per
//! token), weights are ggml-typed matrices used as `y = W · x` per row.
//!
//! Column sub-ranges that the model needs (the rotary part of each attention head, the latent
//! part of a compressed KV row) are described with [`Segments`] instead of views, so every op
//! stays a plain function of whole buffers that a GPU kernel can mirror.

use crate::quant::GgmlType;
use crate::source::{ByteSource, LocalBoxFuture};
use crate::Result;
use std::sync::Arc;

/// Bytes of a weight: in place in a source that is memory (a map), or owned.
#[derive(Clone)]
pub enum WeightBytes {
    /// `len` bytes at `offset` of `source`, whose `as_slice()` is `Some`.
    Mapped {
        source: Arc<dyn ByteSource>,
        offset: u64,
        len: u64,
    },
    /// Bytes read into memory (from a file, over HTTP, or converted).
    Owned(Arc<Vec<u8>>),
}

impl WeightBytes {
    /// The bytes. Mapped bytes come from the source's slice (checked at construction).
    pub fn bytes(&self) -> &[u8] {
        match self {
            WeightBytes::Mapped {
                source,
                offset,
                len,
            } => source
                .as_slice()
                .map(|s| &s[*offset as usize..(*offset + *len) as usize])
                .unwrap_or(&[]),
            WeightBytes::Owned(v) => v,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            WeightBytes::Mapped { len, .. } => *len,
            WeightBytes::Owned(v) => v.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A sub-range (used to cut one expert out of a stacked expert tensor).
    pub fn slice(&self, offset: u64, len: u64) -> WeightBytes {
        match self {
            WeightBytes::Mapped {
                source, offset: o, ..
            } => WeightBytes::Mapped {
                source: source.clone(),
                offset: o + offset,
                len,
            },
            WeightBytes::Owned(v) => WeightBytes::Owned(Arc::new(
                v[offset as usize..(offset + len) as usize].to_vec(),
            )),
        }
    }
}

/// A weight matrix as stored: `rows` rows of `cols` elements of type `ty`, repeated over
/// `mats` matrices (attention heads of `attn_k_b`/`attn_v_b`; 1 otherwise).
#[derive(Clone)]
pub struct WeightData {
    pub name: String,
    pub ty: GgmlType,
    pub cols: usize,
    pub rows: usize,
    pub mats: usize,
    pub bytes: WeightBytes,
}

/// For each of `groups` groups in a row, the columns `offset + g·stride .. + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    pub groups: usize,
    pub stride: usize,
    pub offset: usize,
    pub len: usize,
}

impl Segments {
    /// The whole row of `cols` columns as one segment.
    pub fn whole(cols: usize) -> Self {
        Segments {
            groups: 1,
            stride: cols,
            offset: 0,
            len: cols,
        }
    }

    /// `groups` back-to-back segments of `len` columns.
    pub fn packed(groups: usize, len: usize) -> Self {
        Segments {
            groups,
            stride: len,
            offset: 0,
            len,
        }
    }

    /// Columns needed in a row for these segments to fit.
    pub fn min_cols(&self) -> usize {
        if self.groups == 0 {
            0
        } else {
            (self.groups - 1) * self.stride + self.offset + self.len
        }
    }
}

/// Rotary embedding flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs (2i, 2i+1): llama, deepseek2.
    Norm,
    /// Halves (i, i + n/2): gpt-neox style.
    Neox,
}

/// Everything the rope op needs, with YaRN's correction already resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub mode: RopeMode,
    /// Rotated dimensions per segment.
    pub n_rot: usize,
    pub freq_base: f32,
    pub freq_scale: f32,
    pub ext_factor: f32,
    pub attn_factor: f32,
    /// YaRN correction dims (low, high) as floats, from `yarn_corr_dims`.
    pub corr_dims: [f32; 2],
}

impl RopeParams {
    /// `(cos, sin)` of each rotary pair `i < n_rot / 2` at position `pos`, with YaRN's
    /// correction, exactly as ggml's rope cache builds them (angles by repeated
    /// multiplication). Backends that rotate on a device compute this table on the host, so
    /// every backend uses the same angles.
    pub fn cos_sin(&self, pos: u32, out: &mut [(f32, f32)]) {
        let theta_scale = self.freq_base.powf(-2.0 / self.n_rot as f32);
        let mut theta = pos as f32;
        for (i, c) in out.iter_mut().enumerate() {
            *c = self.yarn(theta, i);
            theta *= theta_scale;
        }
    }

    /// The YaRN-corrected (cos, sin) for rotary pair `pair` at angle `theta_extrap`
    /// (ggml's `rope_yarn`).
    fn yarn(&self, theta_extrap: f32, pair: usize) -> (f32, f32) {
        let theta_interp = self.freq_scale * theta_extrap;
        let mut theta = theta_interp;
        let mut mscale = self.attn_factor;
        if self.ext_factor != 0.0 {
            let [low, high] = self.corr_dims;
            let y = (pair as f32 - low) / (high - low).max(0.001);
            let ramp = 1.0 - y.clamp(0.0, 1.0);
            let mix = ramp * self.ext_factor;
            theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
            mscale *= 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
        }
        (theta.cos() * mscale, theta.sin() * mscale)
    }
}

/// Attention shape for one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Query/key length per head.
    pub head_dim_k: usize,
    /// Value length per head.
    pub head_dim_v: usize,
    /// Score multiplier (1/sqrt(d) or the YaRN-corrected kq_scale).
    pub scale: f32,
}

/// Shape and storage of a KV cache.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheSpec {
    pub n_layer: usize,
    pub n_ctx: usize,
    /// Elements of one cached K row (all KV heads of one token).
    pub k_cols: usize,
    /// Elements of one cached V row; `None` when V is the first `head_dim_v` elements of
    /// each K row (MLA's latent cache).
    pub v_cols: Option<usize>,
    pub k_type: GgmlType,
    pub v_type: GgmlType,
}

/// The compute interface. Every op writes its result into an output tensor that the caller
/// allocated with the right shape (so steady-state decoding allocates nothing).
pub trait Backend {
    /// A 2-D `f32` activation tensor `[rows][cols]`.
    type Tensor;
    /// A weight matrix (possibly quantized, possibly several per tensor).
    type Weight;
    /// A KV cache.
    type Cache;

    /// Short description for logs and `--help` (`cpu (2 threads)`, `vulkan: NVIDIA …`).
    fn describe(&self) -> String;

    /// Announces the layer the next ops belong to (`None`: the work before the first layer
    /// or after the last). A backend that spans devices places weightless ops by it; one
    /// device ignores it.
    fn enter_layer(&self, _layer: Option<usize>) {}

    // ---- memory -------------------------------------------------------------------------

    /// Makes a weight usable by this backend (zero-copy on the CPU when mapped).
    fn load_weight(&self, w: WeightData) -> Result<Self::Weight>;
    /// Matrix `index` of a stacked weight (`mats > 1`), or the rows `index·rows ..` of a
    /// 3-D expert tensor: one expert's slab, used by the expert store.
    fn weight_rows(&self, w: &Self::Weight, first_row: usize, rows: usize) -> Result<Self::Weight>;
    /// A zeroed tensor.
    fn tensor(&self, rows: usize, cols: usize) -> Self::Tensor;
    /// A tensor with these contents.
    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// Reads a tensor back to the host.
    fn download<'a>(&'a self, t: &'a Self::Tensor) -> LocalBoxFuture<'a, Result<Vec<f32>>>;
    /// `(rows, cols)` of a tensor.
    fn shape(&self, t: &Self::Tensor) -> (usize, usize);
    /// A KV cache for a whole model.
    fn new_cache(&self, spec: &CacheSpec) -> Result<Self::Cache>;

    // ---- ops ----------------------------------------------------------------------------

    /// `out[t] = table[ids[t]]`, dequantized.
    fn embed(&self, table: &Self::Weight, ids: &[u32], out: &mut Self::Tensor) -> Result<()>;
    /// `out[t] = x[t] / sqrt(mean(x[t]²) + eps) ⊙ w` over each segment of `seg` in each row;
    /// `w` is a 1-row tensor of `seg.len` elements. Columns outside the segments are copied.
    fn rms_norm(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        seg: Segments,
        eps: f32,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out[t] = W · x[t]`.
    fn matmul(&self, w: &Self::Weight, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// Per-group matrices: `out[t, out_seg g] = W_g · x[t, x_seg g]` for each matrix `g` of a
    /// stacked weight (`x_seg.groups == out_seg.groups == w.mats`).
    fn matmul_groups(
        &self,
        w: &Self::Weight,
        x: &Self::Tensor,
        x_seg: Segments,
        out: &mut Self::Tensor,
        out_seg: Segments,
    ) -> Result<()>;
    /// Rotary embedding in place on every segment of every row; row `t` is at position
    /// `positions[t]`.
    fn rope(
        &self,
        x: &mut Self::Tensor,
        seg: Segments,
        positions: &[u32],
        p: &RopeParams,
    ) -> Result<()>;
    /// Copies the columns of `src_seg` into the columns of `dst_seg` (same groups and length).
    fn copy_segments(
        &self,
        src: &Self::Tensor,
        src_seg: Segments,
        dst: &mut Self::Tensor,
        dst_seg: Segments,
    ) -> Result<()>;
    /// Copies rows `first..first + dst.rows` of `src` into `dst` (same column count).
    fn copy_rows(&self, src: &Self::Tensor, first: usize, dst: &mut Self::Tensor) -> Result<()>;
    /// Stores K (and V) rows for positions `start..start + rows` of `layer`.
    fn cache_store(
        &self,
        cache: &mut Self::Cache,
        layer: usize,
        start: usize,
        k: &Self::Tensor,
        v: Option<&Self::Tensor>,
    ) -> Result<()>;
    /// Causal attention of `q` (`[T][n_head·head_dim_k]`, row t at position `start + t`)
    /// over cached positions `0..=start + t` of `layer`; `out` is `[T][n_head·head_dim_v]`.
    fn attention(
        &self,
        cache: &Self::Cache,
        layer: usize,
        q: &Self::Tensor,
        start: usize,
        p: &AttnParams,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out = silu(gate) ⊙ up`.
    fn swiglu(&self, gate: &Self::Tensor, up: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// In place on every `n`-column chunk of every row: the orthonormal Walsh–Hadamard
    /// transform (`n` a power of two), as ggml's FWHT computes it: scale by 1/√n, then the
    /// butterflies. llama.cpp rotates Q/K (and V) with it before quantizing a KV cache.
    fn hadamard(&self, x: &mut Self::Tensor, n: usize) -> Result<()>;
    /// `acc += x`.
    fn add_assign(&self, acc: &mut Self::Tensor, x: &Self::Tensor) -> Result<()>;
    /// `acc *= s` (`attn_output.scale`).
    fn scale(&self, acc: &mut Self::Tensor, s: f32) -> Result<()>;

    // ---- mixture of experts ------------------------------------------------------------

    /// Routed experts' SwiGLU FFNs: for every job and each `i`,
    /// `out[job.out_rows[i]] = down · (silu(gate · x[job.x_rows[i]]) ⊙ (up · x[job.x_rows[i]]))`.
    /// Jobs write disjoint output rows, so a backend may run them in parallel.
    fn moe_experts(
        &self,
        jobs: &[ExpertJob<'_, Self::Weight>],
        x: &Self::Tensor,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out[t] = Σ_k weights[t·k_used + k] · slots[t·k_used + k]`, summed in k order.
    fn moe_combine(
        &self,
        slots: &Self::Tensor,
        weights: &[f32],
        k_used: usize,
        out: &mut Self::Tensor,
    ) -> Result<()>;
}

/// One routed expert and the tokens sent to it.
pub struct ExpertJob<'a, W> {
    pub gate: &'a W,
    pub up: &'a W,
    pub down: &'a W,
    /// Rows of the input tensor (tokens) routed to this expert.
    pub x_rows: &'a [u32],
    /// Matching rows of the output (the token's slot for this expert).
    pub out_rows: &'a [u32],
}
