#!/usr/bin/env bash
# Installs and fetches what the test suite needs on a fresh Debian machine with a Rust toolchain.
# Idempotent; everything downloaded is cached outside the repository under
# ${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}. Nothing here builds llama.cpp: the committed
# goldens were made with it, and only its sources (tokenizer suites, gguf-py) are needed.
#
#   apt: Mesa's software Vulkan (lavapipe) for the GPU tests, Chromium and Node.js for the
#        browser tests
#   rustup: the wasm32 target (core and the web crate are built for the browser)
#   the pinned llama.cpp sources (tests/reference/llama-cpp.sh --src)
#   the real DeepSeek-V3 tokenizer vocabulary (tests/gen/deepseek_vocab.sh)
#   SmolLM2-135M-Instruct Q4_1 (tests/gen/smollm2.sh)
#   the float fixture models, regenerated bit-identically (tests/gen/make_fixtures.py --float-only)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ] || need_apt+=(mesa-vulkan-drivers libvulkan1)
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
python3 -c "import numpy" 2>/dev/null || python3 -m pip install --quiet numpy==1.26.4
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet PyYAML==6.0.2

tests/reference/llama-cpp.sh --src >/dev/null
[ -x tests/gen/deepseek_vocab.sh ] && tests/gen/deepseek_vocab.sh >/dev/null
[ -x tests/gen/smollm2.sh ] && tests/gen/smollm2.sh >/dev/null
[ -f tests/gen/make_fixtures.py ] && python3 tests/gen/make_fixtures.py --float-only >&2
echo "setup: done" >&2
