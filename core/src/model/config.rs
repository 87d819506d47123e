//! Model hyper-parameters read from GGUF metadata, with llama.cpp's defaults and checks.
//!
//! Keys are read with exact types, as llama.cpp does (a `uint32` key stored as `int32` is an
//! error naming the key). The YaRN/RoPE context parameters and the attention scale are
//! resolved here once, following `llama-context.cpp` and `models/deepseek2.cpp`.

use crate::backend::{RopeMode, RopeParams};
use crate::gguf::{Metadata, Value, ValueType};
use crate::{Error, Result};

/// The architectures sluice runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    DeepSeek2,
}

impl Arch {
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::DeepSeek2 => "deepseek2",
        }
    }
}

/// How router logits become expert scores (`expert_gating_func`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gating {
    Softmax,
    Sigmoid,
    /// Raw logits; softmax over the selected experts' weights.
    SoftmaxWeight,
    SqrtSoftplus,
}

/// DeepSeek-V2/V3 specific hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepSeekConfig {
    /// 0 when the query has no LoRA (`attn_q`).
    pub q_lora: usize,
    pub kv_lora: usize,
    /// Per-head query/key length (`key_length_mla`, or `key_length` in legacy files).
    pub d_qk: usize,
    /// Per-head value length.
    pub d_v: usize,
    /// Rotary dims per head (`rope.dimension_count`).
    pub d_rope: usize,
    /// `d_qk − d_rope`.
    pub d_nope: usize,
    /// True for files with split `attn_k_b`/`attn_v_b` (the `*_mla` keys are set).
    pub mla: bool,
    pub n_dense: usize,
    pub n_expert: usize,
    pub n_expert_used: usize,
    pub n_group: usize,
    pub n_group_used: usize,
    pub n_shared: usize,
    pub n_ff_exp: usize,
    pub weights_norm: bool,
    /// 0 or 1 mean "no scaling".
    pub weights_scale: f32,
    pub gating: Gating,
}

/// What a forward pass needs to know about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub name: Option<String>,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Key/value length per head of the attention as cached (llama: head dim; MLA: the
    /// latent "MQA view" kv_lora + rope and kv_lora).
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Dense FFN width (layers below `n_dense` for deepseek2, all layers for llama).
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope: RopeParams,
    /// Attention score multiplier.
    pub kq_scale: f32,
    pub deepseek: Option<DeepSeekConfig>,
}

struct Keys<'a> {
    md: &'a Metadata,
    arch: &'static str,
}

impl Keys<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    fn u32_opt(&self, k: &str) -> Result<Option<usize>> {
        Ok(self.md.get_u32(&self.key(k))?.map(|v| v as usize))
    }

    fn u32_req(&self, k: &str) -> Result<usize> {
        self.u32_opt(k)?.ok_or_else(|| missing(&self.key(k)))
    }

    fn f32_opt(&self, k: &str) -> Result<Option<f32>> {
        self.md.get_f32(&self.key(k))
    }

    fn bool_opt(&self, k: &str) -> Result<Option<bool>> {
        self.md.get_bool(&self.key(k))
    }

    /// A key that may be a scalar or a per-layer array (llama.cpp's `get_key_or_arr`): the
    /// value of layer 0, after checking an array has one entry per layer.
    fn u32_or_arr(&self, k: &str, n_layer: usize) -> Result<Option<usize>> {
        let key = self.key(k);
        match self.md.get(&key) {
            None => Ok(None),
            Some(Value::Array(ty, items)) => {
                if !matches!(ty, ValueType::U32 | ValueType::I32 | ValueType::Bool) {
                    return Err(Error::model(format!(
                        "metadata key {key}: array of {} not allowed",
                        ty.name()
                    )));
                }
                if items.len() != n_layer {
                    return Err(Error::model(format!(
                        "metadata key {key}: {} entries for {n_layer} layers",
                        items.len()
                    )));
                }
                let first = items.first().and_then(Value::as_integer).unwrap_or(0);
                usize::try_from(first)
                    .map(Some)
                    .map_err(|_| Error::model(format!("metadata key {key}: negative value")))
            }
            Some(_) => self.u32_opt(k),
        }
    }
}

