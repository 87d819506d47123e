#!/usr/bin/env python3
"""Golden fixtures for sluice's ggml quant formats (tests/fixtures/quant/*.bin).

For every ggml type: random blocks with realistic finite scales, edge-case blocks (all-zero
block, zero scales, maximal codes, negative / huge / subnormal scales) and, for the i-quants,
blocks that walk through every grid entry. Each fixture stores the raw blocks and the f32
values a reference implementation decodes them to; `tests/tests/quant_golden.rs` demands
bit-identical results.

References, per type:
  * gguf-py (`gguf.quants.dequantize`, numpy): F32, F16, BF16 and every quant type it knows.
  * ggml's own C dequantizers (`to_float` / `dequantize_row_q8_K` of libggml-base), through
    tests/gen/ggml_ref.c: Q8_K, Q1_0, Q2_0 (gguf-py has no dequantizer for them). When the C
    reference is available it also cross-checks every gguf-py result bit for bit.
  * Q8_1 (ggml has no dequantizer): gguf-py's Q8_0 dequantizer applied to the same (d, qs).
  * I8, I16, I32, I64, F64 (ggml has no conversion): numpy's cast to float32.

CPU kernel fixtures (tests/fixtures/quant/kernels/, need the C reference): the rows of
activations `x.bin`; what ggml-cpu's `from_float` makes of them for every activation and
KV-cache type (`from_float_<type>.bin`, the x86 build's quantizers); and for every weight type
random weight rows with the dot products ggml-cpu's `vec_dot` computes against those
activations (`vec_dot_<type>.bin`). The C library must be the llama.cpp build whose numerics
sluice mirrors (GGML_NATIVE on x86-64 with AVX2).

Inputs (both from the llama-cpp-python==0.3.36 source distribution, which vendors llama.cpp):
  --llama-cpp DIR  (or env LLAMA_CPP_ROOT): the llama.cpp source tree, i.e. the sdist's
                   `vendor/llama.cpp`; gguf-py is taken from DIR/gguf-py (override with
                   --gguf-py / env GGUF_PY).
  --ggml-build DIR (or env LLAMA_CPP_BUILD): a CMake build of that tree containing
                   ggml/src/libggml-base.a and ggml/src/libggml-cpu.a (default DIR/build).
                   Needed for Q8_K, Q1_0, Q2_0 and the cross-check.
To obtain them with public tools:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   # or fetch the sdist
    tar xzf llama_cpp_python-0.3.36.tar.gz
    cd llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -B build -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF && cmake --build build -j
Pinned Python packages: numpy==1.26.4 (gguf-py is imported from the tree, not installed).
Deterministic: fixed seeds; re-running rewrites identical files.

Usage: python3 tests/gen/quant_golden.py --llama-cpp DIR [--ggml-build DIR] [--out DIR]
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MAGIC = b"SLQG"
VERSION = 1

# name: (id, block elements, block bytes)
TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "IQ2_XXS": (16, 256, 66), "IQ2_XS": (17, 256, 74), "IQ3_XXS": (18, 256, 98),
    "IQ1_S": (19, 256, 50), "IQ4_NL": (20, 32, 18), "IQ3_S": (21, 256, 110),
    "IQ2_S": (22, 256, 82), "IQ4_XS": (23, 256, 136), "I8": (24, 1, 1), "I16": (25, 1, 2),
    "I32": (26, 1, 4), "I64": (27, 1, 8), "F64": (28, 1, 8), "IQ1_M": (29, 256, 56),
    "BF16": (30, 1, 2), "TQ1_0": (34, 256, 54), "TQ2_0": (35, 256, 66),
    "MXFP4": (39, 32, 17), "NVFP4": (40, 64, 36), "Q1_0": (41, 128, 18), "Q2_0": (42, 64, 18),
}

# Scale fields of each block type: (byte offset, kind). Everything else in a block is codes.
SCALES = {
    "Q4_0": [(0, "f16")], "Q4_1": [(0, "f16"), (2, "f16")], "Q5_0": [(0, "f16")],
    "Q5_1": [(0, "f16"), (2, "f16")], "Q8_0": [(0, "f16")], "Q8_1": [(0, "f16"), (2, "f16")],
    "Q2_K": [(80, "f16"), (82, "f16")], "Q3_K": [(108, "f16")],
    "Q4_K": [(0, "f16"), (2, "f16")], "Q5_K": [(0, "f16"), (2, "f16")], "Q6_K": [(208, "f16")],
    "Q8_K": [(0, "f32")], "IQ2_XXS": [(0, "f16")], "IQ2_XS": [(0, "f16")],
    "IQ2_S": [(0, "f16")], "IQ3_XXS": [(0, "f16")], "IQ3_S": [(0, "f16")],
    "IQ1_S": [(0, "f16")], "IQ1_M": [(48, "iq1m")], "IQ4_NL": [(0, "f16")],
    "IQ4_XS": [(0, "f16")], "TQ1_0": [(52, "f16")], "TQ2_0": [(64, "f16")],
    "MXFP4": [(0, "e8m0")], "NVFP4": [(0, "ue4m3"), (1, "ue4m3"), (2, "ue4m3"), (3, "ue4m3")],
    "Q1_0": [(0, "f16")], "Q2_0": [(0, "f16")],
}

FLOAT_TYPES = {"F32", "F16", "BF16", "I8", "I16", "I32", "I64", "F64"}
C_REFERENCE = {"Q8_K", "Q1_0", "Q2_0"}


# ---------------------------------------------------------------------------------------------
# Scale values


def random_scale(rng, kind):
    """A realistic finite scale, random sign, log-uniform magnitude."""
    if kind in ("f16", "iq1m", "f32"):
        v = float(10 ** rng.uniform(-5, 0)) * (1 if rng.random() < 0.7 else -1)
        return v
    if kind == "e8m0":
        return int(rng.integers(100, 140))
    if kind == "ue4m3":
        return int(rng.integers(0, 256))
    raise ValueError(kind)


# Edge scales: (label, value for float kinds, byte for e8m0, byte for ue4m3)
EDGE_SCALES = {
    "zero": (0.0, 0, 0x00),
    "negzero": (-0.0, 1, 0x7F),
    "max": (65504.0, 254, 0x7E),
    "neg": (-0.0625, 255, 0xFF),
    "subnormal": (2.0 ** -24, 2, 0x01),
}


def put_scale(block, offset, kind, value):
    if kind == "f16":
        block[offset:offset + 2] = np.float16(value).tobytes()
    elif kind == "f32":
        block[offset:offset + 4] = np.float32(value).tobytes()
    elif kind == "iq1m":
        # The f16 bits are spread over the top nibbles of the four u16 scale words.
        bits = int(np.float16(value).view(np.uint16))
        for k in range(4):
            w = struct.unpack_from("<H", block, offset + 2 * k)[0]
            w = (w & 0x0FFF) | (((bits >> (4 * k)) & 0xF) << 12)
            struct.pack_into("<H", block, offset + 2 * k, w)
    elif kind in ("e8m0", "ue4m3"):
        block[offset] = int(value)
    else:
        raise ValueError(kind)


def edge_value(kind, label):
    f, e8, ue = EDGE_SCALES[label]
    if kind in ("f16", "f32", "iq1m"):
        if kind == "f32" and label == "max":
            return 3.0e38
        if kind == "f32" and label == "subnormal":
            return 1.0e-40
        return f
    return e8 if kind == "e8m0" else ue


# ---------------------------------------------------------------------------------------------
# Grid coverage: write grid indices into blocks so that every grid entry is decoded once.


def set_grid_indices(name, block, indices):
    """indices: 32 (IQ2/IQ1: one per 8-element group) or 64 (IQ3: one per 4 elements)."""
    it = iter(indices)
    for ib in range(8):
        if name == "IQ2_XXS":
            for g in range(4):
                block[2 + 8 * ib + g] = next(it)
        elif name == "IQ2_XS":
            for g in range(4):
                at = 2 + 2 * (4 * ib + g)
                q = struct.unpack_from("<H", block, at)[0]
                struct.pack_into("<H", block, at, (q & 0xFE00) | next(it))
        elif name == "IQ2_S":
            for g in range(4):
                idx = next(it)
                block[2 + 4 * ib + g] = idx & 0xFF
                block[66 + ib] = (block[66 + ib] & ~(3 << (2 * g)) & 0xFF) | ((idx >> 8) << (2 * g))
        elif name == "IQ3_XXS":
            for k in range(8):
                block[2 + 8 * ib + k] = next(it)
        elif name == "IQ3_S":
            for k in range(8):
                idx = next(it)
                block[2 + 8 * ib + k] = idx & 0xFF
                block[66 + ib] = (block[66 + ib] & ~(1 << k) & 0xFF) | ((idx >> 8) << k)
        elif name == "IQ1_S":
            qh = struct.unpack_from("<H", block, 34 + 2 * ib)[0]
            for g in range(4):
                idx = next(it)
                block[2 + 4 * ib + g] = idx & 0xFF
                qh = (qh & ~(7 << (3 * g)) & 0xFFFF) | ((idx >> 8) << (3 * g))
            struct.pack_into("<H", block, 34 + 2 * ib, qh)
        elif name == "IQ1_M":
            for g in range(4):
                idx = next(it)
                block[4 * ib + g] = idx & 0xFF
                at = 32 + 2 * ib + g // 2
                shift = 4 * (g % 2)
                block[at] = (block[at] & ~(7 << shift) & 0xFF) | ((idx >> 8) << shift)
        else:
            raise ValueError(name)


GRID_SIZES = {  # entries, lookups per block
    "IQ2_XXS": (256, 32), "IQ2_XS": (512, 32), "IQ2_S": (1024, 32), "IQ3_XXS": (256, 64),
    "IQ3_S": (512, 64), "IQ1_S": (2048, 32), "IQ1_M": (2048, 32),
}


# ---------------------------------------------------------------------------------------------
# Blocks


def quant_blocks(name, rng):
    _, elems, size = TYPES[name]
    scales = SCALES[name]
    n_random = 24 if elems >= 256 else 64
    blocks = []

    def new_block(fill):
        if fill == "random":
            return bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        return bytearray([fill]) * size

    # Edge cases.
    blocks.append(new_block(0))  # all-zero block (zero scales too)
    for fill, label in [("random", "zero"), (0xFF, "max"), (0xFF, "neg"), ("random", "max"),
                        ("random", "subnormal"), ("random", "negzero"), ("random", "neg"),
                        (0x00, "neg")]:
        b = new_block(fill)
        for off, kind in scales:
            put_scale(b, off, kind, edge_value(kind, label))
        blocks.append(b)
    # Random blocks with realistic scales.
    for _ in range(n_random):
        b = new_block("random")
        for off, kind in scales:
            put_scale(b, off, kind, random_scale(rng, kind))
        blocks.append(b)
    # Every grid entry at least once.
    if name in GRID_SIZES:
        entries, per_block = GRID_SIZES[name]
        for start in range(0, entries, per_block):
            b = new_block("random")
            for off, kind in scales:
                put_scale(b, off, kind, random_scale(rng, kind))
            set_grid_indices(name, b, [(start + k) % entries for k in range(per_block)])
            blocks.append(b)
    return b"".join(bytes(b) for b in blocks), len(blocks)


def float_elements(name, rng):
    n = 512
    if name == "F32":
        v = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)).astype(np.float32)
        v[:8] = [0.0, -0.0, 1e-45, -1e-40, 3.4e38, -3.4e38, np.inf, -np.inf]
        return v.tobytes(), n
    if name in ("F16", "BF16"):
        bits = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
        exp_mask, man_mask = (0x7C00, 0x03FF) if name == "F16" else (0x7F80, 0x007F)
        nan = ((bits & exp_mask) == exp_mask) & ((bits & man_mask) != 0)
        bits[nan] &= ~np.uint16(man_mask)  # NaN → inf; payloads are not under test
        return bits.tobytes(), n
    if name in ("I8", "I16", "I32", "I64"):
        dt = {"I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64}[name]
        info = np.iinfo(dt)
        v = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        v[:2] = [info.min, info.max]
        return v.tobytes(), n
    if name == "F64":
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-50, 50, n)
        v[:6] = [0.0, -0.0, 1e-310, 3.5e38, 3.4028235677973366e38, -1e39]
        return v.tobytes(), n
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------
# References


class CReference:
    """ggml's C code through tests/gen/ggml_ref.c, built against a llama.cpp build."""

    def __init__(self, root, build):
        self.exe = None
        base = os.path.join(build, "ggml", "src", "libggml-base.a")
        cpu = os.path.join(build, "ggml", "src", "libggml-cpu.a")
        if not (os.path.exists(base) and os.path.exists(cpu)):
            print(f"note: no ggml static libraries under {build}; C reference disabled", file=sys.stderr)
            return
        self.tmp = tempfile.mkdtemp(prefix="sluice-ggml-ref-")
        exe = os.path.join(self.tmp, "ggml_ref")
        cmd = ["cc", "-O2", "-o", exe, os.path.join(REPO, "tests", "gen", "ggml_ref.c"),
               "-I", os.path.join(root, "ggml", "include"), cpu, base,
               "-lstdc++", "-lm", "-fopenmp", "-lpthread"]
        subprocess.run(cmd, check=True)
        self.exe = exe

    def run(self, cmd, type_id, n, data):
        r = subprocess.run([self.exe, cmd, str(type_id), str(n)], input=data,
                           capture_output=True, check=True)
        return r.stdout

    def dequant(self, name, data, n_blocks):
        out = self.run("dequant", TYPES[name][0], n_blocks, data)
        return np.frombuffer(out, dtype=np.float32)


