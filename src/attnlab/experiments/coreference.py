"""Does "it" attend to "animal"? (the notes, §the "it" example)

On the real pretrained MiniLM (6 layers × 12 heads), a set of minimal pairs (``data/
coreference_pairs.json``; its ``source`` field says where they come from) such as

    The animal didn't cross the street because it was too tired.   → it = animal
    The animal didn't cross the street because it was too wide.    → it = street

For every head: the weight "it" puts on each candidate, read exactly with :func:`attnlab.inspect`.

- accuracy: the fraction of sentences in which the head weighs the right antecedent more. The
  answers are balanced inside each pair, so a head that ignores the deciding word and always
  prefers the same candidate scores exactly 0.5; only a head that switches can do better.
- switches: per pair, whether the head is right in both sentences (switched the right way),
  wrong in both (the wrong way) or right in one (did not switch).
- shift: how much weight moves towards the right candidate between the two sentences,
  (w_a(ans_a) − w_a(ans_b)) − (w_b(ans_a) − w_b(ans_b)), averaged over pairs; and a two-sided
  sign test on the shift's sign over the pairs, Bonferroni-corrected over all heads: does the
  head move weight towards the referent more often than chance? (Testing the continuous shift
  keeps the power a test on right-in-both pairs lacks when heads rarely flip.)

Dimension legend: P pairs, L layers, H heads.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from attnlab.experiments.results import save_figure, write_json
from attnlab.inspection.report import inspect

__all__ = ["CoreferenceConfig", "load_pairs", "run", "sign_test"]

PAIRS = Path(__file__).parent / "data" / "coreference_pairs.json"


@dataclass(frozen=True)
class CoreferenceConfig:
    pairs: int | None = None  # use the first n pairs; None = all
    alpha: float = 0.05  # family-wise significance level of the sign tests

    @classmethod
    def quick(cls) -> CoreferenceConfig:
        return cls(pairs=3)


def load_pairs(path: Path = PAIRS) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    for i, pair in enumerate(data["pairs"]):
        if {pair["answer_a"], pair["answer_b"]} != set(pair["candidates"]):
            raise ValueError(f"pair {i}: answers {pair['answer_a']!r}, {pair['answer_b']!r} must "
                             f"be the two candidates {pair['candidates']}")  # fmt: skip
    return data


def sign_test(k: int, n: int) -> float:
    """Two-sided p-value of k successes in n fair coin flips."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _weights(text: str, pronoun: str, candidates: list[str]) -> torch.Tensor:
    report = inspect(text)  # the packaged MiniLM
    return torch.stack([report.weight_between(pronoun, c) for c in candidates], -1)  # (L, H, 2)


