#!/usr/bin/env bash
# Builds sluice-web for the browser: the wasm module and its JavaScript glue in www/pkg/, which
# `sluice serve DIR --www` serves together with the demo page.
#
# usage: web/build.sh [--dev]     (--dev: unoptimised, quicker to build)
#
# Needs the wasm32-unknown-unknown target (added with rustup when missing) and wasm-bindgen-cli
# of exactly the wasm-bindgen version in Cargo.lock (installed with cargo when missing, ~4 min).
# Prints the size of the wasm module, raw and gzipped.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PROFILE=web-release
[ "${1:-}" = "--dev" ] && PROFILE=dev

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

WANT=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
HAVE=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$HAVE" != "$WANT" ]; then
  echo "installing wasm-bindgen-cli $WANT (have: ${HAVE:-none})" >&2
  cargo install wasm-bindgen-cli --version "$WANT"
fi

# simd128 (the wasm SIMD kernels) is enabled for this target in .cargo/config.toml.
cargo build -p sluice-web --target wasm32-unknown-unknown --profile "$PROFILE"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DIR=$PROFILE
[ "$PROFILE" = dev ] && DIR=debug
WASM=$TARGET_DIR/wasm32-unknown-unknown/$DIR/sluice_web.wasm
OUT=$ROOT/www/pkg
rm -rf "$OUT"
wasm-bindgen --target web --out-dir "$OUT" "$WASM"
RAW=$(stat -c %s "$OUT/sluice_web_bg.wasm")
GZ=$(gzip -9 -c "$OUT/sluice_web_bg.wasm" | wc -c)
echo "www/pkg/sluice_web_bg.wasm: $RAW bytes, $GZ gzipped ($PROFILE)"
