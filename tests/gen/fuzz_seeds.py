#!/usr/bin/env python3
"""Seed inputs for the GGUF header fuzz target (fuzz/seeds/), written with gguf-py.

Small, valid files that reach every part of the parser: every value type, nested arrays,
a tokenizer-like string array, several tensor types, a custom alignment, a version-2 header,
split keys, no tensors. Deterministic (seed 7). Needs tests/reference/llama-cpp.sh --gguf-py.
"""

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GGUF_PY = subprocess.run([str(REPO / "tests/reference/llama-cpp.sh"), "--gguf-py"], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
sys.path.insert(0, GGUF_PY)
import gguf  # noqa: E402

OUT = REPO / "fuzz" / "seeds"
rng = np.random.default_rng(7)


def write(name: str, fill, alignment: int | None = None) -> Path:
    path = OUT / name
    w = gguf.GGUFWriter(str(path), "deepseek2")
    if alignment:
        w.add_custom_alignment(alignment)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def every_type(w: gguf.GGUFWriter) -> None:
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -3)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -300)
    w.add_uint32("t.u32", 61)
    w.add_int32("t.i32", -7)
    w.add_float32("t.f32", 0.125)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_uint64("t.u64", 1 << 40)
    w.add_int64("t.i64", -(1 << 40))
    w.add_float64("t.f64", 1e-300)
    w.add_array("t.arr_i32", [1, 2, 3])
    w.add_array("t.arr_str", ["a", "bc", ""])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_array("t.arr_f32", [0.5, -1.0])
    w.add_tensor("f32", rng.standard_normal((2, 8)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal(16).astype(np.float16))
    q8 = rng.integers(0, 255, (2, 34), dtype=np.uint8)
    w.add_tensor("q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    q4k = rng.integers(0, 255, (1, 144), dtype=np.uint8)
    w.add_tensor("q4_k", q4k, raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    iq2 = rng.integers(0, 255, (1, 66), dtype=np.uint8)
    w.add_tensor("iq2_xxs", iq2, raw_dtype=gguf.GGMLQuantizationType.IQ2_XXS)


def tokenizer(w: gguf.GGUFWriter) -> None:
    w.add_token_list([f"tok{i}" for i in range(60)])
    w.add_token_scores([-float(i) for i in range(60)])
    w.add_token_types([1] * 60)
    w.add_uint16("split.no", 0)
    w.add_uint16("split.count", 1)
    w.add_int32("split.tensors.count", 1)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write("every_type.gguf", every_type)
    write("tokenizer_split.gguf", tokenizer)
    write("aligned_64.gguf", lambda w: w.add_tensor("x", np.ones((3, 5), dtype=np.float32)), 64)
    write("no_tensors.gguf", lambda w: w.add_string("general.name", "empty"))
    v3 = (OUT / "every_type.gguf").read_bytes()
    (OUT / "version_2.gguf").write_bytes(v3[:4] + struct.pack("<I", 2) + v3[8:])
    for f in sorted(OUT.iterdir()):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