def run(config: CoreferenceConfig, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    data = load_pairs()
    pairs = data["pairs"][: config.pairs]
    a_scores, b_scores = [], []  # each (L, H, 2) with [..., 0] = the pair's answer_a candidate
    for pair in tqdm(pairs, desc="pairs", leave=False):
        order = [pair["answer_a"], pair["answer_b"]]
        a_scores.append(_weights(pair["a"], data["pronoun"], order))
        b_scores.append(_weights(pair["b"], data["pronoun"], order))
    wa, wb = torch.stack(a_scores), torch.stack(b_scores)  # (P, L, H, 2)
    right_a = wa[..., 0] > wa[..., 1]  # sentence a: its answer is candidate 0
    right_b = wb[..., 1] > wb[..., 0]  # sentence b: its answer is candidate 1
    accuracy = (right_a.float().mean(0) + right_b.float().mean(0)) / 2  # (L, H)
    right_way = (right_a & right_b).sum(0)  # (L, H) pairs switched the right way
    wrong_way = (~right_a & ~right_b).sum(0)
    shifts = (wa[..., 0] - wa[..., 1]) - (wb[..., 0] - wb[..., 1])  # (P, L, H)
    shift = shifts.mean(0)  # (L, H)
    towards, away = (shifts > 0).sum(0), (shifts < 0).sum(0)  # (L, H) pairs
    L, H = accuracy.shape
    heads = []
    for layer in range(L):
        for head in range(H):
            k, m = int(right_way[layer, head]), int(wrong_way[layer, head])
            up, down = int(towards[layer, head]), int(away[layer, head])
            p = sign_test(up, up + down)  # does weight move to the right candidate, pair by pair?
            heads.append({"layer": layer, "head": head, "accuracy": float(accuracy[layer, head]),
                          "right_way": k, "wrong_way": m, "no_switch": len(pairs) - k - m,
                          "shift": float(shift[layer, head]), "shift_towards": up,
                          "shift_away": down, "p_value": p,
                          "significant": p * L * H < config.alpha})  # fmt: skip
    best = sorted(heads, key=lambda h: (-h["accuracy"], -h["shift"]))
    result = {
        "config": asdict(config), "model": "all-MiniLM-L6-v2", "source": data["source"],
        "pairs": len(pairs), "sentences": 2 * len(pairs), "heads": heads, "top_heads": best[:5],
        "significant_heads": [h for h in heads if h["significant"]],
        "mean_accuracy": float(accuracy.mean()),
        "heads_at_least_75_percent": sum(h["accuracy"] >= 0.75 for h in heads),
        "per_pair": [
            {"a": p["a"], "b": p["b"], "answers": [p["answer_a"], p["answer_b"]],
             "weights_a": wa[i].tolist(), "weights_b": wb[i].tolist()}
            for i, p in enumerate(pairs)
        ],
    }  # fmt: skip
    result["headline"] = {"best head accuracy": best[0]["accuracy"],
                            "mean head accuracy": result["mean_accuracy"]}  # fmt: skip
    write_json(out_dir / "coreference.json", result)
    _figure(result, accuracy, shift, wa, wb, out_dir / "coreference.png")
    return result


def _figure(result: dict, accuracy, shift, wa, wb, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(19, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    ax, bx, cx = axes
    im = ax.imshow(accuracy, cmap="RdBu", vmin=0, vmax=1)
    ax.set_title(f"accuracy per head, {result['sentences']} sentences\n(0.5 = never switches)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    limit = float(shift.abs().max()) or 1.0
    im = bx.imshow(shift, cmap="PiYG", vmin=-limit, vmax=limit)
    bx.set_title("shift: weight moved to the right\ncandidate between a and b")
    fig.colorbar(im, ax=bx, shrink=0.8)
    for a in (ax, bx):
        a.set_xlabel("head")
        a.set_ylabel("layer")
        for h in result["significant_heads"]:
            a.add_patch(plt.Rectangle((h["head"] - 0.5, h["layer"] - 0.5), 1, 1, fill=False,
                                      ec="black", lw=2))  # fmt: skip
    top = max(result["heads"], key=lambda h: h["shift"])  # the head that moves most
    layer, head = top["layer"], top["head"]
    n = len(result["per_pair"])
    x = torch.arange(n)
    # Margin of the pair's answer_a candidate over answer_b, in sentence a and in sentence b.
    cx.bar(x - 0.2, wa[:, layer, head, 0] - wa[:, layer, head, 1], 0.4, label="sentence a")
    cx.bar(x + 0.2, wb[:, layer, head, 0] - wb[:, layer, head, 1], 0.4, label="sentence b")
    cx.axhline(0, color="black", lw=0.8)
    cx.set_xlabel("pair")
    cx.set_ylabel("w(it→answer a) − w(it→answer b)")
    cx.set_title(
        f"largest shift: layer {layer} head {head} (right: a above 0, b below 0;\n"
        f"right in both for {top['right_way']} of {n} pairs)"
    )
    cx.legend(fontsize=8)
    fig.suptitle('Does "it" attend to its antecedent? MiniLM, minimal pairs', y=1.02)
    return save_figure(fig, path)
