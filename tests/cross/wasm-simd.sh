#!/usr/bin/env bash
# The wasm simd128 CPU kernels (core/src/cpu/kernels/wasm), tested where they run: sluice-core's
# kernel tests (`cpu::kernels`, which check every available ISA table against the scalar one)
# built for wasm32-wasip1 with simd128 and run under Node.js's WASI (tests/cross/wasi-run.mjs
# as cargo's runner). Also lints sluice-core for that target (lib and tests, -D warnings).
#
# usage: tests/cross/wasm-simd.sh [TEST FILTER...]   (default filter: cpu::kernels)
# Needs: rustup (adds the wasm32-wasip1 target when missing), node ≥ 20.
# Idempotent; CARGO_TARGET_DIR is honoured.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
command -v node >/dev/null || { echo "wasm-simd: node not found" >&2; exit 1; }

export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128"
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node $ROOT/tests/cross/wasi-run.mjs"

cargo clippy -p sluice-core --lib --tests --target wasm32-wasip1 --release -- -D warnings
# Without a filter, also require the test that proves the simd128 table was in play (a build
# without the feature would compare the scalar table with itself and pass vacuously).
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
cargo test -p sluice-core --lib --target wasm32-wasip1 --release -- \
  --nocapture "${@:-cpu::kernels}" 2>&1 | tee "$LOG"
if [ $# = 0 ] && ! grep -q 'wasm::tests::simd128_table_is_available_and_vectorised \.\.\. ok' "$LOG"; then
  echo "wasm-simd: the simd128 kernel table was not tested" >&2
  exit 1
fi
