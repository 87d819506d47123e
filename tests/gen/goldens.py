"""Reference outputs of llama.cpp for the tiny DeepSeek fixtures (golden JSON + raw logits).

What: for one model file, runs our llama.h driver (tests/gen/llama_ref.cpp) to get
  * the logits at every position of a fixed token sequence decoded as one batch
    (default settings: flash attention auto, which is on for the CPU backend, f16 cache);
  * the top-1 minus top-2 logit gap per position;
  * greedy continuations (32 tokens, one token per decode) with f16, q8_0 and optionally f32
    caches;
  * the noise floor: KL divergence and top-1 agreement between flash attention on and off
    (f16 cache), i.e. how much two llama.cpp code paths already disagree;
  * for MoE models, routing statistics from the graph callback: how often the selection bias
    and the group limit change the chosen experts, and the selection margins.
Why: sluice's forward-pass tests compare against these numbers; the noise floor tells them
what "as close as llama.cpp is to itself" means. The format is documented in
tests/fixtures/README.md.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NEAR_TIE = 0.1  # a top-1/top-2 logit gap below this counts as a near-tie


def dump_json(value, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars (and of such lists) kept on one line."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [inner + dump_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Driver:
    """Thin wrapper over the compiled llama_ref binary."""

    binary: Path
    threads: int = 2

    def _run(self, args: list[str]) -> dict:
        done = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              errors="replace")
        if done.returncode != 0:
            raise RuntimeError(f"llama_ref {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def _opts(self, tokens: list[int], fa: str, cache: str) -> list[str]:
        return ["--fa", fa, "--ctk", cache, "--ctv", cache, "--threads", str(self.threads),
                "--tokens", ",".join(map(str, tokens))]

    def info(self) -> dict:
        return self._run(["info"])

    def tokenize(self, model: Path, text: str) -> list[int]:
        return self._run(["tokenize", str(model), text])["ids"]

    def detokenize(self, model: Path, ids: list[int]) -> str:
        return self._run(["detokenize", str(model), ",".join(map(str, ids))])["text"]

    def logits(self, model: Path, tokens: list[int], out: Path, fa: str = "auto",
               cache: str = "f16") -> np.ndarray:
        meta = self._run(["logits", str(model), str(out), *self._opts(tokens, fa, cache)])
        data = np.fromfile(out, dtype="<f4")
        return data.reshape(meta["n_tokens"], meta["n_vocab"])

    def greedy(self, model: Path, tokens: list[int], n_predict: int, fa: str = "auto",
               cache: str = "f16") -> dict:
        return self._run(["greedy", str(model), *self._opts(tokens, fa, cache),
                          "--n-predict", str(n_predict)])

    def route(self, model: Path, tokens: list[int], out: Path) -> dict[str, np.ndarray]:
        self._run(["route", str(model), str(out), *self._opts(tokens, "auto", "f16")])
        return read_route_file(out)


def read_route_file(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    records: dict[str, np.ndarray] = {}
    pos = 0
    while pos < len(raw):
        (name_len,) = struct.unpack_from("<I", raw, pos)
        name = raw[pos + 4: pos + 4 + name_len].decode()
        pos += 4 + name_len
        kind, ne0, ne1 = struct.unpack_from("<III", raw, pos)
        pos += 12
        dtype = "<f4" if kind == 0 else "<i4"
        count = ne0 * ne1
        records[name] = np.frombuffer(raw, dtype=dtype, count=count, offset=pos).reshape(ne1, ne0)
        pos += 4 * count
    return records


def top_two_gaps(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: arg-max (first on ties) and top-1 minus top-2 value."""
    top1 = np.argmax(logits, axis=1)
    part = np.sort(logits, axis=1)
    return top1, part[:, -1] - part[:, -2]


