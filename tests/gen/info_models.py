#!/usr/bin/env python3
"""Tiny GGUF models made by llama.cpp's own tools, and gguf-py's view of them.

Writes into tests/fixtures/gguf/ (or the directory given as the first argument):

* tiny-F32.gguf: a 1-layer llama-architecture model (256-wide, 128-token SentencePiece-style
  vocabulary, random weights, seed 1234), written with gguf-py's GGUFWriter;
* tiny-<TYPE>.gguf: that model quantized by llama-quantize to Q8_0, Q4_K_M, Q2_K, IQ1_S, IQ1_M,
  IQ2_XXS, IQ3_XXS and IQ4_XS (the i-quants with an importance matrix from llama-imatrix), and
  tiny-mix.gguf with per-tensor --tensor-type overrides;
* tiny-Q4_K_M-0000N-of-00004.gguf: tiny-Q4_K_M.gguf split by llama-gguf-split (3 tensors per
  part), and tiny-Q4_K_M-merged.gguf: those parts merged back by llama-gguf-split --merge;
* golden/<file>.json: what gguf-py's gguf_dump.py --json says about each file (tensor names,
  types and shapes in ne order; metadata keys and types), reduced to what the tests compare.

Needs the reference llama.cpp (tests/reference/llama-cpp.sh --bin) and numpy==1.26.4.
Deterministic: fixed seed, one thread. Re-running rewrites the same bytes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
REF = REPO / "tests" / "reference" / "llama-cpp.sh"


def ref(mode: str) -> Path:
    out = subprocess.run([str(REF), mode], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


GGUF_PY = ref("--gguf-py")
BIN = ref("--bin")
sys.path.insert(0, str(GGUF_PY))
import gguf  # noqa: E402

N_EMBD, N_FF, N_VOCAB, HEAD_DIM = 256, 64, 128, 64
QUANTS = ["Q8_0", "Q4_K_M", "Q2_K", "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ3_XXS", "IQ4_XS"]
NEEDS_IMATRIX = {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ3_XXS"}
MIX = ["--tensor-type", "attn_q=q8_0", "--tensor-type", "attn_v=q6_k",
       "--tensor-type", "ffn_up=iq4_nl", "--tensor-type", "ffn_gate=q5_1"]
WORDS = ("the a of and to in is it that was for on are with as his they at be this from "
         "have or by one had not but what all were when we there can an your which their "
         "said if do will each about how up out them then she many some so these would other "
         "into has more her two like him see time could no make than first been its who now "
         "people my made over did down only way find use may water long little very after "
         "words called just where most know").split()


def run(*cmd: str, cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """<unk> <s> </s>, every character the corpus uses, then whole words and word starts."""
    tokens = ["<unk>", "<s>", "</s>", "\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    types = [2, 3, 3] + [1] * (len(tokens) - 3)
    for w in WORDS:
        if len(tokens) == N_VOCAB:
            break
        piece = "\u2581" + w
        if piece not in tokens:
            tokens.append(piece)
            types.append(1)
    while len(tokens) < N_VOCAB:  # fill with pairs of letters
        piece = "\u2581" + chr(ord("a") + len(tokens) % 26) + chr(ord("a") + len(tokens) // 26 % 26)
        tokens.append(piece if piece not in tokens else f"<extra_{len(tokens)}>")
        types.append(1)
    scores = [0.0, 0.0, 0.0] + [-float(i) for i in range(len(tokens) - 3)]
    return tokens, scores, types


def write_f32_model(path: Path) -> None:
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("sluice tiny info model")
    w.add_context_length(128)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(N_VOCAB)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens, scores, types = vocabulary()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def mat(n_out: int, n_in: int) -> np.ndarray:  # numpy [out, in] = ggml ne {in, out}
        return (rng.standard_normal((n_out, n_in)) * 0.05).astype(np.float32)

    ones = np.ones(N_EMBD, dtype=np.float32)
    w.add_tensor("token_embd.weight", mat(N_VOCAB, N_EMBD))
    w.add_tensor("blk.0.attn_norm.weight", ones)
    w.add_tensor("blk.0.attn_q.weight", mat(HEAD_DIM, N_EMBD))
    w.add_tensor("blk.0.attn_k.weight", mat(HEAD_DIM, N_EMBD))
    w.add_tensor("blk.0.attn_v.weight", mat(HEAD_DIM, N_EMBD))
    w.add_tensor("blk.0.attn_output.weight", mat(N_EMBD, HEAD_DIM))
    w.add_tensor("blk.0.ffn_norm.weight", ones)
    w.add_tensor("blk.0.ffn_gate.weight", mat(N_FF, N_EMBD))
    w.add_tensor("blk.0.ffn_up.weight", mat(N_FF, N_EMBD))
    w.add_tensor("blk.0.ffn_down.weight", mat(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", mat(N_VOCAB, N_EMBD))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def corpus(path: Path) -> None:
    rng = np.random.default_rng(99)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), 3000)]
    path.write_text(" ".join(words) + "\n")


def gguf_dump(path: Path) -> dict:
    """gguf_dump.py --json, reduced to the parts the Rust test compares."""
    out = subprocess.run(
        [sys.executable, str(GGUF_PY / "gguf" / "scripts" / "gguf_dump.py"), "--json", str(path)],
        check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(GGUF_PY)},
    )
    dump = json.loads(out.stdout)
    tensors = sorted(dump["tensors"].items(), key=lambda kv: kv[1]["index"])
    fields = sorted(dump["metadata"].items(), key=lambda kv: kv[1]["index"])
    # gguf-py lists the header as pseudo-keys "GGUF.version", "GGUF.tensor_count", ...
    header = {k: v["value"] for k, v in fields if k.startswith("GGUF.")}
    keys = [(k, v) for k, v in fields if not k.startswith("GGUF.")]
    assert header["GGUF.kv_count"] == len(keys) and header["GGUF.tensor_count"] == len(tensors)
    return {
        "file": path.name,
        "version": header["GGUF.version"],
        "metadata": [[k, v["type"]] + v.get("array_types", []) for k, v in keys],
        "tensors": [[name, t["type"], t["shape"]] for name, t in tensors],
    }


def golden_text(d: dict) -> str:
    """JSON with one metadata key or tensor per line, so diffs stay readable."""
    lines = ["{", f' "file": {json.dumps(d["file"])},', f' "version": {d["version"]},']
    for section, last in (("metadata", False), ("tensors", True)):
        rows = [" " + json.dumps(r) for r in d[section]]
        lines.append(f' "{section}": [')
        lines.append(",\n".join(" " + r for r in rows))
        lines.append(" ]" + ("" if last else ","))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "fixtures" / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    for old in out.glob("tiny-*.gguf"):
        old.unlink()
    f32 = out / "tiny-F32.gguf"
    write_f32_model(f32)
    corpus(work / "corpus.txt")
    run(str(BIN / "llama-imatrix"), "-m", str(f32), "-f", "corpus.txt", "-o", "imatrix.gguf",
        "-c", "64", "--chunks", "8", "-t", "1", "-b", "64", "-ub", "64", cwd=work)
    for q in QUANTS:
        extra = ["--imatrix", "imatrix.gguf"] if q in NEEDS_IMATRIX or q == "IQ4_XS" else []
        run(str(BIN / "llama-quantize"), *extra, str(f32), str(out / f"tiny-{q}.gguf"), q, "1",
            cwd=work)
    run(str(BIN / "llama-quantize"), *MIX, str(f32), str(out / "tiny-mix.gguf"), "Q4_K_S", "1",
        cwd=work)
    run(str(BIN / "llama-gguf-split"), "--split", "--split-max-tensors", "3",
        str(out / "tiny-Q4_K_M.gguf"), str(out / "tiny-Q4_K_M"), cwd=work)
    run(str(BIN / "llama-gguf-split"), "--merge", str(out / "tiny-Q4_K_M-00001-of-00004.gguf"),
        str(out / "tiny-Q4_K_M-merged.gguf"), cwd=work)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()

    golden = out / "golden"
    golden.mkdir(exist_ok=True)
    for f in sorted(out.glob("tiny-*.gguf")):
        (golden / (f.stem + ".json")).write_text(golden_text(gguf_dump(f)))
    total = sum(f.stat().st_size for f in out.glob("tiny-*.gguf"))
    print(f"wrote {len(list(out.glob('tiny-*.gguf')))} models ({total} bytes) to {out}")


if __name__ == "__main__":
    main()
