"""Tiny random-weight DeepSeek-V3-shaped ("deepseek2") GGUF models, written with gguf-py.

What: three model configurations covering the layouts llama.cpp accepts for `deepseek2`
(see docs deepseek2-gguf.md §2-§4):
  * `mla`    - new MLA layout (attn_k_b / attn_v_b, *_mla keys, head_count_kv = 1) with q-LoRA,
               sigmoid gating, exp_probs_b, expert groups, normalized and scaled expert weights,
               YaRN, one leading dense layer and a shared expert: the DeepSeek-V3/R1 shape.
  * `legacy` - the old layout (one attn_kv_b per layer, no *_mla keys, head_count_kv = n_head),
               as in the first DeepSeek-V3 conversions.
  * `lite`   - DeepSeek-V2-Lite style: no q-LoRA (attn_q; q_lora_rank = 0 is written because the
               loader requires the key unless the layer count is 26/27), softmax gating from an
               absent expert_gating_func key, no bias, no groups, no rope scaling.
Every ne0 of a quantizable matrix is a multiple of 256 (except attn_k_b, whose ne0 is the
nope head size, as in real files), so every k-quant and i-quant applies.

Why: the forward-pass parity tests need files llama.cpp loads and runs, small enough to commit
in every quantization. Weights are drawn from a fixed-seed numpy generator, so the float files
are bit-identical on every machine (`make_fixtures.py --float-only` rebuilds them).

Conditioning: random networks are chaotic, and quantized ones amplify tiny differences (a
slightly different activation flips the rounding of some of its 8-bit quantized values), so
llama.cpp's own flash-attention-on and -off paths already differ by about one logit on the
quantized fixtures. The init below keeps greedy decoding away from near-ties anyway:
  * residual branches are damped (residual_gain) so the token embedding dominates the stream;
  * the lm head has a large random part (lm_head_gain: logits of standard deviation ~24) plus a
    "bigram" part (lm_head_bigram): the output row of succ(j) points along token j's embedding,
    with succ one random cycle through the vocabulary; the successor of the current token then
    usually wins by several standard deviations, and the context decides the rest (~5-10% of
    steps on the fixed prompt);
  * router logits of a few units and exp_probs_b of the same size as the sigmoid-score
    differences, so the bias and the group limit change the chosen experts for many tokens.
The numbers behind these choices (gaps, noise floors, routing margins) are in the goldens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiny_vocab import TinyVocab

ARCH = "deepseek2"


@dataclass(frozen=True)
class RopeYarn:
    factor: float
    original_context_length: int
    mscale_all_dim: float  # stored as 0.1 * mscale_all_dim (the converter's legacy quirk)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    seed: int
    mla: bool
    n_embd: int = 256
    n_head: int = 4
    q_lora: int = 256  # 0: attn_q instead of attn_q_a / attn_q_b
    kv_lora: int = 256
    d_nope: int = 64
    d_rope: int = 32
    d_v: int = 64
    n_layer: int = 2
    n_dense: int = 1
    n_ff: int = 256  # dense FFN width
    n_ff_exp: int = 256
    n_expert: int = 6
    n_expert_used: int = 2
    n_group: int = 0  # 0: keys absent
    n_group_used: int = 0
    n_shared: int = 1
    gating: int | None = 2  # None: key absent (loader falls back to softmax)
    exp_probs_bias: bool = True
    weights_norm: bool = True
    weights_scale: float | None = 2.5  # None: key absent
    context_length: int = 16384
    rope_base: float = 10000.0
    yarn: RopeYarn | None = None
    rms_eps: float = 1e-6
    # init gains (see "Conditioning" above)
    residual_gain: float = 0.35
    router_gain: float = 2.0
    bias_scale: float = 0.15
    lm_head_gain: float = 24.0
    tied_output: bool = False  # no output.weight: llama.cpp reuses token_embd as the lm head
    # "bigram" boost of the lm head, in units of the random logit scale: the output row of token
    # succ(j) gets a component along token j's embedding, so the token after j usually wins
    # by a wide margin (see "Conditioning")
    lm_head_bigram: float = 6.5
    notes: tuple[str, ...] = field(default=())

    @property
    def d_qk(self) -> int:
        return self.d_nope + self.d_rope


CONFIGS: dict[str, ModelConfig] = {
    "mla": ModelConfig(
        name="tiny-deepseek-v3-mla", seed=1001, mla=True, d_nope=32, d_rope=32,
        n_group=3, n_group_used=2,
        yarn=RopeYarn(factor=4.0, original_context_length=4096, mscale_all_dim=1.0),
    ),
    "legacy": ModelConfig(
        name="tiny-deepseek-v3-legacy", seed=2002, mla=False,
        d_nope=32, d_rope=32, d_v=64, n_dense=0, n_layer=1, n_expert=4, n_expert_used=2,
        yarn=RopeYarn(factor=8.0, original_context_length=2048, mscale_all_dim=0.707),
    ),
    "lite": ModelConfig(
        name="tiny-deepseek-v2-lite", seed=3003, mla=True, q_lora=0,
        d_nope=64, d_rope=32, d_v=64, n_dense=0, n_layer=1, n_expert=4, n_expert_used=2,
        gating=None, exp_probs_bias=False, weights_norm=False, weights_scale=None,
        context_length=4096,
    ),
}

# general.file_type values (llama_ftype) of the float files
FLOAT_FTYPES = {"F32": 0, "F16": 1, "BF16": 32}


def _tensor_specs(cfg: ModelConfig, n_vocab: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape = reversed ggml ne, init kind) in file order."""
    e, h = cfg.n_embd, cfg.n_head
    embed_kind = "lm_head" if cfg.tied_output else "embed"
    specs: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (n_vocab, e), embed_kind)]
    for i in range(cfg.n_layer):
        p = f"blk.{i}."
        specs.append((p + "attn_norm.weight", (e,), "norm"))
        if cfg.q_lora > 0:
            specs.append((p + "attn_q_a_norm.weight", (cfg.q_lora,), "norm"))
        specs.append((p + "attn_kv_a_norm.weight", (cfg.kv_lora,), "norm"))
        if cfg.q_lora > 0:
            specs.append((p + "attn_q_a.weight", (cfg.q_lora, e), "linear"))
            specs.append((p + "attn_q_b.weight", (h * cfg.d_qk, cfg.q_lora), "linear"))
        else:
            specs.append((p + "attn_q.weight", (h * cfg.d_qk, e), "linear"))
        specs.append((p + "attn_kv_a_mqa.weight", (cfg.kv_lora + cfg.d_rope, e), "linear"))
        if cfg.mla:
            specs.append((p + "attn_k_b.weight", (h, cfg.kv_lora, cfg.d_nope), "k_b"))
            specs.append((p + "attn_v_b.weight", (h, cfg.d_v, cfg.kv_lora), "v_b"))
        else:
            specs.append((p + "attn_kv_b.weight", (h * (cfg.d_nope + cfg.d_v), cfg.kv_lora), "linear"))
        specs.append((p + "attn_output.weight", (e, h * cfg.d_v), "residual"))
        specs.append((p + "ffn_norm.weight", (e,), "norm"))
        if i < cfg.n_dense:
            specs.append((p + "ffn_gate.weight", (cfg.n_ff, e), "linear"))
            specs.append((p + "ffn_down.weight", (e, cfg.n_ff), "residual"))
            specs.append((p + "ffn_up.weight", (cfg.n_ff, e), "linear"))
        else:
            x, f = cfg.n_expert, cfg.n_ff_exp
            specs.append((p + "ffn_gate_inp.weight", (x, e), "router"))
            if cfg.exp_probs_bias:
                specs.append((p + "exp_probs_b.bias", (x,), "bias"))
            specs.append((p + "ffn_gate_exps.weight", (x, f, e), "linear"))
            specs.append((p + "ffn_down_exps.weight", (x, e, f), "residual"))
            specs.append((p + "ffn_up_exps.weight", (x, f, e), "linear"))
            s = f * cfg.n_shared
            specs.append((p + "ffn_gate_shexp.weight", (s, e), "linear"))
            specs.append((p + "ffn_down_shexp.weight", (e, s), "residual"))
            specs.append((p + "ffn_up_shexp.weight", (s, e), "linear"))
    specs.append(("output_norm.weight", (e,), "norm"))
    if not cfg.tied_output:
        specs.append(("output.weight", (n_vocab, e), "lm_head"))
    return specs