fn missing(key: &str) -> Error {
    Error::model(format!("required metadata key {key} is missing"))
}

fn invalid(key: &str, msg: impl std::fmt::Display) -> Error {
    Error::model(format!("metadata key {key}: {msg}"))
}

impl Config {
    /// Reads the config of a `llama` or `deepseek2` model.
    pub fn from_metadata(md: &Metadata) -> Result<Config> {
        let arch_name = md
            .get_str("general.architecture")?
            .ok_or_else(|| missing("general.architecture"))?;
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "deepseek2" => Arch::DeepSeek2,
            other => {
                return Err(Error::Unsupported(format!(
                    "architecture {other:?} (sluice runs deepseek2 and llama)"
                )))
            }
        };
        let k = Keys {
            md,
            arch: arch.gguf_name(),
        };
        let n_embd = k.u32_req("embedding_length")?;
        let block_count = k.u32_req("block_count")?;
        if block_count == 0 || block_count > 512 {
            return Err(invalid(
                &k.key("block_count"),
                format!("{block_count} is outside 1..=512"),
            ));
        }
        let n_nextn = k.u32_opt("nextn_predict_layers")?.unwrap_or(0);
        if n_nextn >= block_count {
            return Err(invalid(
                &k.key("nextn_predict_layers"),
                "must be below block_count",
            ));
        }
        let n_layer = block_count - n_nextn;
        let n_ctx_train = k.u32_req("context_length")?;
        let n_head = k
            .u32_or_arr("attention.head_count", block_count)?
            .unwrap_or(0);
        if n_head == 0 {
            return Err(missing(&k.key("attention.head_count")));
        }
        let n_head_kv = k
            .u32_or_arr("attention.head_count_kv", block_count)?
            .unwrap_or(n_head);
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(invalid(
                &k.key("attention.head_count_kv"),
                format!("{n_head_kv} does not divide {n_head} heads"),
            ));
        }
        let head_dim_k = k
            .u32_opt("attention.key_length")?
            .unwrap_or(n_embd / n_head);
        let head_dim_v = k
            .u32_opt("attention.value_length")?
            .unwrap_or(n_embd / n_head);
        let n_rot = k.u32_opt("rope.dimension_count")?.unwrap_or(head_dim_k);
        let n_ff = k
            .u32_or_arr("feed_forward_length", block_count)?
            .unwrap_or(0);
        let rms_eps = k
            .f32_opt("attention.layer_norm_rms_epsilon")?
            .ok_or_else(|| missing(&k.key("attention.layer_norm_rms_epsilon")))?;

        let deepseek = match arch {
            Arch::DeepSeek2 => Some(deepseek_config(
                &k,
                md,
                block_count,
                n_layer,
                head_dim_k,
                head_dim_v,
                n_rot,
            )?),
            Arch::Llama => None,
        };
        if n_rot == 0 || n_rot % 2 != 0 || n_rot > head_dim_k {
            return Err(invalid(
                &k.key("rope.dimension_count"),
                format!("{n_rot} rotary dims do not fit the heads"),
            ));
        }
        let (rope, kq_scale) =
            rope_and_scale(&k, arch, n_rot, n_ctx_train, head_dim_k, deepseek.as_ref())?;
        Ok(Config {
            arch,
            name: md.get_str("general.name")?.map(str::to_string),
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ff,
            n_ctx_train,
            rms_eps,
            rope,
            kq_scale,
            deepseek,
        })
    }
}

