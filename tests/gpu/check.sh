#!/usr/bin/env bash
# GPU check for a Linux machine with a Vulkan driver (NVIDIA, AMD, Intel; or lavapipe):
# builds in release, runs the wgpu backend's shader validation and op-parity tests, then
# model-level parity against llama.cpp's goldens on every fixture (whole model on the GPU,
# mixed CPU/GPU layers, experts on the CPU), parity with the CPU backend on SmolLM2-135M, and
# speed: `sluice bench` on the CPU and with -ngl 99 on $BENCH_MODEL (default: the V3 slice
# from tests/gen/bench_models.py if it was made, else the bundled tiny model), plus decode
# tokens/s and single weight products.
#
# Needs: a Rust toolchain, the Vulkan loader (apt-get install libvulkan1) and a driver.
# Models: SmolLM2-135M-Instruct.Q4_1.gguf from $SLUICE_SMOLLM2, else `tests/gen/smollm2.sh`
# (which prints its path); fixtures from tests/fixtures/models/.
# Output: one line per stage; full logs in $LOG_DIR (default target/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/../.."
LOG_DIR=${LOG_DIR:-target/gpu-check}
mkdir -p "$LOG_DIR"
export CI=true # a missing adapter fails instead of passing
N_GEN=${N_GEN:-64}
THREADS=${THREADS:-$(nproc)}

stage() { printf '%-34s' "$1"; }
run() { # run LOGNAME CMD...: quiet on success, log tail on failure
    local log="$LOG_DIR/$1.log"; shift
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then echo "ok ($((SECONDS - t0)) s)"; else
        echo "FAILED (see $log)"; tail -n 40 "$log"; exit 1; fi
}

# Every cargo call names both packages so features unify the same way (no rebuilds).
PKGS=(-p sluice-shaders -p sluice-tests)
stage "build (release)"
run build cargo build --release -q "${PKGS[@]}" --tests --examples
run build-cli cargo build --release -q -p sluice
stage "adapter"
vulkaninfo --summary 2>/dev/null | grep -m1 -i 'deviceName' | sed 's/.*= //' || echo "(vulkaninfo not installed)"
stage "shader validation (naga)"
run naga cargo test --release -q "${PKGS[@]}" --test naga_targets
stage "op parity vs CPU"
run ops cargo test --release -q "${PKGS[@]}" --test op_parity --test quant_parity -- --nocapture
grep -E 'NMSE|max\|Δ\|' "$LOG_DIR/ops.log" | sed 's/^/    /' | head -80 >"$LOG_DIR/ops-summary.txt" || true
echo "    (per-op numbers: $LOG_DIR/ops-summary.txt)"

stage "model parity vs llama.cpp"
run offload cargo test --release -q "${PKGS[@]}" --test offload_parity -- --nocapture --test-threads 1
grep -cE '^-ngl.*KL' "$LOG_DIR/offload.log" | sed 's/^/    fixture runs within bounds: /'

SMOL=${SLUICE_SMOLLM2:-}
if [[ -z "$SMOL" && -x tests/gen/smollm2.sh ]]; then SMOL=$(tests/gen/smollm2.sh | tail -n1); fi
if [[ -z "$SMOL" || ! -f "$SMOL" ]]; then
    echo "SmolLM2 model not found: set SLUICE_SMOLLM2=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf"; exit 1
fi
export SLUICE_SMOLLM2="$SMOL"
stage "model parity (tests)"
run model cargo test --release -q "${PKGS[@]}" --test gpu_model -- --nocapture
grep -E 'greedy tokens' "$LOG_DIR/model.log" | sed 's/^/    /' | head -40
BENCH=target/release/examples/gpu_bench
echo "decode speed (greedy, $N_GEN tokens, CPU backend on $THREADS threads):"
"$BENCH" "$SMOL" "$N_GEN" "$THREADS" | sed 's/^/    /'
for f in tests/fixtures/models/*.gguf; do
    [[ -f "$f" ]] || continue
    "$BENCH" "$f" "$N_GEN" "$THREADS" | sed 's/^/    /'
    break # one tiny fixture is enough for timing
done
echo "weight products (gpu_kernel_bench):"
for shape in "Q4_K 4096 4096 1" "Q8_0 4096 4096 1" "Q4_K 4096 4096 64" "IQ2_XXS 7168 2048 1"; do
    target/release/examples/gpu_kernel_bench $shape 50 | sed 's/^/    /'
done
SLICE=${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/bench-models/v3slice-Q2_K.gguf
BENCH_MODEL=${BENCH_MODEL:-$([[ -f "$SLICE" ]] && echo "$SLICE" || echo tests/fixtures/models/tiny-deepseek-v3.gguf)}
echo "sluice bench on $BENCH_MODEL (pp512, tg128; CPU on $THREADS threads, then -ngl 99):"
target/release/sluice bench -m "$BENCH_MODEL" -p 512 -n 128 -r 3 -t "$THREADS" 2>/dev/null | sed 's/^/    /'
target/release/sluice bench -m "$BENCH_MODEL" -p 512 -n 128 -r 3 -t "$THREADS" -ngl 99 2>/dev/null | sed 's/^/    /'
echo "gpu check passed"
