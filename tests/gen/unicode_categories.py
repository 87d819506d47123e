#!/usr/bin/env python3
"""Regenerates core/src/tokenizer/unicode_table.rs from llama.cpp's code point category table.

llama.cpp decides what `\\p{L}`, `\\p{N}`, ... and `\\s` mean during pre-tokenization from its own
table (src/unicode-data.cpp in the pinned llama-cpp-python sdist), not from the Unicode version of
whichever regex engine is at hand. To split text exactly as it does, sluice carries the same table
as data. This script reads the table's values and writes them as Rust constants.

usage: python3 tests/gen/unicode_categories.py [path/to/llama.cpp]
       (default: the tree printed by tests/reference/llama-cpp.sh --src)
Deterministic; standard library only.
"""
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
OUT = REPO / "core" / "src" / "tokenizer" / "unicode_table.rs"


def llama_cpp_tree() -> pathlib.Path:
    if len(sys.argv) > 1:
        return pathlib.Path(sys.argv[1])
    script = REPO / "tests" / "reference" / "llama-cpp.sh"
    out = subprocess.run([str(script), "--src"], check=True, capture_output=True, text=True)
    return pathlib.Path(out.stdout.strip())


def block(source: str, name: str) -> str:
    start = source.index(name)
    open_brace = source.index("= {", start)
    end = source.index("\n};", open_brace)
    return source[open_brace + 3 : end]


def main() -> None:
    source = (llama_cpp_tree() / "src" / "unicode-data.cpp").read_text()

    ranges = [
        (int(a, 16), int(b, 16))
        for a, b in re.findall(r"\{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\}", block(source, "unicode_ranges_flags"))
    ]
    assert ranges[0][0] == 0 and ranges[-1][0] == 0x110000, "table must span 0..=0x10FFFF"
    assert all(a[0] < b[0] for a, b in zip(ranges, ranges[1:])), "range starts must increase"
    assert all(flags < 0x100 for _, flags in ranges), "only category bits expected in the range table"
    ranges = ranges[:-1]  # drop the end sentinel; the last range runs to 0x10FFFF

    whitespace = sorted(int(v, 16) for v in re.findall(r"0x([0-9A-Fa-f]+)", block(source, "unicode_set_whitespace")))

    lines = [
        "//! Code point category table used by the pre-tokenizer (generated; do not edit).",
        "//!",
        "//! Values transcribed from llama.cpp's `src/unicode-data.cpp` (llama-cpp-python 0.3.36 sdist) by",
        "//! `tests/gen/unicode_categories.py`. Each entry is `(first code point, category bits)`; an entry",
        "//! covers code points up to the next entry's start (the last one up to U+10FFFF). Category bits:",
        "//! 0x01 unassigned, 0x02 number, 0x04 letter, 0x08 separator, 0x10 mark, 0x20 punctuation,",
        "//! 0x40 symbol, 0x80 control.",
        "",
        f"pub(super) static CATEGORY_RANGES: [(u32, u8); {len(ranges)}] = [",
    ]
    row = []
    for start, flags in ranges:
        row.append(f"(0x{start:05X}, 0x{flags:02X})")
        if len(row) == 6:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("];")
    lines.append("")
    lines.append("/// Code points llama.cpp treats as whitespace (`\\s`), ascending.")
    lines.append(f"pub(super) static WHITESPACE: [u32; {len(whitespace)}] = [")
    for i in range(0, len(whitespace), 8):
        lines.append("    " + ", ".join(f"0x{c:04X}" for c in whitespace[i : i + 8]) + ",")
    lines.append("];")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(ranges)} ranges, {len(whitespace)} whitespace code points)")


if __name__ == "__main__":
    main()