fn deepseek_config(
    k: &Keys,
    md: &Metadata,
    block_count: usize,
    n_layer: usize,
    key_length: usize,
    value_length: usize,
    n_rot: usize,
) -> Result<DeepSeekConfig> {
    let n_vocab = match k.u32_opt("vocab_size")? {
        Some(v) => v,
        None => md
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .map(|(_, a)| a.len())
            .unwrap_or(0),
    };
    let lite = n_layer == 27 || n_layer == 26 || (n_layer == 48 && n_vocab == 128256);
    let q_lora = match k.u32_opt("attention.q_lora_rank")? {
        Some(v) => v,
        None if lite => 0,
        None => return Err(missing(&k.key("attention.q_lora_rank"))),
    };
    let kv_lora = k.u32_req("attention.kv_lora_rank")?;
    let k_mla = k.u32_opt("attention.key_length_mla")?.unwrap_or(0);
    let v_mla = k.u32_opt("attention.value_length_mla")?.unwrap_or(0);
    let mla = k_mla != 0 && v_mla != 0;
    let (d_qk, d_v) = if mla {
        (k_mla, v_mla)
    } else {
        (key_length, value_length)
    };
    if n_rot >= d_qk {
        return Err(invalid(
            &k.key("rope.dimension_count"),
            format!("{n_rot} leaves no non-rotary dims in {d_qk}"),
        ));
    }
    let n_expert = k.u32_opt("expert_count")?.unwrap_or(0);
    let n_expert_used = k.u32_or_arr("expert_used_count", block_count)?.unwrap_or(0);
    let n_group = k.u32_opt("expert_group_count")?.unwrap_or(0);
    let n_group_used = k.u32_opt("expert_group_used_count")?.unwrap_or(0);
    if n_expert > 1024 {
        return Err(invalid(
            &k.key("expert_count"),
            format!("{n_expert} experts (at most 1024)"),
        ));
    }
    if n_expert_used > n_expert {
        return Err(invalid(
            &k.key("expert_used_count"),
            format!("{n_expert_used} exceeds {n_expert} experts"),
        ));
    }
    if n_expert > 0 && (n_expert_used == 0 || n_group >= n_expert) {
        return Err(invalid(
            &k.key("expert_used_count"),
            "must be > 0 and expert_group_count < expert_count",
        ));
    }
    if n_group > 1 && (n_expert % n_group != 0 || n_group_used == 0 || n_group_used >= n_group) {
        return Err(invalid(
            &k.key("expert_group_count"),
            format!("{n_group} groups / {n_group_used} used do not fit {n_expert} experts"),
        ));
    }
    let gating = match k.u32_opt("expert_gating_func")?.unwrap_or(0) {
        0 if (n_layer == 47 || n_layer == 48) && n_vocab == 154880 => Gating::Sigmoid,
        0 | 1 => Gating::Softmax,
        2 => Gating::Sigmoid,
        3 => Gating::SoftmaxWeight,
        4 => Gating::SqrtSoftplus,
        v => {
            return Err(invalid(
                &k.key("expert_gating_func"),
                format!("unknown gating function {v}"),
            ))
        }
    };
    Ok(DeepSeekConfig {
        q_lora,
        kv_lora,
        d_qk,
        d_v,
        d_rope: n_rot,
        d_nope: d_qk - n_rot,
        mla,
        n_dense: k.u32_opt("leading_dense_block_count")?.unwrap_or(0),
        n_expert,
        n_expert_used,
        n_group,
        n_group_used,
        n_shared: k.u32_req("expert_shared_count")?,
        n_ff_exp: k
            .u32_or_arr("expert_feed_forward_length", block_count)?
            .ok_or_else(|| missing(&k.key("expert_feed_forward_length")))?,
        weights_norm: k.bool_opt("expert_weights_norm")?.unwrap_or(false),
        weights_scale: k.f32_opt("expert_weights_scale")?.unwrap_or(0.0),
        gating,
    })
}

