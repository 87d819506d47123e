#!/usr/bin/env bash
# sluice bench against llama-bench on the same GGUF, alternating runs, ratio of medians.
#
#   tests/bench/compare.sh MODEL.gguf [ROUNDS]
#
# Each round runs llama-bench then `sluice bench` (one repetition each, warm-up included by
# both tools) for prompt processing (ppPP) and for generation (tgTG), so drift in the
# machine's speed hits both alike. Prints every round's tokens/s and, per test, the median of
# each tool and the ratio sluice / llama.cpp. Memory-bandwidth utilisation of decode: bytes of
# weights read per token (from `sluice bench`'s model size, an upper bound for MoE models, which
# read only the chosen experts; see BYTES_PER_TOKEN) × tokens/s ÷ READ_BW.
#
# Environment: THREADS (2), PP (512), TG (128), ROUNDS (5, or the second argument),
# LLAMA_ARGS (extra llama-bench flags; default none: llama.cpp's defaults, weight repacking on),
# BYTES_PER_TOKEN (weights read per decoded token; default: from `sluice info --json`),
# READ_BW (bytes/s of memory read bandwidth measured with the same thread count; when unset,
# measured here: THREADS threads each summing a 512 MiB array, best of 5).
# Needs the llama.cpp tools from tests/reference/llama-cpp.sh --bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:?usage: tests/bench/compare.sh MODEL.gguf [ROUNDS]}
ROUNDS=${2:-${ROUNDS:-5}}
THREADS=${THREADS:-2}
PP=${PP:-512}
TG=${TG:-128}
LLAMA_ARGS=${LLAMA_ARGS:-}
LLAMA_BIN=$(tests/reference/llama-cpp.sh --bin | tail -1)
cargo build --release -q -p sluice --bin sluice
SLUICE=target/release/sluice
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# tokens/s of one test from a tool's JSON output
tps() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["avg_ts"])' "$1"; }

for r in $(seq "$ROUNDS"); do
    for test in pp tg; do
        if [ $test = pp ]; then args=(-p "$PP" -n 0); else args=(-p 0 -n "$TG"); fi
        "$LLAMA_BIN/llama-bench" -m "$MODEL" "${args[@]}" -r 1 -t "$THREADS" $LLAMA_ARGS -o json \
            >"$WORK/llama-$test-$r.json" 2>"$WORK/llama-$test-$r.err"
        "$SLUICE" bench -m "$MODEL" "${args[@]}" -r 1 -t "$THREADS" -o json \
            >"$WORK/sluice-$test-$r.json" 2>"$WORK/sluice-$test-$r.err"
        echo "round $r $test: llama.cpp $(tps "$WORK/llama-$test-$r.json") t/s, sluice $(tps "$WORK/sluice-$test-$r.json") t/s" >&2
    done
done

python3 - "$WORK" "$ROUNDS" "$MODEL" "$PP" "$TG" "$THREADS" "${BYTES_PER_TOKEN:-}" "${READ_BW:-}" <<'PY'
import json, os, statistics, sys, time
work, rounds, model, pp, tg, threads, bpt, bw = sys.argv[1:9]
rounds = int(rounds)
def series(tool, test):
    return [json.load(open(f"{work}/{tool}-{test}-{r}.json"))[0]["avg_ts"] for r in range(1, rounds + 1)]
def bandwidth(n_threads):
    """Read bandwidth with n_threads threads each summing its own 512 MiB array (numpy's
    reductions release the GIL)."""
    import threading
    import numpy as np
    arrays = [np.ones(1 << 26, dtype=np.float64) for _ in range(n_threads)]
    for a in arrays:
        a.sum()
    best = 0.0
    for _ in range(5):
        threads = [threading.Thread(target=a.sum) for a in arrays]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        best = max(best, sum(a.nbytes for a in arrays) / (time.perf_counter() - t))
    return best
print(f"model {os.path.basename(model)}, {threads} threads, {rounds} alternating rounds\n")
print("| test | llama.cpp t/s (median) | sluice t/s (median) | sluice / llama.cpp |")
print("|---|---|---|---|")
medians = {}
for test, label in (("pp", f"pp{pp}"), ("tg", f"tg{tg}")):
    l, s = statistics.median(series("llama", test)), statistics.median(series("sluice", test))
    medians[test] = (l, s)
    print(f"| {label} | {l:.2f} | {s:.2f} | {s / l:.3f} |")
def weight_bytes_per_token():
    """Bytes of weights one decoded token reads: every tensor except the token embedding
    (one row is read; unless it doubles as the output matrix), and of the routed experts only the share used (expert_used_count /
    expert_count), from `sluice info --json`."""
    import subprocess
    info = json.loads(subprocess.run(["target/release/sluice", "info", "--json", model],
                                     capture_output=True, check=True).stdout)
    meta = {m["key"]: m["value"] for m in info["metadata"]}
    arch = meta.get("general.architecture", "")
    used, total = meta.get(f"{arch}.expert_used_count"), meta.get(f"{arch}.expert_count")
    share = used / total if used and total else 1.0
    n = 0.0
    tied = not any(t["name"] == "output.weight" for t in info["tensors"])
    for t in info["tensors"]:
        if t["name"] == "token_embd.weight" and not tied:
            continue
        n += t["bytes"] * (share if "_exps." in t["name"] else 1.0)
    return n
bytes_per_token = float(bpt) if bpt else weight_bytes_per_token()
read_bw = float(bw) if bw else bandwidth(int(threads))
l, s = medians["tg"]
print(f"\ndecode bandwidth use: {bytes_per_token / 1e9:.3f} GB per token, read bandwidth {read_bw / 1e9:.1f} GB/s: "
      f"llama.cpp {100 * bytes_per_token * l / read_bw:.0f} %, sluice {100 * bytes_per_token * s / read_bw:.0f} %")
PY
