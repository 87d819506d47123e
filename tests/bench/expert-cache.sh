#!/usr/bin/env bash
# Expert-cache benchmark (the streaming expert store, ARCHITECTURE.md decision 5).
#
#   tests/bench/expert-cache.sh MODEL.gguf [OUT_DIR]
#
# 1. Replays the decode routing trace through LRU and LRFU variants (hit rate per budget) and
#    reports the next-layer prediction accuracy (examples/expert_sweep --policies).
# 2. Decode tokens/s against the expert-cache budget (BUDGETS), experts read from the local
#    disk with positioned reads: each budget runs in its own cgroup v1 memory group limited to
#    dense weights + budget + SLACK, so the page cache cannot quietly hold the experts the
#    budget leaves out, and the file's cached pages are dropped before each run
#    (posix_fadvise DONTNEED). Prefetch on, then off.
# 3. The same sweep over HTTP on loopback (`sluice serve` outside the memory group, so its
#    page cache plays the part of a server with RAM).
# 4. sluice vs llama.cpp when the page cache cannot hold the model: both in one memory group
#    limited to LIMIT, alternating runs (ROUNDS), decode tokens/s from each tool's
#    "eval time" line. llama.cpp maps the model (its default); sluice uses --no-mmap and
#    --expert-cache CGROUP_BUDGET.
#
# Needs root (cgroup v1 memory controller at /sys/fs/cgroup/memory), python3, and the llama.cpp
# tools from tests/reference/llama-cpp.sh --bin. Results (Markdown, SVG plots, raw logs) go to
# OUT_DIR (default ${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/bench-expert-cache).
#
# Environment: BUDGETS (5%,10%,25%,50%,100%), TOKENS (decode tokens, 32), PROMPT_TOKENS (16),
# THREADS (2), SLACK (bytes of headroom per group, 1G: besides the budget a streaming run holds
# the layer's experts in use, up to two layers of prefetched experts and the I/O threads' read
# buffers — about 0.7 GB over dense + budget on the V3 slice at 5 %), LIMIT (group limit for
# step 4, default half the model), CGROUP_BUDGET (sluice's --expert-cache in step 4, default
# LIMIT minus dense weights minus SLACK; give it when that is too small), ROUNDS (3),
# STEPS (which steps to run, "1 2 3 4"), LLAMA_ARGS (extra llama-completion flags in step 4,
# default --no-repack: with repacking, llama.cpp copies repackable weights into anonymous
# memory, which a memory limit below the model's size cannot hold; it is OOM-killed).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

MODEL=${1:?usage: tests/bench/expert-cache.sh MODEL.gguf [OUT_DIR]}
OUT=${2:-${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/bench-expert-cache}
BUDGETS=${BUDGETS:-5%,10%,25%,50%,100%}
TOKENS=${TOKENS:-32}
PROMPT_TOKENS=${PROMPT_TOKENS:-16}
THREADS=${THREADS:-2}
SLACK=${SLACK:-$((1024 << 20))}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-1 2 3 4}
LLAMA_ARGS=${LLAMA_ARGS:---no-repack}
TEXT=$REPO/tests/fixtures/text/river-notes.txt
CG=/sys/fs/cgroup/memory/sluice-expert-bench
mkdir -p "$OUT"

cargo build --release -q -p sluice --bin sluice --example expert_sweep
TARGET=${CARGO_TARGET_DIR:-$REPO/target}/release
SLUICE=$TARGET/sluice
SWEEP=$TARGET/examples/expert_sweep

log() { echo "== $*" >&2; }

# Drops the model's pages from the page cache (clean pages only; no privileges needed).
drop_cached() {
    python3 - "$@" <<'EOF'
import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
EOF
}

parts() {
    # Every part of a split model, or the file itself.
    case "$MODEL" in
        *-00001-of-*.gguf) ls "${MODEL%-00001-of-*}"-0000*-of-*.gguf ;;
        *) echo "$MODEL" ;;
    esac
}

# Runs a command inside the memory group, limited to $1 bytes.
in_group() {
    local limit=$1
    shift
    [ -d "$CG" ] || mkdir "$CG"
    # Uncharge what earlier runs left (page cache), then set the limit.
    echo 0 >"$CG/memory.force_empty" 2>/dev/null || true
    echo "$limit" >"$CG/memory.limit_in_bytes"
    sh -c 'echo $$ > "$0/tasks" && exec "$@"' "$CG" "$@"
}

cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -d "$CG" ] && rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT

# Sizes: model and expert bytes (from the example's "sizes:" line).
SIZES=$("$SWEEP" "$MODEL" --text "$TEXT" --prompt "$PROMPT_TOKENS" --decode "$TOKENS" --no-sweep | grep '^sizes:')
MODEL_BYTES=$(echo "$SIZES" | sed 's/.*model_bytes=\([0-9]*\).*/\1/')
EXPERT_BYTES=$(echo "$SIZES" | sed 's/.*expert_bytes=\([0-9]*\).*/\1/')
DENSE_BYTES=$((MODEL_BYTES - EXPERT_BYTES))
log "model $MODEL: $MODEL_BYTES bytes, experts $EXPERT_BYTES, dense $DENSE_BYTES; load: $(cut -d' ' -f1-3 /proc/loadavg)"