def kl_rows(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(p) || softmax(q)) per row, in float64."""
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    # KL >= 0; rounding can leave -1e-18 on identical rows
    return np.maximum((np.exp(lp) * (lp - lq)).sum(axis=1), 0.0)


def steps_before_near_tie(gaps: list[float]) -> int:
    for i, gap in enumerate(gaps):
        if gap < NEAR_TIE:
            return i
    return len(gaps)


def _top_k(scores: np.ndarray, k: int) -> list[int]:
    # stable: equal scores keep index order (llama.cpp's order on exact ties is unspecified)
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def routing_stats(route: dict[str, np.ndarray], bias: dict[int, np.ndarray], n_group: int,
                  n_group_used: int, k: int) -> dict:
    """Compares llama.cpp's chosen experts with plain top-k, biased top-k and our re-derivation."""
    layers = sorted(int(name.split("-")[1]) for name in route if name.startswith("ffn_moe_probs-"))
    out_layers = []
    for il in layers:
        probs = route[f"ffn_moe_probs-{il}"].astype(np.float64)
        chosen = route[f"ffn_moe_topk-{il}"]
        n_tok, n_expert = probs.shape
        b = bias.get(il, np.zeros(n_expert))
        per_group = n_expert // n_group if n_group > 1 else n_expert
        plain_differs = bias_changes = group_changes = rederived_mismatch = 0
        margins, group_margins = [], []
        for t in range(n_tok):
            sel = probs[t] + b
            plain = _top_k(probs[t], k)
            biased = _top_k(sel, k)
            masked = sel.copy()
            group_margin = np.inf
            if n_group > 1:
                groups = sel.reshape(n_group, per_group)
                group_score = np.sort(groups, axis=1)[:, -2:].sum(axis=1)
                order = np.argsort(-group_score, kind="stable")
                keep = order[:n_group_used]
                group_margin = float(group_score[order[n_group_used - 1]] -
                                     group_score[order[n_group_used]])
                group_margins.append(group_margin)
                for g in range(n_group):
                    if g not in keep:
                        masked[g * per_group:(g + 1) * per_group] = -np.inf
            final = _top_k(masked, k)
            ranked = np.sort(masked[np.isfinite(masked)])[::-1]
            # the smallest change of the scores that could change the chosen set
            margins.append(min(float(ranked[k - 1] - ranked[k]) if len(ranked) > k else np.inf,
                               group_margin))
            actual = [int(e) for e in chosen[t]]
            plain_differs += set(actual) != set(plain)
            bias_changes += set(biased) != set(plain)
            group_changes += set(final) != set(biased)
            rederived_mismatch += set(final) != set(actual)
        out_layers.append({
            "layer": il,
            "n_tokens": n_tok,
            "tokens_where_chosen_differs_from_plain_topk": plain_differs,
            "tokens_where_bias_changes_topk": bias_changes,
            "tokens_where_group_limit_changes_topk": group_changes,
            "tokens_where_python_rederivation_differs": rederived_mismatch,
            "selection_margin_min": min(margins),
            "selection_margin_median": float(np.median(margins)),
            "tokens_with_selection_margin_lt_1e-3": int(sum(m < 1e-3 for m in margins)),
            "tokens_with_selection_margin_lt_1e-2": int(sum(m < 1e-2 for m in margins)),
            "group_margin_min": min(group_margins) if group_margins else None,
            "tokens_with_group_margin_lt_1e-3": int(sum(m < 1e-3 for m in group_margins)),
            "selection_margins": [round(m, 6) for m in margins],
        })
    return {"k": k, "n_group": n_group, "n_group_used": n_group_used, "layers": out_layers}


def condition_sequence(driver: Driver, models: list[tuple[Path, dict | None]],
                       preferred: list[int], candidates: list[int], min_gap: float,
                       min_margin: float, seed: int, work_dir: Path,
                       max_tries: int = 200) -> tuple[list[int], list[int]]:
    """The teacher-forced sequence: `preferred` (the chat prompt's tokens) with the tokens
    replaced that leave llama.cpp close to a coin toss on some fixture.

    Position p's next-token distribution depends on tokens 0..p only, so the sequence is built
    left to right: position p keeps the preferred token when, on every model, llama.cpp's
    top-1/top-2 logit gap there is at least `min_gap` and (MoE models, `routing` given) every
    layer's expert-selection margin is at least `min_margin`; otherwise the first of
    `candidates` (in a seeded random order) that passes takes its place. On such a sequence the
    KL divergence measures how closely two engines compute the same distribution instead of
    which side of a near-tie each one's rounding falls on (a near-tie turns the ~1-logit
    difference between llama.cpp's own flash-attention paths into a KL of 0.1 at that one
    position, and so into most of a 28-position mean). Returns the sequence and the positions
    whose token was replaced.
    """
    order = [int(t) for t in np.random.default_rng(seed).permutation(candidates)]
    sequence = [preferred[0]]
    replaced: list[int] = []

    def conditioned(prefix: list[int]) -> bool:
        for model, routing in models:
            gap = driver.greedy(model, prefix, 1)["gaps"][0]
            if gap < min_gap:
                return False
            if routing is not None:
                args = (routing["bias"], routing["n_group"], routing["n_group_used"], routing["k"])
                route = driver.route(model, prefix, work_dir / "condition.bin")
                if any(layer["selection_margins"][-1] < min_margin
                       for layer in routing_stats(route, *args)["layers"]):
                    return False
        return True

    work_dir.mkdir(parents=True, exist_ok=True)
    if not conditioned(sequence):
        raise RuntimeError("the first token alone leaves a near-tie; change the models' init")
    for p in range(1, len(preferred)):
        tries = [preferred[p]] + [t for t in order if t != preferred[p]]
        for token in tries[:max_tries]:
            if conditioned(sequence + [token]):
                break
        else:
            raise RuntimeError(f"no token of {max_tries} conditions position {p}")
        if token != preferred[p]:
            replaced.append(p)
        sequence.append(token)
    return sequence, replaced