def gguf_dequant(gguf, name, data, n_blocks):
    from gguf import quants
    qtype = gguf.GGMLQuantizationType[name]
    _, elems, size = TYPES[name]
    arr = np.frombuffer(data, dtype=np.uint8).reshape(n_blocks, size)
    if name == "F32":
        return np.frombuffer(data, dtype=np.float32).copy()
    if name == "F16":
        return quants.dequantize(np.frombuffer(data, dtype=np.float16), qtype).astype(np.float32).ravel()
    return quants.dequantize(arr, qtype).astype(np.float32, copy=False).ravel()


def reference_values(gguf, cref, name, data, n):
    """(values, reference label)."""
    if name in ("I8", "I16", "I32", "I64", "F64"):
        dt = {"I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "F64": np.float64}[name]
        return np.frombuffer(data, dtype=dt).astype(np.float32), "numpy-cast"
    if name == "Q8_1":
        blocks = np.frombuffer(data, dtype=np.uint8).reshape(n, 36)
        as_q8_0 = np.concatenate([blocks[:, 0:2], blocks[:, 4:36]], axis=1)
        return gguf_dequant(gguf, "Q8_0", as_q8_0.tobytes(), n), "gguf-py-q8_0"
    if name in C_REFERENCE:
        if cref.exe is None:
            return None, None
        return cref.dequant(name, data, n), "ggml-c"
    values = gguf_dequant(gguf, name, data, n)
    if cref.exe is not None and name not in ("F32", "F16", "BF16"):
        c = cref.dequant(name, data, n)
        same = np.array_equal(c.view(np.uint32), values.view(np.uint32))
        print(f"  cross-check gguf-py vs ggml C: {'identical' if same else 'DIFFERENT'}")
        if not same:
            bad = np.nonzero(c.view(np.uint32) != values.view(np.uint32))[0]
            print(f"    first difference at {bad[0]}: gguf-py {values[bad[0]]!r} ggml {c[bad[0]]!r}")
    return values, "gguf-py"


def write_fixture(path, name, data, n, values, ref):
    type_id, elems, size = TYPES[name]
    assert len(data) == n * size and values.size == n * elems, name
    header = MAGIC + struct.pack("<5I", VERSION, type_id, n, size, elems)
    header += ref.encode().ljust(16, b"\0")
    with open(path, "wb") as f:
        f.write(header + data + values.astype("<f4").tobytes())


# ---------------------------------------------------------------------------------------------
# CPU kernel fixtures

KERNEL_N = 1024
KERNEL_ROWS = 8
# weight type -> activation type (ggml-cpu's vec_dot_type)
VEC_DOT_TYPE = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q4_0": "Q8_0", "Q4_1": "Q8_1", "Q5_0": "Q8_0",
    "Q5_1": "Q8_1", "Q8_0": "Q8_0", "IQ4_NL": "Q8_0", "MXFP4": "Q8_0", "NVFP4": "Q8_0",
    "Q1_0": "Q8_0", "Q2_0": "Q8_0", "Q2_K": "Q8_K", "Q3_K": "Q8_K", "Q4_K": "Q8_K",
    "Q5_K": "Q8_K", "Q6_K": "Q8_K", "IQ4_XS": "Q8_K", "TQ1_0": "Q8_K", "TQ2_0": "Q8_K",
    "IQ2_XXS": "Q8_K", "IQ2_XS": "Q8_K", "IQ2_S": "Q8_K", "IQ3_XXS": "Q8_K", "IQ3_S": "Q8_K",
    "IQ1_S": "Q8_K", "IQ1_M": "Q8_K",
}
FROM_FLOAT_TYPES = ["F16", "BF16", "Q8_0", "Q8_1", "Q8_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                    "IQ4_NL"]


def row_bytes(name, n):
    _, elems, size = TYPES[name]
    return n // elems * size


def activation_rows(rng):
    rows = []
    # Ties: halves in (-127, 127) with every 32-block's first value 127, so the Q8_0 scale is
    # exactly 1 and the Q8_K scale exactly -1: the rounding of .5 decides the codes.
    t = rng.integers(-253, 254, KERNEL_N).astype(np.float32) / 2
    t[::32] = 127.0
    rows.append(t)
    for r in range(KERNEL_ROWS - 1):
        x = rng.standard_normal(KERNEL_N).astype(np.float32) * np.float32(10.0 ** rng.uniform(-2, 1))
        x[rng.integers(0, KERNEL_N, 4)] *= 20  # outliers, as in real activations
        rows.append(x.astype(np.float32))
    return np.stack(rows)


def weight_row(name, rng):
    _, elems, size = TYPES[name]
    if elems == 1:
        x = rng.standard_normal(KERNEL_N).astype(np.float32) * np.float32(0.05)
        if name == "F32":
            return x.tobytes()
        if name == "F16":
            return x.astype(np.float16).tobytes()
        return (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()  # truncation is fine for data
    out = bytearray()
    for _ in range(KERNEL_N // elems):
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        for off, kind in SCALES[name]:
            v = random_scale(rng, kind)
            if kind in ("f16", "iq1m"):
                v = abs(v) * 1e-2 * (1 if rng.random() < 0.5 else -1)
            put_scale(b, off, kind, v)
        out += b
    return bytes(out)


def write_kernel_fixtures(cref, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20261130)
    x = activation_rows(rng)
    with open(os.path.join(out_dir, "x.bin"), "wb") as f:
        f.write(b"SLQX" + struct.pack("<3I", VERSION, KERNEL_N, KERNEL_ROWS) + x.astype("<f4").tobytes())
    for name in FROM_FLOAT_TYPES:
        data = b"".join(cref.run("from_float", TYPES[name][0], KERNEL_N, r.tobytes()) for r in x)
        assert len(data) == KERNEL_ROWS * row_bytes(name, KERNEL_N)
        with open(os.path.join(out_dir, f"from_float_{name.lower()}.bin"), "wb") as f:
            f.write(b"SLQF" + struct.pack("<4I", VERSION, TYPES[name][0], KERNEL_N, KERNEL_ROWS) + data)
    for name, act in VEC_DOT_TYPE.items():
        wrng = np.random.default_rng(20261200 + TYPES[name][0])
        rows = [weight_row(name, wrng) for _ in range(KERNEL_ROWS)]
        dots = [np.frombuffer(cref.run("vec_dot", TYPES[name][0], KERNEL_N, w + xr.tobytes()), "<f4")[0]
                for w, xr in zip(rows, x)]
        with open(os.path.join(out_dir, f"vec_dot_{name.lower()}.bin"), "wb") as f:
            f.write(b"SLQD" + struct.pack("<5I", VERSION, TYPES[name][0], TYPES[act][0], KERNEL_N, KERNEL_ROWS))
            f.write(b"".join(rows) + np.array(dots, "<f4").tobytes())
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"kernel fixtures: {total} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP_ROOT"))
    ap.add_argument("--gguf-py", default=os.environ.get("GGUF_PY"))
    ap.add_argument("--ggml-build", default=os.environ.get("LLAMA_CPP_BUILD"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "quant"))
    args = ap.parse_args()
    if not args.llama_cpp and not args.gguf_py:
        ap.error("give --llama-cpp (or LLAMA_CPP_ROOT) or at least --gguf-py")
    sys.path.insert(0, args.gguf_py or os.path.join(args.llama_cpp, "gguf-py"))
    import gguf

    cref = CReference(args.llama_cpp, args.ggml_build or os.path.join(args.llama_cpp, "build")) \
        if args.llama_cpp else None
    if cref is None:
        cref = CReference.__new__(CReference)
        cref.exe = None
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, (type_id, _, _) in TYPES.items():
        rng = np.random.default_rng(20260000 + type_id)
        if name in FLOAT_TYPES:
            data, n = float_elements(name, rng)
        else:
            data, n = quant_blocks(name, rng)
        print(f"{name}: {n} blocks")
        with np.errstate(over="ignore"):  # huge-scale edge blocks overflow to inf on purpose
            values, ref = reference_values(gguf, cref, name, data, n)
        if values is None:
            print("  skipped: needs the C reference (--ggml-build)")
            continue
        path = os.path.join(args.out, name.lower() + ".bin")
        write_fixture(path, name, data, n, values, ref)
        total += os.path.getsize(path)
    print(f"total fixture bytes: {total}")
    if cref.exe is not None:
        write_kernel_fixtures(cref, os.path.join(args.out, "kernels"))
    else:
        print("kernel fixtures skipped: they need the C reference (--ggml-build)")


if __name__ == "__main__":
    main()