budget_bytes() {
    case "$1" in
        *%) python3 -c "print(round(${1%\%} / 100 * $EXPERT_BYTES))" ;;
        *) echo "$1" ;;
    esac
}

# Step 2/3: one process per budget, each in a group sized to dense + budget + slack.
sweep_rows() {
    local model=$1 prefetch=$2 grouped=$3 name=$4
    local md=$OUT/$name.md
    : >"$md"
    for b in ${BUDGETS//,/ }; do
        drop_cached $(parts)
        local args=("$model" --text "$TEXT" --prompt "$PROMPT_TOKENS" --decode "$TOKENS"
            --budgets "$b" --threads "$THREADS" --prefetch "$prefetch" --no-mmap)
        if [ "$grouped" = yes ]; then
            in_group $((DENSE_BYTES + $(budget_bytes "$b") + SLACK)) "$SWEEP" "${args[@]}" >"$OUT/$name-$b.log"
        else
            "$SWEEP" "${args[@]}" >"$OUT/$name-$b.log"
        fi
        grep "^| $b |" "$OUT/$name-$b.log" >>"$md" || { cat "$OUT/$name-$b.log" >&2; exit 1; }
    done
    {
        echo "| budget | bytes | tokens/s | hit rate | cache hits | prefetch accuracy | MB read/token | stall ms/token |"
        echo "|---|---|---|---|---|---|---|---|"
        cat "$md"
    } >"$md.tmp" && mv "$md.tmp" "$md"
    log "$name"
    cat "$md" >&2
}

for step in $STEPS; do
    case $step in
    1)
        log "step 1: policies and prediction accuracy"
        "$SWEEP" "$MODEL" --text "$TEXT" --prompt "$PROMPT_TOKENS" --decode "$TOKENS" \
            --budgets "$BUDGETS" --threads "$THREADS" --policies --no-sweep | tee "$OUT/policies.md" >&2
        ;;
    2)
        log "step 2: local disk sweep (per-budget memory groups)"
        sweep_rows "$MODEL" on yes local-prefetch
        sweep_rows "$MODEL" off yes local-no-prefetch
        ;;
    3)
        log "step 3: HTTP on loopback"
        DIR=$(dirname "$MODEL")
        PORT=${PORT:-18431}
        "$SLUICE" serve "$DIR" --port "$PORT" >"$OUT/serve.log" 2>&1 &
        SERVER_PID=$!
        sleep 1
        URL=http://127.0.0.1:$PORT/$(basename "$MODEL")
        sweep_rows "$URL" on no http-prefetch
        sweep_rows "$URL" off no http-no-prefetch
        kill "$SERVER_PID"
        SERVER_PID=
        ;;
    4)
        LIMIT=${LIMIT:-$((MODEL_BYTES / 2))}
        CGROUP_BUDGET=${CGROUP_BUDGET:-$((LIMIT - DENSE_BYTES - SLACK))}
        if [ "$CGROUP_BUDGET" -le 0 ]; then
            echo "step 4: LIMIT $LIMIT leaves no expert cache after dense weights ($DENSE_BYTES) and SLACK ($SLACK); set CGROUP_BUDGET or LIMIT" >&2
            exit 2
        fi
        LLAMA_BIN=$(tests/reference/llama-cpp.sh --bin)
        PROMPT="The river was low that autumn, and the boats"
        log "step 4: llama.cpp vs sluice in one memory group of $LIMIT bytes (sluice --expert-cache $CGROUP_BUDGET)"
        res=$OUT/cgroup.md
        echo "| round | llama.cpp tok/s | sluice tok/s | sluice / llama.cpp |" >"$res"
        echo "|---|---|---|---|" >>"$res"
        # The decode line of both tools' timing summary (not "prompt eval time").
        eval_tps() { grep -E ':[[:space:]]+eval time' "$1" | tail -1 | sed -E 's/.*, *([0-9.]+) tokens per second.*/\1/'; }
        for r in $(seq 1 "$ROUNDS"); do
            drop_cached $(parts)
            in_group "$LIMIT" "$LLAMA_BIN/llama-completion" -m "$MODEL" -p "$PROMPT" -n "$TOKENS" \
                -no-cnv --temp 0 -t "$THREADS" -c 256 --no-display-prompt $LLAMA_ARGS </dev/null \
                >"$OUT/llama-$r.log" 2>&1
            drop_cached $(parts)
            in_group "$LIMIT" "$SLUICE" run -m "$MODEL" -p "$PROMPT" -n "$TOKENS" \
                -no-cnv --temp 0 -t "$THREADS" -c 256 --no-mmap --expert-cache "$CGROUP_BUDGET" \
                --no-display-prompt </dev/null >"$OUT/sluice-$r.log" 2>&1
            l=$(eval_tps "$OUT/llama-$r.log")
            s=$(eval_tps "$OUT/sluice-$r.log")
            echo "| $r | $l | $s | $(python3 -c "print(f'{$s / $l:.2f}')") |" >>"$res"
        done
        grep '^sluice: experts' "$OUT"/sluice-*.log >&2 || true
        cat "$res" >&2
        ;;
    esac
done
