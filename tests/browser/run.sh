#!/usr/bin/env bash
# Browser tests: builds the wasm package and the CLI, serves the fixtures and the demo page
# with `sluice serve --www`, asks the CLI for reference tokens, and drives the page in headless
# Chromium with Playwright (page.test.mjs). Exits non-zero when any test fails.
#
# usage: tests/browser/run.sh
# env:   SLUICE_BROWSER_BACKENDS  comma list (default: webgpu,cpu)
#        SLUICE_FIXTURES          fixture root (default: tests/fixtures)
#        SLUICE_BROWSER_SMOLLM2=0 skip the SmolLM2 case (default: run it; it is fetched by
#                                 tests/gen/smollm2.sh, 98 MB, cached outside the repo)
#        CHROMIUM                 browser binary (default: /usr/bin/chromium, installed with
#                                 apt-get when missing and running as root)
# Needs: cargo, node ≥ 20 with npm, python3 (for the golden files), Debian's chromium.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BACKENDS=${SLUICE_BROWSER_BACKENDS:-webgpu,cpu}
FIXTURES=${SLUICE_FIXTURES:-$ROOT/tests/fixtures}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "no browser at $CHROMIUM: apt-get install chromium, or set CHROMIUM" >&2
    exit 1
  fi
fi

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release -p sluice
SLUICE=$TARGET_DIR/release/sluice
web/build.sh

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The served directory: the fixtures, linked (or copied) in, since serve only follows links
# that stay inside its root.
MODELS=$WORK/models
mkdir -p "$MODELS/split"
place() { ln "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
place "$FIXTURES/models/tiny-deepseek-v3.gguf" "$MODELS/tiny-deepseek-v3.gguf"
for part in "$FIXTURES"/models/split/tiny-deepseek-v3-0000?-of-00003.gguf; do
  place "$part" "$MODELS/split/$(basename "$part")"
done
SMOLLM2=
if [ "${SLUICE_BROWSER_SMOLLM2:-1}" != 0 ]; then
  SMOLLM2=$(tests/gen/smollm2.sh)
  place "$SMOLLM2" "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
fi

"$SLUICE" serve "$MODELS" --port 0 --www > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  BASE=$(sed -n 's|^serving .* at \(http://[^ ]*\)/ .*|\1|p' "$WORK/serve.log")
  [ -n "$BASE" ] && break
  sleep 0.1
done
[ -n "${BASE:-}" ] || { cat "$WORK/serve.log" >&2; echo "sluice serve did not start" >&2; exit 1; }
echo "serving at $BASE" >&2

# Reference tokens from the CLI: one chat turn, greedy, the same prompt as the page.
native() { # model prompt n
  "$SLUICE" run -m "$1" -p "$2" --conversation --single-turn --temp 0 -n "$3" \
    --print-token-ids --no-display-prompt < /dev/null 2> "$WORK/native.err" > /dev/null \
    || { cat "$WORK/native.err" >&2; exit 1; }
  grep '^{"prompt_token_ids"' "$WORK/native.err" | head -1
}

python3 - "$FIXTURES" "$BACKENDS" > "$WORK/plan.json" <<'PY'
import json, sys
fixtures, backends = sys.argv[1], sys.argv[2].split(",")
tiny = json.load(open(f"{fixtures}/golden/tiny-deepseek-v3.json"))
steps = min(tiny["conditioning"]["greedy_steps_before_first_near_tie"].values())
cases = [
    {"name": "tiny-deepseek-v3", "model": "/tiny-deepseek-v3.gguf",
     "prompt": "Create a Flappy Bird game in Python.", "n": tiny["greedy"]["n_predict"],
     "steps": steps, "backends": backends, "streamsExperts": True, "expertBudgetMB": 0.05},
    {"name": "tiny-deepseek-v3-split", "model": "/split/tiny-deepseek-v3-00002-of-00003.gguf",
     "prompt": "Create a Flappy Bird game in Python.", "n": tiny["greedy"]["n_predict"],
     "steps": steps, "backends": ["cpu"], "streamsExperts": True},
]
smol = json.load(open(f"{fixtures}/golden/smollm2-135m-instruct-q4_1.json"))["greedy"][0]
user = smol["prompt_text"].split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
cases.append({"name": "smollm2-135m", "model": "/SmolLM2-135M-Instruct.Q4_1.gguf",
              "prompt": user, "n": len(json.loads(smol["ids"]) if isinstance(smol["ids"], str) else smol["ids"]),
              "steps": int(smol["steps_before_near_tie"]), "backends": backends})
json.dump(cases, sys.stdout)
PY

# Native reference per case (prompts hold no tabs or newlines).
python3 -c 'import json,sys
for c in json.load(open(sys.argv[1])): print(c["name"], c["model"], c["n"], c["prompt"], sep="\t")' \
  "$WORK/plan.json" > "$WORK/plan.tsv"
while IFS=$'\t' read -r name model n prompt; do
  if [ -f "$MODELS$model" ]; then
    native "$MODELS$model" "$prompt" "$n" > "$WORK/native-$name.json"
  fi
done < "$WORK/plan.tsv"
python3 - "$WORK" > "$WORK/cases.json" <<'PY'
import json, os, sys
work = sys.argv[1]
cases = []
for c in json.load(open(f"{work}/plan.json")):
    ref = f"{work}/native-{c['name']}.json"
    if os.path.exists(ref):
        c["native"] = json.load(open(ref))
        cases.append(c)
json.dump(cases, sys.stdout)
PY

export SLUICE_BASE_URL=$BASE
export SLUICE_CASES=$WORK/cases.json
export SLUICE_SCREENSHOTS=$TARGET_DIR/browser-screenshots
echo "screenshots: $SLUICE_SCREENSHOTS" >&2
cd tests/browser
node --test --test-concurrency=1 --test-reporter=spec page.test.mjs
