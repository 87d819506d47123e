#!/usr/bin/env python3
"""KL-divergence interop goldens: llama-perplexity's base-logits file, and its readings.

What: the way users compare quants. llama-perplexity writes a base file from the F32 fixture
(`--kl-divergence-base`), then measures the IQ1_S fixture against it (`--kl-divergence`).
`sluice perplexity` must read that base and report the same KLD; and llama-perplexity must
accept a base written by `sluice perplexity`, which this script checks by running it on one
and recording what it reports. Outputs (committed, ~170 KB):

    tests/fixtures/golden/kld/f32-base.kld   the base written by llama-perplexity
    tests/fixtures/golden/kld/kld.json       the commands and llama.cpp's statistics

Run from the repository root after `tests/reference/llama-cpp.sh --bin` (builds llama.cpp):

    cargo build --release -p sluice && python3 tests/gen/kld_base.py
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "golden" / "kld"
TEXT = "tests/fixtures/text/river-notes.txt"
BASE_MODEL = "tests/fixtures/models/tiny-dsv3-mla-F32.gguf"
QUANT_MODEL = "tests/fixtures/models/tiny-dsv3-mla-IQ1_S.gguf"
CTX = 64
CHUNKS = 6
# --no-repack: see tests/fixtures/README.md (repacking aborts MLA models on AMX machines).
LLAMA_FLAGS = ["-t", "2", "--no-repack"]


def run(cmd: list[str]) -> str:
    # Through the shell into named files: run directly from Python (pipes or unnamed files),
    # llama-perplexity here drops its last chunk and summary while still exiting 0.
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        line = " ".join(shlex.quote(str(c)) for c in cmd)
        done = subprocess.run(["bash", "-c", f"{line} >{out} 2>{err} </dev/null"], cwd=REPO)
        text = out.read_text(errors="replace") + err.read_text(errors="replace")
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(map(str, cmd))}\n{text[-3000:]}")
    return text


def statistics(cmd: list[str]) -> dict[str, float]:
    """Mean KLD and same-top percentage from a --kl-divergence run's summary. llama-perplexity's
    logger thread sometimes exits before printing the summary, so the run is retried."""
    for _ in range(8):
        output = run(cmd)
        mean = re.search(r"Mean\s+KLD:\s+([-0-9.e]+)", output)
        same = re.search(r"Same top p:\s+([-0-9.e]+)", output)
        if mean and same:
            return {"mean_kld": float(mean.group(1)), "same_top_percent": float(same.group(1))}
    sys.exit(f"no KL-divergence summary from {' '.join(cmd)}:\n{output[-3000:]}")


def main() -> None:
    bin_dir = Path(run([str(REPO / "tests/reference/llama-cpp.sh"), "--bin"]).strip().splitlines()[-1])
    perplexity = str(bin_dir / "llama-perplexity")
    sluice = REPO / "target" / "release" / "sluice"
    if not sluice.exists():
        sys.exit("build sluice first: cargo build --release -p sluice")
    OUT.mkdir(parents=True, exist_ok=True)
    base = OUT / "f32-base.kld"
    base.unlink(missing_ok=True)
    write_base = [perplexity, "-m", BASE_MODEL, "-f", TEXT, "-c", str(CTX), "--chunks", str(CHUNKS),
                  *LLAMA_FLAGS, "--kl-divergence-base", str(base.relative_to(REPO))]
    run(write_base)
    compare = [perplexity, "-m", QUANT_MODEL, "--kl-divergence-base", str(base.relative_to(REPO)),
               "--kl-divergence", *LLAMA_FLAGS]
    llama_vs_llama = statistics(compare)
    with tempfile.TemporaryDirectory() as tmp:
        sluice_base = Path(tmp) / "sluice-base.kld"
        run([str(sluice), "perplexity", "-m", BASE_MODEL, "-f", TEXT, "-c", str(CTX), "--chunks",
             str(CHUNKS), "-t", "2", "--kl-divergence-base", str(sluice_base)])
        llama_vs_sluice = statistics([perplexity, "-m", QUANT_MODEL, "--kl-divergence-base",
                                      str(sluice_base), "--kl-divergence", *LLAMA_FLAGS])
    golden = {
        "format": 1,
        "text": TEXT,
        "ctx": CTX,
        "chunks": CHUNKS,
        "base_model": BASE_MODEL,
        "quant_model": QUANT_MODEL,
        "base_file": str(base.relative_to(REPO)),
        "write_base": [Path(write_base[0]).name, *write_base[1:]],
        "compare": [Path(compare[0]).name, *compare[1:]],
        # llama-perplexity measuring the IQ1_S fixture against its own F32 base
        "llama_base": llama_vs_llama,
        # llama-perplexity measuring the IQ1_S fixture against a base written by sluice
        "sluice_base_read_by_llama": llama_vs_sluice,
    }
    (OUT / "kld.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"llama base: {llama_vs_llama}; sluice base read by llama.cpp: {llama_vs_sluice}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
