"""Benchmark models for `sluice bench` / tests/bench/compare.sh (written to a cache, never committed).

What: a "DeepSeek-V3 slice" - a deepseek2 GGUF with DeepSeek-V3's real per-layer dimensions
(hidden 7168, 128 heads, q_lora 1536, kv_lora 512, rope 64, nope 128, v 128, dense FFN 18432,
expert FFN 2048, 8 experts used, 8 expert groups / 4 used, 1 shared expert, sigmoid gating with
exp_probs_b, YaRN x40) but only 3 layers (1 dense + 2 MoE) and 64 routed experts instead of 256,
so it fits on a laptop while every matrix has the real shape. Random weights, quantized the way
Unsloth's dynamic DeepSeek quants are mixed (experts at ~2 bits, ffn_down_exps Q3_K, attention
Q4_K, kv_a Q6_K, k_b Q8_0, shared expert Q6_K), in two variants:

  * `v3slice-UD-IQ2_XXS` - routed gate/up experts IQ2_XXS (needs an importance matrix, made with
    llama-imatrix over tests/fixtures/text/river-notes.txt);
  * `v3slice-Q2_K`       - routed gate/up experts Q2_K (no imatrix).

Vocabulary: the tiny fixture vocabulary (448 tokens of the real DeepSeek-V3 BPE, from
tests/gen/data/tiny-vocab.json), so the lm head is negligible and the decode cost is the
layers' cost. A real-vocab model would add one 129280 x 7168 Q6_K matrix (~0.76 GB) per token.

How: the model description (tensor list, init kinds, metadata) is the fixture generator's
(tiny_deepseek.py, ModelConfig); only the writing differs: tensors are generated lazily, one
expert slab at a time from per-tensor seeds, and written as F16 (the quantization source,
~12.6 GB), which is deleted after quantizing unless --keep-f16.

usage: python3 tests/gen/bench_models.py [--out DIR] [--variants iq2_xxs,q2_k] [--keep-f16]
Prints the paths of the quantized models. Re-running reuses finished files.
Default DIR: ${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/bench-models
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

GEN_DIR = Path(__file__).resolve().parent
REPO = GEN_DIR.parents[1]
REF_SCRIPT = REPO / "tests" / "reference" / "llama-cpp.sh"
CACHE = Path(os.environ.get("SLUICE_REF_DIR", Path.home() / ".cache" / "sluice-ref"))
THREADS = 2
STEM = "v3slice"

# Unsloth-style mix: first matching pattern wins (llama-quantize's rule); the base type of each
# variant covers what no pattern names (the routed gate/up experts).
MIX_RULES = [
    ("attn_kv_a_mqa", "q6_k"),
    ("attn_k_b", "q8_0"),  # ne0 = 128: only 32-element block types fit
    ("attn_", "q4_k"),
    ("_shexp", "q6_k"),
    ("ffn_down_exps", "q3_k"),
    (r"blk\.0\.ffn_", "q4_k"),  # the dense FFN layer
]
OUTPUT_TYPE, EMBED_TYPE = "q6_k", "q4_k"
VARIANTS = {"iq2_xxs": ("UD-IQ2_XXS", "IQ2_XXS", True), "q2_k": ("Q2_K", "Q2_K", False)}


def run(cmd: list, log: Path) -> str:
    print("+ " + " ".join(map(str, cmd)), file=sys.stderr)
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace")
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"command failed (log {log}):\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def setup_imports() -> None:
    gguf_py = subprocess.run(["bash", str(REF_SCRIPT), "--gguf-py"], check=True,
                             capture_output=True, text=True).stdout.strip()
    sys.path.insert(0, gguf_py)
    sys.path.insert(0, str(GEN_DIR))


def slice_config():
    from tiny_deepseek import ModelConfig, RopeYarn

    return ModelConfig(
        name="deepseek-v3-slice", seed=7001, mla=True,
        n_embd=7168, n_head=128, q_lora=1536, kv_lora=512, d_nope=128, d_rope=64, d_v=128,
        n_layer=3, n_dense=1, n_ff=18432, n_ff_exp=2048, n_expert=64, n_expert_used=8,
        n_group=8, n_group_used=4, n_shared=1, gating=2, context_length=163840,
        yarn=RopeYarn(factor=40.0, original_context_length=4096, mscale_all_dim=1.0),
        lm_head_bigram=0.0,
    )


class LazyTensor:
    """A tensor GGUFWriter writes with `tofile`, generated slab by slab (leading axis) so that
    no more than one expert's matrix is in memory. Same init kinds and scales as
    tiny_deepseek.make_weights; each tensor has its own seed, so order does not matter."""

    def __init__(self, shape: tuple[int, ...], kind: str, seed: int, cfg, as_f16: bool):
        self.shape = shape
        self.kind = kind
        self.seed = seed
        self.cfg = cfg
        self.dtype = np.dtype(np.float16 if as_f16 else np.float32)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize

    def _scale(self) -> tuple[float, float]:
        """(mean, standard deviation) of the kind, as in tiny_deepseek.make_weights."""
        cfg, fan_in = self.cfg, self.shape[-1]
        return {
            "embed": (0.0, 1.0),
            "norm": (1.0, 0.1),
            "linear": (0.0, 1.0 / np.sqrt(fan_in)),
            "k_b": (0.0, 1.0 / np.sqrt(fan_in)),
            "v_b": (0.0, 1.0 / np.sqrt(fan_in)),
            "residual": (0.0, cfg.residual_gain / np.sqrt(fan_in)),
            "router": (0.0, cfg.router_gain / np.sqrt(fan_in)),
            "bias": (0.0, cfg.bias_scale),
            "lm_head": (0.0, cfg.lm_head_gain / np.sqrt(fan_in)),
        }[self.kind]

    def tofile(self, fout) -> None:
        mean, std = self._scale()
        rng = np.random.default_rng(self.seed)
        slabs = self.shape[0] if len(self.shape) == 3 else 1
        slab_shape = self.shape[1:] if len(self.shape) == 3 else self.shape
        for _ in range(slabs):
            x = rng.standard_normal(slab_shape, dtype=np.float32)
            x *= np.float32(std)
            x += np.float32(mean)
            x.astype(self.dtype).tofile(fout)


def write_f16(path: Path, cfg, vocab) -> None:
    import gguf
    from tiny_deepseek import ARCH, FLOAT_FTYPES, _add_metadata, _is_float32_only, _tensor_specs

    tmp = path.with_suffix(".part")
    writer = gguf.GGUFWriter(str(tmp), ARCH, use_temp_file=False)
    _add_metadata(writer, cfg, vocab, FLOAT_FTYPES["F16"])
    for i, (name, shape, kind) in enumerate(_tensor_specs(cfg, len(vocab.tokens))):
        as_f16 = not _is_float32_only(name, np.empty((0,) * len(shape)))
        writer.add_tensor(name, LazyTensor(shape, kind, cfg.seed * 1000 + i, cfg, as_f16))
    print(f"writing {path} (F16, ~{sum(t.nbytes for t in writer.tensors[0].values()) / 1e9:.1f} GB)",
          file=sys.stderr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CACHE / "bench-models")
    parser.add_argument("--variants", default="iq2_xxs,q2_k",
                        help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--keep-f16", action="store_true", help="keep the F16 source model")
    parser.add_argument("--vocab", type=Path, default=GEN_DIR / "data" / "tiny-vocab.json")
    parser.add_argument("--text", type=Path,
                        default=REPO / "tests" / "fixtures" / "text" / "river-notes.txt",
                        help="text for llama-imatrix")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")

    setup_imports()
    from tiny_vocab import load_vocab

    args.out.mkdir(parents=True, exist_ok=True)
    outputs = {v: args.out / f"{STEM}-{VARIANTS[v][0]}.gguf" for v in variants}
    todo = [v for v in variants if not outputs[v].exists()]
    f16 = args.out / f"{STEM}-F16.gguf"
    if todo:
        bin_dir = Path(subprocess.run(["bash", str(REF_SCRIPT), "--bin"], check=True,
                                      capture_output=True, text=True).stdout.strip())
        cfg = slice_config()
        if not f16.exists():
            write_f16(f16, cfg, load_vocab(args.vocab))
        imatrix = args.out / f"{STEM}.imatrix.gguf"
        if any(VARIANTS[v][2] for v in todo) and not imatrix.exists():
            run([bin_dir / "llama-imatrix", "-m", f16, "-f", args.text, "-c", "512",
                 "--chunks", "4", "-t", THREADS, "--no-repack", "-o", imatrix],
                args.out / f"{STEM}.imatrix.log")
        rules: list[str] = []
        for pattern, qtype in MIX_RULES:
            rules += ["--tensor-type", f"{pattern}={qtype}"]
        rules += ["--output-tensor-type", OUTPUT_TYPE, "--token-embedding-type", EMBED_TYPE]
        for v in todo:
            _, base, needs_imatrix = VARIANTS[v]
            out = outputs[v]
            cmd = [bin_dir / "llama-quantize"]
            if needs_imatrix:
                cmd += ["--imatrix", imatrix]
            cmd += rules + [f16, out.with_suffix(".part"), base, THREADS]
            run(cmd, args.out / f"{out.stem}.quantize.log")
            out.with_suffix(".part").rename(out)
    if f16.exists() and not args.keep_f16:
        f16.unlink()
    for v in variants:
        print(outputs[v])


if __name__ == "__main__":
    main()
