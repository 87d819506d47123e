//! Where every routed expert's bytes are: the expert slabs of each MoE layer.
//!
//! A stacked expert tensor (`ffn_{gate,up,down}_exps`, shape `[cols, rows, n_expert]`) holds
//! one `rows × cols` matrix per expert, back to back, so expert `e`'s slab is the byte range
//! `data_start + e·slab .. + slab` of the part holding the tensor. Files that fuse gate and up
//! (`ffn_gate_up_exps`, `[n_embd, 2·n_ff_exp, n_expert]`) have one slab for both: its first
//! `n_ff_exp` rows are the gate, the rest the up projection. Shapes are checked here the way
//! the model loader checks them, so a store never reads a range the model would reject.

use crate::gguf::{GgufModel, ModelTensor};
use crate::model::{Arch, Config};
use crate::quant::GgmlType;
use crate::{Error, Result};

/// One stacked expert tensor: where its slabs are and what each slab is.
#[derive(Clone, Debug, PartialEq)]
pub struct SlabTensor {
    pub name: String,
    /// Index of the GGUF part holding the tensor.
    pub part: usize,
    /// Absolute offset of expert 0's slab in that part.
    pub data_start: u64,
    /// Bytes of one expert's slab.
    pub slab_bytes: u64,
    pub ty: GgmlType,
    /// Columns and rows of one expert's matrix.
    pub cols: usize,
    pub rows: usize,
}

impl SlabTensor {
    /// `(part, offset, len)` of expert `e`'s slab.
    pub fn range(&self, e: u32) -> (usize, u64, u64) {
        (
            self.part,
            self.data_start + e as u64 * self.slab_bytes,
            self.slab_bytes,
        )
    }
}

/// How a layer stores its gate and up projections.
#[derive(Clone, Debug, PartialEq)]
pub enum GateUp {
    Separate {
        gate: SlabTensor,
        up: SlabTensor,
    },
    /// One slab of `2·n_ff_exp` rows: gate rows first, then up rows.
    Fused(SlabTensor),
}

/// The expert tensors of one MoE layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSlabs {
    pub gate_up: GateUp,
    pub down: SlabTensor,
}

impl LayerSlabs {
    /// The tensors read for one expert, in read order: `[gate, up, down]` or
    /// `[gate_up, down]`.
    pub fn tensors(&self) -> Vec<&SlabTensor> {
        match &self.gate_up {
            GateUp::Separate { gate, up } => vec![gate, up, &self.down],
            GateUp::Fused(gu) => vec![gu, &self.down],
        }
    }

    /// Bytes of one expert of this layer (all its slabs).
    pub fn expert_bytes(&self) -> u64 {
        self.tensors().iter().map(|t| t.slab_bytes).sum()
    }
}

/// The routed experts of a whole model.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpertLayout {
    /// `layers[l]` is `None` for dense layers.
    pub layers: Vec<Option<LayerSlabs>>,
    pub n_expert: usize,
    /// Experts each token uses per layer.
    pub k_used: usize,
}

impl ExpertLayout {
    /// The expert slabs of a `deepseek2` model; a model without routed experts (a dense
    /// `llama`, or a `deepseek2` with no experts) has no MoE layers.
    pub fn from_model(gguf: &GgufModel) -> Result<ExpertLayout> {
        let cfg = Config::from_metadata(gguf.metadata())?;
        Self::from_config(gguf, &cfg)
    }

    /// As [`ExpertLayout::from_model`], with the config already parsed.
    pub fn from_config(gguf: &GgufModel, cfg: &Config) -> Result<ExpertLayout> {
        let mut layout = ExpertLayout {
            layers: vec![None; cfg.n_layer],
            n_expert: 0,
            k_used: 0,
        };
        let Some(ds) = cfg
            .deepseek
            .as_ref()
            .filter(|_| cfg.arch == Arch::DeepSeek2)
        else {
            return Ok(layout);
        };
        if ds.n_expert == 0 || ds.n_expert_used == 0 {
            return Ok(layout);
        }
        layout.n_expert = ds.n_expert;
        layout.k_used = ds.n_expert_used;
        let (ne, ff, embd) = (ds.n_expert as u64, ds.n_ff_exp, cfg.n_embd);
        for l in ds.n_dense..cfg.n_layer {
            let name = |s: &str| format!("blk.{l}.{s}.weight");
            let slab = |s: &str, cols: usize, rows: usize| -> Result<SlabTensor> {
                let n = name(s);
                let t = gguf
                    .tensor(&n)
                    .ok_or_else(|| Error::model(format!("required tensor {n} is missing")))?;
                slab_tensor(t, cols, rows, ne)
            };
            let gate_up = if gguf.tensor(&name("ffn_gate_up_exps")).is_some() {
                GateUp::Fused(slab("ffn_gate_up_exps", embd, 2 * ff)?)
            } else {
                GateUp::Separate {
                    gate: slab("ffn_gate_exps", embd, ff)?,
                    up: slab("ffn_up_exps", embd, ff)?,
                }
            };
            layout.layers[l] = Some(LayerSlabs {
                gate_up,
                down: slab("ffn_down_exps", ff, embd)?,
            });
        }
        Ok(layout)
    }

    /// The slabs of MoE layer `l`, or an error naming it when it has no routed experts.
    pub fn layer(&self, l: usize) -> Result<&LayerSlabs> {
        self.layers
            .get(l)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::model(format!("layer {l} has no routed experts")))
    }

    /// Bytes of expert `e` of layer `l` (0 for dense layers).
    pub fn expert_bytes(&self, l: usize) -> u64 {
        self.layer(l).map_or(0, LayerSlabs::expert_bytes)
    }

    /// Bytes of every routed expert of the model.
    pub fn total_bytes(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(|l| l.expert_bytes() * self.n_expert as u64)
            .sum()
    }

    /// The largest single expert.
    pub fn max_expert_bytes(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(LayerSlabs::expert_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Whether the model has routed experts at all.
    pub fn has_experts(&self) -> bool {
        self.layers.iter().any(Option::is_some)
    }
}

/// Checks `t` is `[cols, rows, n_expert]` and computes its slab size.
fn slab_tensor(t: &ModelTensor, cols: usize, rows: usize, n_expert: u64) -> Result<SlabTensor> {
    let want = [cols as u64, rows as u64, n_expert, 1];
    if (0..4).any(|i| t.info.ne(i) != want[i]) {
        return Err(Error::model(format!(
            "tensor {} has shape {:?}, expected {:?}",
            t.name(),
            t.info.dims,
            &want[..3]
        )));
    }
    let unusable = || {
        Error::Unsupported(format!(
            "tensor {} has type {}, which sluice cannot compute with",
            t.name(),
            t.info.ty
        ))
    };
    if t.info.ty.info().and_then(|i| i.dequant).is_none() {
        return Err(unusable());
    }
    let row = t.info.ty.row_bytes(cols as u64).ok_or_else(unusable)?;
    let slab_bytes = row * rows as u64;
    if t.info.nbytes() != Some(slab_bytes * n_expert) {
        return Err(Error::model(format!(
            "tensor {}: {:?} bytes, {} experts of {slab_bytes} expected",
            t.name(),
            t.info.nbytes(),
            n_expert
        )));
    }
    Ok(SlabTensor {
        name: t.name().to_string(),
        part: t.part,
        data_start: t.data_start,
        slab_bytes,
        ty: t.info.ty,
        cols,
        rows,
    })
}
