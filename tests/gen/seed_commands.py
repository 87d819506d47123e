#!/usr/bin/env python3
"""Golden outputs of llama.cpp for the llama-cli commands users copy from guides.

What: the two DeepSeek-V3 commands of the `sluice run` issue, with the model path replaced by
the bundled fixtures (`tiny-deepseek-v3.gguf`, and part 1 of its 3-part split for the IQ1_S
command) and `--temp 0 -n 48` so the output is deterministic and short. For each: the exact
`llama-completion` command and its stdout, and llama.cpp's greedy ids with the top-1/top-2
logit gap per step (from our llama.h driver, tests/gen/llama_ref.cpp), so tests compare up to
the first near-tie.

Three deviations from the verbatim commands, all required by this llama.cpp build on this
machine: no `--prio` (see `main`), `-ctv`
equal to `-ctk` (for MLA models llama.cpp refuses different K and V cache types; sluice accepts
`-ctk` alone and uses it for the latent cache, which is the same thing), and `--no-repack`
(weight repacking aborts context creation for MLA models on AMX machines; see
tests/fixtures/README.md).

Run from the repository root after `tests/reference/llama-cpp.sh --bin` and
`python3 tests/gen/make_fixtures.py` (which builds the driver):

    python3 tests/gen/seed_commands.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GEN_DIR = REPO / "tests" / "gen"
sys.path.insert(0, str(GEN_DIR))

from goldens import Driver, steps_before_near_tie  # noqa: E402
from make_fixtures import WORK, build_driver  # noqa: E402

N_PREDICT = 48
PROMPT_1 = ("<｜User｜>Create a Flappy Bird game in Python. You must include these things:\\n"
            "1. You must use pygame.\\n2. The background color should be randomly chosen and is a "
            "light shade. Start with a light blue color.<｜Assistant｜>")
PROMPT_2 = "<｜User｜>Create a Flappy Bird game in Python.<｜Assistant｜>"

# (name, model, flags after --model, as the guides give them; --temp is replaced by 0)
COMMANDS = [
    ("ud-q2_k_xl", "tests/fixtures/models/tiny-deepseek-v3.gguf",
     ["--cache-type-k", "q8_0", "--threads", "20", "--n-gpu-layers", "2", "-no-cnv", "--prio", "3",
      "--temp", "0.3", "--min-p", "0.01", "--ctx-size", "4096", "--seed", "3407", "--prompt", PROMPT_1]),
    ("ud-iq1_s", "tests/fixtures/models/split/tiny-deepseek-v3-00001-of-00003.gguf",
     ["--cache-type-k", "q4_0", "--threads", "16", "--prio", "2", "--temp", "0.6", "--ctx-size",
      "8192", "--seed", "3407", "--n-gpu-layers", "59", "-no-cnv", "--prompt", PROMPT_2]),
]


def greedy_flags(flags: list[str]) -> list[str]:
    out = list(flags)
    out[out.index("--temp") + 1] = "0"
    return out + ["-n", str(N_PREDICT)]


def unescape(prompt: str) -> str:
    return prompt.replace("\\n", "\n")


def main() -> None:
    bin_dir = Path(subprocess.run([str(REPO / "tests/reference/llama-cpp.sh"), "--bin"], check=True,
                                  capture_output=True, text=True).stdout.strip())
    src = Path(subprocess.run([str(REPO / "tests/reference/llama-cpp.sh"), "--src"], check=True,
                              capture_output=True, text=True).stdout.strip())
    driver = Driver(build_driver(src))
    goldens = []
    for name, model, flags in COMMANDS:
        flags = greedy_flags(flags)
        ctk = flags[flags.index("--cache-type-k") + 1]
        # llama.cpp runs with 2 threads here whatever the guide says (same results), and
        # without --prio: on this machine llama-completion with --prio >= 1 exits 0 having
        # printed nothing (its high-priority worker threads never produce a token).
        llama_flags = list(flags)
        llama_flags[llama_flags.index("--threads") + 1] = "2"
        i = llama_flags.index("--prio")
        del llama_flags[i:i + 2]
        cmd = [str(bin_dir / "llama-completion"), "--model", model, *llama_flags,
               "--cache-type-v", ctk, "--no-repack"]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, check=True,
                              stdin=subprocess.DEVNULL)
        prompt_ids = driver.tokenize(REPO / model, unescape(flags[flags.index("--prompt") + 1]))
        run = driver.greedy(REPO / model, prompt_ids, N_PREDICT, cache=ctk)
        near = steps_before_near_tie(run["gaps"])
        goldens.append({
            "name": name,
            "model": model,
            "flags": flags,
            "llama_completion": [Path(cmd[0]).name, *cmd[1:]],
            # raw bytes: a random-weight model emits byte tokens that are not valid UTF-8
            "stdout_hex": done.stdout.hex(),
            "prompt_ids": prompt_ids,
            "greedy_ids": run["ids"],
            "gaps": run["gaps"],
            "steps_before_near_tie": near,
        })
        print(f"{name}: {near}/{N_PREDICT} steps before the first near-tie", file=sys.stderr)
    out = REPO / "tests/fixtures/golden/seed-commands.json"
    out.write_text(json.dumps({"format": 1, "n_predict": N_PREDICT, "commands": goldens},
                              ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)} (driver in {WORK})", file=sys.stderr)


if __name__ == "__main__":
    main()