def make_golden(driver: Driver, model: Path, logits_path: Path, sequence: list[int],
                prompt: list[int], n_predict: int, extra_caches: list[str],
                routing: dict | None, work_dir: Path) -> dict:
    """Runs every reference measurement for one model; writes the logits file."""
    work_dir.mkdir(parents=True, exist_ok=True)
    logits_auto = driver.logits(model, sequence, work_dir / "auto.f32", fa="auto")
    logits_on = driver.logits(model, sequence, work_dir / "on.f32", fa="on")
    logits_off = driver.logits(model, sequence, work_dir / "off.f32", fa="off")
    if not np.array_equal(logits_auto, logits_on):
        raise RuntimeError(f"{model}: flash attention auto is not the same as on")
    logits_path.parent.mkdir(parents=True, exist_ok=True)
    logits_auto.astype("<f4").tofile(logits_path)

    top1, gaps = top_two_gaps(logits_auto)
    top1_off, _ = top_two_gaps(logits_off)
    kl = kl_rows(logits_on, logits_off)

    greedy = {}
    for cache in ["f16", "q8_0", *extra_caches]:
        # a quantized MLA cache needs flash attention; auto switches it on
        run = driver.greedy(model, prompt, n_predict, fa="auto", cache=cache)
        run["steps_before_near_tie"] = steps_before_near_tie(run["gaps"])
        greedy[cache] = run

    # the same greedy run through the other attention kernel: how far llama.cpp agrees with itself
    fa_off = driver.greedy(model, prompt, n_predict, fa="off", cache="f16")
    agree = next((i for i, (a, b) in enumerate(zip(greedy["f16"]["ids"], fa_off["ids"])) if a != b),
                 n_predict)
    diff = np.abs(logits_on - logits_off).max(axis=1)
    # typical size of llama.cpp's own disagreement; the maximum is dominated by the few positions
    # where the two paths pick different experts
    noise = float(np.median(diff))

    golden = {
        "sequence": {"tokens": sequence},
        "logits": {
            "file": logits_path.name,
            "dtype": "f32le",
            "shape": [int(logits_auto.shape[0]), int(logits_auto.shape[1])],
            "flash_attn": "auto",
            "cache_type": "f16",
            "sha256": sha256_of(logits_path),
        },
        "top1": [int(x) for x in top1],
        "gaps": [round(float(g), 6) for g in gaps],
        "greedy": {"prompt_tokens": prompt, "n_predict": n_predict, "runs": greedy},
        "noise_floor": {
            "compared": "flash attention on vs off, f16 cache, same tokens, one batch",
            "kl_mean": float(kl.mean()),
            "kl_max": float(kl.max()),
            "top1_agreement": float((top1 == top1_off).mean()),
            "max_abs_logit_diff": float(diff.max()),
            "median_over_positions_of_max_abs_logit_diff": noise,
            "greedy_f16_fa_off_ids": fa_off["ids"],
            "greedy_steps_agreeing_fa_on_off": agree,
        },
        "conditioning": {
            "near_tie_threshold": NEAR_TIE,
            "frac_positions_gap_ge_threshold": float((gaps >= NEAR_TIE).mean()),
            "greedy_steps_before_first_near_tie": {c: r["steps_before_near_tie"] for c, r in greedy.items()},
            "frac_positions_gap_ge_noise_floor": float((gaps >= noise).mean()),
            "greedy_steps_before_gap_below_noise_floor": {
                c: next((i for i, g in enumerate(r["gaps"]) if g < noise), n_predict)
                for c, r in greedy.items()
            },
        },
    }
    if routing is not None:
        args = (routing["bias"], routing["n_group"], routing["n_group_used"], routing["k"])
        long_run = routing_stats(driver.route(model, routing["tokens"], work_dir / "r1.bin"), *args)
        for layer in long_run["layers"]:
            del layer["selection_margins"]
        on_sequence = routing_stats(driver.route(model, sequence, work_dir / "r2.bin"), *args)
        golden["routing"] = {
            "text_tokens": len(routing["tokens"]),
            "on_text": long_run,
            "sequence_selection_margins": {
                str(layer["layer"]): layer["selection_margins"] for layer in on_sequence["layers"]
            },
        }
    return golden