def make_weights(cfg: ModelConfig, n_vocab: int) -> dict[str, np.ndarray]:
    """Deterministic f32 weights; insertion order is the file order."""
    rng = np.random.default_rng(cfg.seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape, kind in _tensor_specs(cfg, n_vocab):
        fan_in = shape[-1]
        if kind == "embed":
            w = rng.standard_normal(shape)
        elif kind == "norm":
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        elif kind == "linear":
            w = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif kind == "k_b":
            # per head: kv_lora rows of d_nope; the absorbed query is q_nope @ k_b^T
            w = rng.standard_normal(shape) / np.sqrt(shape[-1])
        elif kind == "v_b":
            w = rng.standard_normal(shape) / np.sqrt(shape[-1])
        elif kind == "residual":
            w = cfg.residual_gain * rng.standard_normal(shape) / np.sqrt(fan_in)
        elif kind == "router":
            w = cfg.router_gain * rng.standard_normal(shape) / np.sqrt(fan_in)
        elif kind == "bias":
            w = cfg.bias_scale * rng.standard_normal(shape)
        elif kind == "lm_head":
            w = cfg.lm_head_gain * rng.standard_normal(shape) / np.sqrt(fan_in)
        else:
            raise ValueError(kind)
        weights[name] = w.astype(np.float32)
    if cfg.lm_head_bigram:
        _add_bigram_boost(cfg, weights, np.random.default_rng(cfg.seed + 1))
    return weights


def _add_bigram_boost(cfg: ModelConfig, weights: dict[str, np.ndarray], rng) -> None:
    embed = weights["token_embd.weight"].astype(np.float64)
    head = weights["output.weight"].astype(np.float64)
    # one cycle through the whole vocabulary, so greedy chains never loop early
    order = rng.permutation(embed.shape[0])
    successor = np.empty_like(order)
    successor[order] = np.roll(order, -1)
    unit = embed / np.linalg.norm(embed, axis=1, keepdims=True)
    # a unit-norm final hidden state of rms 1 has norm sqrt(n_embd); the random part of the
    # head gives logits of standard deviation lm_head_gain
    scale = cfg.lm_head_bigram * cfg.lm_head_gain / np.sqrt(cfg.n_embd)
    head[successor] += scale * unit
    weights["output.weight"] = head.astype(np.float32)


def _is_float32_only(name: str, array: np.ndarray) -> bool:
    # what the converter keeps in F32 whatever the output type (deepseek2-gguf.md §3.5)
    return array.ndim == 1 or name.endswith("_norm.weight") or "ffn_gate_inp" in name \
        or not name.endswith(".weight")


def _add_metadata(writer, cfg: ModelConfig, vocab: TinyVocab, ftype: int) -> None:
    import gguf

    a = ARCH
    writer.add_string("general.name", cfg.name)
    writer.add_uint32(f"{a}.block_count", cfg.n_layer)
    writer.add_uint32(f"{a}.context_length", cfg.context_length)
    writer.add_uint32(f"{a}.embedding_length", cfg.n_embd)
    writer.add_uint32(f"{a}.feed_forward_length", cfg.n_ff)
    writer.add_uint32(f"{a}.attention.head_count", cfg.n_head)
    writer.add_uint32(f"{a}.attention.head_count_kv", 1 if cfg.mla else cfg.n_head)
    writer.add_float32(f"{a}.rope.freq_base", cfg.rope_base)
    writer.add_float32(f"{a}.attention.layer_norm_rms_epsilon", cfg.rms_eps)
    writer.add_uint32(f"{a}.expert_used_count", cfg.n_expert_used)
    if cfg.n_group:
        writer.add_uint32(f"{a}.expert_group_count", cfg.n_group)
        writer.add_uint32(f"{a}.expert_group_used_count", cfg.n_group_used)
    if cfg.gating is not None:
        writer.add_uint32(f"{a}.expert_gating_func", cfg.gating)
    writer.add_uint32("general.file_type", ftype)
    writer.add_uint32(f"{a}.leading_dense_block_count", cfg.n_dense)
    writer.add_uint32(f"{a}.vocab_size", len(vocab.tokens))
    writer.add_uint32(f"{a}.attention.q_lora_rank", cfg.q_lora)
    writer.add_uint32(f"{a}.attention.kv_lora_rank", cfg.kv_lora)
    if cfg.mla:
        writer.add_uint32(f"{a}.attention.key_length", cfg.kv_lora + cfg.d_rope)
        writer.add_uint32(f"{a}.attention.value_length", cfg.kv_lora)
        writer.add_uint32(f"{a}.attention.key_length_mla", cfg.d_qk)
        writer.add_uint32(f"{a}.attention.value_length_mla", cfg.d_v)
    else:
        writer.add_uint32(f"{a}.attention.key_length", cfg.d_qk)
        writer.add_uint32(f"{a}.attention.value_length", cfg.d_v)
    writer.add_uint32(f"{a}.expert_feed_forward_length", cfg.n_ff_exp)
    writer.add_uint32(f"{a}.expert_count", cfg.n_expert)
    writer.add_uint32(f"{a}.expert_shared_count", cfg.n_shared)
    if cfg.weights_scale is not None:
        writer.add_float32(f"{a}.expert_weights_scale", cfg.weights_scale)
    if cfg.weights_norm:
        writer.add_bool(f"{a}.expert_weights_norm", True)
    writer.add_uint32(f"{a}.rope.dimension_count", cfg.d_rope)
    if cfg.yarn is not None:
        writer.add_string(f"{a}.rope.scaling.type", "yarn")
        writer.add_float32(f"{a}.rope.scaling.factor", cfg.yarn.factor)
        writer.add_uint32(f"{a}.rope.scaling.original_context_length", cfg.yarn.original_context_length)
        # written by the converter from the HF config, not read by llama.cpp for deepseek2
        writer.add_float32(f"{a}.rope.scaling.yarn_beta_fast", 32.0)
        writer.add_float32(f"{a}.rope.scaling.yarn_beta_slow", 1.0)
        writer.add_float32(f"{a}.rope.scaling.yarn_log_multiplier", 0.1 * cfg.yarn.mscale_all_dim)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "deepseek-v3")
    writer.add_array("tokenizer.ggml.tokens", vocab.tokens)
    writer.add_array("tokenizer.ggml.token_type", vocab.token_types)
    writer.add_array("tokenizer.ggml.merges", vocab.merges)
    writer.add_uint32("tokenizer.ggml.bos_token_id", vocab.bos_id)
    writer.add_uint32("tokenizer.ggml.eos_token_id", vocab.eos_id)
    writer.add_uint32("tokenizer.ggml.padding_token_id", vocab.pad_id)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    writer.add_bool("tokenizer.ggml.add_eos_token", False)
    writer.add_string("tokenizer.chat_template", vocab.chat_template)
    writer.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)


def write_model(path: Path, cfg: ModelConfig, vocab: TinyVocab, float_type: str) -> None:
    """Writes the model with every big matrix in `float_type` (F32, F16 or BF16)."""
    import gguf

    weights = make_weights(cfg, len(vocab.tokens))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), ARCH, use_temp_file=False)
    # GGUFWriter adds general.architecture itself
    _add_metadata(writer, cfg, vocab, FLOAT_FTYPES[float_type])
    for name, array in weights.items():
        if float_type == "F32" or _is_float32_only(name, array):
            writer.add_tensor(name, array)
        elif float_type == "F16":
            writer.add_tensor(name, array.astype(np.float16))
        elif float_type == "BF16":
            packed = gguf.quants.quantize(array, gguf.GGMLQuantizationType.BF16)
            writer.add_tensor(name, packed, raw_shape=packed.shape,
                              raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            raise ValueError(float_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
