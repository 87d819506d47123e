#!/usr/bin/env bash
# The reference implementation sluice is tested against: llama.cpp as vendored in the pinned
# llama-cpp-python sdist from the Python package index. Idempotent; caches under
# ${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref} (never inside the repository).
#
# usage: tests/reference/llama-cpp.sh [--src | --gguf-py | --bin]
#   --src      fetch the sdist if needed; print the vendored llama.cpp source tree
#              (gguf-py, models/ggml-vocab-*.gguf tokenizer suites, convert scripts)
#   --gguf-py  likewise; print the gguf-py directory (put it on PYTHONPATH)
#   --bin      also build the llama.cpp tools (~15 min on 2 cores); print their directory
set -euo pipefail
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ROOT=${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/llama-cpp-python-$VER
SRC=$ROOT/src/llama_cpp_python-$VER/vendor/llama.cpp
BIN=$SRC/build/bin
mode=${1:---src}

if [ ! -d "$SRC" ]; then
  mkdir -p "$ROOT/src"
  echo "fetching the llama-cpp-python $VER sdist" >&2
  python3 - "$VER" "$ROOT" <<'PY'
import io, re, sys, tarfile, urllib.request
from pip._internal.models.index import PyPI  # the index pip itself is configured with
ver, root = sys.argv[1], sys.argv[2]
index = PyPI.simple_url.rstrip("/") + "/llama-cpp-python/"
html = urllib.request.urlopen(index, timeout=120).read().decode()
url = next(u for u in re.findall(r'href="([^"]+)"', html) if f"llama_cpp_python-{ver}.tar.gz" in u)
data = urllib.request.urlopen(url.split("#")[0], timeout=600).read()
tarfile.open(fileobj=io.BytesIO(data)).extractall(f"{root}/src")
PY
fi

case "$mode" in
  --src) echo "$SRC"; exit 0 ;;
  --gguf-py) echo "$SRC/gguf-py"; exit 0 ;;
  --bin) ;;
  *) echo "usage: $0 [--src | --gguf-py | --bin]" >&2; exit 2 ;;
esac

tools=(llama-cli llama-completion llama-quantize llama-imatrix llama-perplexity llama-bench
       llama-tokenize llama-gguf-split llama-server)
missing=0
for t in "${tools[@]}"; do [ -x "$BIN/$t" ] || missing=1; done
# A build from before AMX was excluded is rebuilt.
grep -q -- "-mno-amx-tile" "$SRC/build/CMakeCache.txt" 2>/dev/null || missing=1
if [ "$missing" = 1 ]; then
  command -v cmake >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null; }
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  echo "building the llama.cpp tools (about 15 min on 2 cores)" >&2
  # Native code for this CPU, but never AMX: virtual machines often report AMX in cpuinfo
  # without granting the tile state, and ggml's AMX kernels then die with SIGILL.
  noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  cmake -S "$SRC" -B "$SRC/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DCMAKE_C_FLAGS="$noamx" -DCMAKE_CXX_FLAGS="$noamx" \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF > "$ROOT/cmake.log" 2>&1
  cmake --build "$SRC/build" -j"$(nproc)" --target "${tools[@]}" > "$ROOT/build.log" 2>&1 \
    || { tail -20 "$ROOT/build.log" >&2; exit 1; }
fi
echo "$BIN"
