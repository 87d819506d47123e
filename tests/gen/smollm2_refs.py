"""llama.cpp references for the real SmolLM2-135M-Instruct Q4_1 model (llama architecture).

What: greedy continuations (32 tokens, one batch for the prompt, then one token per decode) of
three fixed ChatML prompts, with llama.cpp's prompt token ids, continuation ids, per-step
top-1/top-2 gaps and top-5 logits; and llama-perplexity's PPL over our committed text
(tests/fixtures/text/river-notes.txt) with a 128-token context.
Why: a real trained model checks the tokenizer, the generic llama path and the quantized
matmuls on weights that are not random. The model itself is fetched by tests/gen/smollm2.sh
and never committed. Called by make_fixtures.py; also runnable on its own.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from goldens import dump_json, sha256_of, steps_before_near_tie

GEN_DIR = Path(__file__).resolve().parent
REPO = GEN_DIR.parents[1]
TEXT = REPO / "tests" / "fixtures" / "text" / "river-notes.txt"
OUT = REPO / "tests" / "fixtures" / "golden" / "smollm2-135m-instruct-q4_1.json"

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# Chosen among about twenty candidates for greedy runs without near-ties (top-1/top-2 gap < 0.1)
# in their first 29+ steps that also agree with the flash-attention-off path; most everyday
# prompts hit a near-tie within 3-20 tokens.
USER_PROMPTS = [
    "Write a Python function that returns the square of a number.",
    "What is the boiling point of water in Celsius?",
    "Count from one to ten.",
]
N_PREDICT = 32
PPL_CONTEXT = 128
THREADS = 2


def chatml(user: str) -> str:
    """SmolLM2's chat template rendered with its default system message and a generation prompt."""
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


def model_path() -> Path:
    done = subprocess.run(["bash", str(GEN_DIR / "smollm2.sh")], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def perplexity(bin_dir: Path, model: Path) -> dict:
    cmd = [str(bin_dir / "llama-perplexity"), "-m", str(model), "-f", str(TEXT),
           "-c", str(PPL_CONTEXT), "-t", str(THREADS), "--no-repack"]
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"llama-perplexity failed:\n{done.stderr[-2000:]}")
    log = done.stdout + done.stderr
    final = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    chunks = re.findall(r"\[(\d+)\]([0-9.]+)", log)
    if final is None:
        raise RuntimeError("no final PPL estimate in the llama-perplexity output")
    return {
        "command": ["llama-perplexity", "-m", "$(tests/gen/smollm2.sh)", "-f",
                    str(TEXT.relative_to(REPO)), "-c", str(PPL_CONTEXT), "-t", str(THREADS),
                    "--no-repack"],
        "ppl": float(final.group(1)),
        "ppl_stderr": float(final.group(2)),
        "running_ppl_per_chunk": [float(v) for _, v in chunks],
        "method": "the text is tokenized once (with BOS if the vocab adds one) and cut into "
                  "consecutive 128-token chunks (a partial last chunk is dropped); in each chunk "
                  "the first token is replaced by BOS if the vocab adds BOS, and the next-token "
                  "log-likelihoods of tokens 65..127 (predicted from positions 64..126) are "
                  "averaged over all chunks; PPL = exp(mean NLL)",
    }


def make(driver, bin_dir: Path, llama_info: dict) -> dict:
    model = model_path()
    runs = []
    for user in USER_PROMPTS:
        text = chatml(user)
        prompt_ids = driver.tokenize(model, text)
        greedy = driver.greedy(model, prompt_ids, N_PREDICT, fa="auto", cache="f16")
        greedy["steps_before_near_tie"] = steps_before_near_tie(greedy["gaps"])
        greedy["text"] = driver.detokenize(model, greedy["ids"])
        fa_off = driver.greedy(model, prompt_ids, N_PREDICT, fa="off", cache="f16")["ids"]
        greedy["steps_agreeing_with_fa_off"] = next(
            (i for i, (a, b) in enumerate(zip(greedy["ids"], fa_off)) if a != b), N_PREDICT)
        runs.append({"prompt_text": text, "prompt_ids": prompt_ids, **greedy})
    golden = {
        "format": 1,
        "model": {"file": "SmolLM2-135M-Instruct.Q4_1.gguf (tests/gen/smollm2.sh)",
                  "sha256": sha256_of(model), "bytes": model.stat().st_size},
        "llama_cpp": llama_info,
        "settings": {"n_threads": THREADS, "flash_attn": "auto", "cache_type": "f16",
                     "weight_repacking": False,
                     "add_special": True, "parse_special": True, "n_predict": N_PREDICT,
                     "sampling": "greedy arg-max, first maximum on ties, EOS does not stop"},
        "greedy": runs,
        "perplexity": perplexity(bin_dir, model),
    }
    OUT.write_text(dump_json(golden) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(REPO)}: PPL {golden['perplexity']['ppl']}")
    return golden