/// YaRN's correction range `[low, high]` in rotary pair indices (ggml_rope_yarn_corr_dims).
pub fn yarn_corr_dims(
    n_rot: usize,
    n_ctx_orig: usize,
    base: f32,
    beta_fast: f32,
    beta_slow: f32,
) -> [f32; 2] {
    let corr = |beta: f32| {
        n_rot as f32 * (n_ctx_orig as f32 / (beta * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    let low = corr(beta_fast).floor().max(0.0);
    let high = corr(beta_slow).ceil().min(n_rot as f32 - 1.0);
    [low, high]
}

fn rope_and_scale(
    k: &Keys,
    arch: Arch,
    n_rot: usize,
    n_ctx_train: usize,
    head_dim_k: usize,
    ds: Option<&DeepSeekConfig>,
) -> Result<(RopeParams, f32)> {
    let freq_base = k.f32_opt("rope.freq_base")?.unwrap_or(10000.0);
    let scaling =
        k.md.get_str(&k.key("rope.scaling.type"))?
            .unwrap_or("linear");
    let yarn = match scaling {
        "none" | "linear" => false,
        "yarn" => true,
        "longrope" => return Err(Error::Unsupported("rope scaling type longrope".into())),
        other => {
            return Err(invalid(
                &k.key("rope.scaling.type"),
                format!("unknown value {other:?}"),
            ))
        }
    };
    let factor = match k.f32_opt("rope.scaling.factor")? {
        Some(f) => Some(f),
        None => k.f32_opt("rope.scale_linear")?,
    };
    let mut freq_scale = match factor {
        Some(f) if f != 0.0 => 1.0 / f,
        _ => 1.0,
    };
    if scaling == "none" {
        freq_scale = 1.0;
    }
    let n_ctx_orig = k
        .u32_opt("rope.scaling.original_context_length")?
        .unwrap_or(n_ctx_train);
    let file_attn_factor = k.f32_opt("rope.scaling.attn_factor")?.unwrap_or(1.0);
    // Stored as 0.1 · mscale_all_dim by the converter; deepseek2 divides it back.
    let yarn_log_mul = match (arch, k.f32_opt("rope.scaling.yarn_log_multiplier")?) {
        (Arch::DeepSeek2, Some(v)) => v / 0.1,
        (_, Some(v)) => v,
        (_, None) => 0.0,
    };
    let ext_factor = if yarn { 1.0f32 } else { 0.0 };
    let mut attn_factor = 1.0f32;
    if ext_factor != 0.0 {
        let get_mscale = |scale: f32, m: f32| {
            if scale <= 1.0 {
                1.0
            } else {
                0.1 * m * scale.ln() + 1.0
            }
        };
        let factor = 1.0 / freq_scale;
        attn_factor = if yarn_log_mul != 0.0 {
            let m = if arch == Arch::DeepSeek2 && yarn_log_mul != 1.0 {
                yarn_log_mul
            } else {
                1.0
            };
            get_mscale(factor, m) / get_mscale(factor, yarn_log_mul)
        } else {
            get_mscale(factor, 1.0)
        };
        attn_factor *= 1.0 / (1.0 + 0.1 * factor.ln());
    }
    attn_factor *= file_attn_factor;
    let rope = RopeParams {
        mode: RopeMode::Norm,
        n_rot,
        freq_base,
        freq_scale,
        ext_factor,
        attn_factor,
        corr_dims: yarn_corr_dims(n_rot, n_ctx_orig, freq_base, 32.0, 1.0),
    };
    let kq_scale = match ds {
        Some(ds) => {
            let attn_factor_org = attn_factor * (1.0 + 0.1 * (1.0 / freq_scale).ln());
            let mscale = attn_factor_org * (1.0 + 0.1 * yarn_log_mul * (1.0 / freq_scale).ln());
            mscale * mscale / (ds.d_qk as f32).sqrt()
        }
        None => match k.f32_opt("attention.scale")? {
            Some(s) if s != 0.0 => s,
            _ => 1.0 / (head_dim_k as f32).sqrt(),
        },
    };
    Ok((rope, kq_scale))
}
