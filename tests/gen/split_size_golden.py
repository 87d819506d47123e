#!/usr/bin/env python3
"""Golden for `sluice gguf split --split-max-size`: what llama-gguf-split writes.

What: llama-gguf-split --split --split-max-size 1M on the Q8_0 MLA fixture (2.7 MB, 3 parts);
the name, size and SHA-256 of each part go to tests/fixtures/golden/split-max-size.json (the
parts themselves are not committed: the test compares hashes of the parts sluice writes).

Run from the repository root after `tests/reference/llama-cpp.sh --bin`:

    python3 tests/gen/split_size_golden.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL = "tests/fixtures/models/tiny-dsv3-mla-Q8_0.gguf"
MAX_SIZE = "1M"


def main() -> None:
    bin_dir = Path(subprocess.run([str(REPO / "tests/reference/llama-cpp.sh"), "--bin"], check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(bin_dir / "llama-gguf-split"), "--split", "--split-max-size", MAX_SIZE,
               str(REPO / MODEL), str(Path(tmp) / "part")]
        subprocess.run(cmd, check=True, capture_output=True)
        parts = []
        for p in sorted(Path(tmp).glob("part-*-of-*.gguf")):
            data = p.read_bytes()
            parts.append({"suffix": p.name[len("part"):], "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()})
    out = REPO / "tests/fixtures/golden/split-max-size.json"
    out.write_text(json.dumps({"model": MODEL, "split_max_size": MAX_SIZE,
                               "command": ["llama-gguf-split", *cmd[1:3], MAX_SIZE, MODEL, "PREFIX"],
                               "parts": parts}, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)}: {len(parts)} parts")


if __name__ == "__main__":
    main()
