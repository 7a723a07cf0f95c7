"""Which measure finds the token the model used? (issue 15: beyond raw weights)

Three tasks where the right source token is known:

- ``recall``: the ``long-range`` experiment's task and Transformer (its code, its settings): the
  answer is the value token d positions before the query;
- ``copy``: a random segment of ``length`` distinct tokens, after up to ``prefix`` noise tokens,
  is repeated; at the j-th token of the repeat the next token is read from position j + 1 of the
  first copy (what an induction head attends to). A 2-layer GPT is trained on it here;
- ``coreference``: the 30 minimal pairs of the ``coreference`` experiment on the real MiniLM: the
  source of "it" is its antecedent, scored against the other candidate (chance 0.5).

For one query position per example, each measure scores every token; a measure is right when the
source scores strictly above every other candidate (a tie counts as wrong). Candidates: every
position before the query (recall, copy: chance ≈ 1/q), the two antecedents (coreference). The
query itself is never a candidate: rollout's residual term alone gives it at least (½)^L.

Measures (``attnlab.measures``), all read at the query's row:
- ``attention``: the last layer's weights, mean over heads;
- ``best_head``: the single head (any layer) that ranks the source first most often on the other
  fold (2 folds: heads are chosen on one half and scored on the other);
- ``rollout``: attention rollout, head mean, residual ½ (Abnar & Zuidema);
- ``value_norms``: ‖Σ_h α_ij f_h(x_j)‖ of the last layer (Kobayashi et al.);
- ``grad_attention``: A ⊙ ∂output/∂A summed over layers and heads; output = the right answer's
  logit at the query (recall, copy) or ‖h_it‖ at the last layer (coreference: MiniLM is an
  encoder without a language-model head, so no answer logit exists);
- ``ablation_head``: head_effects ranks heads, not tokens, so this is the attention of the head
  whose mean-ablation changes that output most (largest |effect|, chosen on the other fold).

Dimension legend: B examples, L layers, H heads, T tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.experiments import long_range
from attnlab.experiments.common import LMBatch, train_steps
from attnlab.experiments.coreference import load_pairs
from attnlab.experiments.results import save_figure, write_json
from attnlab.inspection.capture import capture
from attnlab.measures import grad_attention, head_effects, rollout, value_norms
from attnlab.measures.layers import attention_layers
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT

__all__ = ["MEASURES", "CopyTask", "Examples", "FaithfulnessConfig", "evaluate", "run",
           "token_scores"]  # fmt: skip

MEASURES = ("attention", "best_head", "rollout", "value_norms", "grad_attention",
            "ablation_head")  # fmt: skip


@dataclass(frozen=True)
class CopyTask:
    values: int = 32  # segment tokens 0..values−1; noise tokens values..2·values−1
    length: int = 8  # n: the segment, then its repeat
    prefix: int = 8  # up to this many noise tokens before the segment

    @property
    def vocab_size(self) -> int:
        return 2 * self.values

    @property
    def total(self) -> int:
        return self.prefix + 2 * self.length

    def _draw(self, g: torch.Generator, batch: int) -> tuple[Tensor, Tensor]:
        """ids (B, T) and the segment's start (B,)."""
        n = self.length
        ids = torch.randint(self.values, 2 * self.values, (batch, self.total), generator=g)
        segment = torch.rand(batch, self.values, generator=g).argsort(-1)[:, :n]  # distinct
        start = torch.randint(0, self.prefix + 1, (batch,), generator=g)
        where = start[:, None] + torch.arange(n)  # (B, n)
        ids.scatter_(1, where, segment).scatter_(1, where + n, segment)
        return ids, start

    def batch(self, g: torch.Generator, batch: int) -> LMBatch:
        """Training batch: every position of the repeat but its last predicts the next token."""
        ids, start = self._draw(g, batch)
        n = self.length
        where = start[:, None] + n + torch.arange(n - 1)  # (B, n − 1)
        targets = torch.full_like(ids, -100).scatter_(1, where, ids.gather(1, where + 1))
        return ids, targets

    def examples(self, g: torch.Generator, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """ids (B, T), one query per example (B,) and its source (B,): the query is the j-th
        token of the repeat (j random), the source position j + 1 of the first copy."""
        ids, start = self._draw(g, batch)
        j = torch.randint(0, self.length - 1, (batch,), generator=g)
        return ids, start + self.length + j, start + j + 1


@dataclass(frozen=True)
class FaithfulnessConfig:
    distance: int = 32  # recall: d
    recall: long_range.LongRangeConfig = field(default_factory=long_range.LongRangeConfig)
    copy: CopyTask = field(default_factory=CopyTask)
    copy_steps: int = 300
    copy_lr: float = 2e-3
    examples: int = 256  # per task, split into 2 folds (coreference: all its pairs)
    pairs: int | None = None  # coreference: the first n pairs; None = all
    seed: int = 0

    @classmethod
    def quick(cls) -> FaithfulnessConfig:
        return cls(distance=8, recall=long_range.LongRangeConfig.quick(),
                   copy=CopyTask(values=8, length=4, prefix=2), copy_steps=20, examples=16,
                   pairs=4)  # fmt: skip


@dataclass
class Examples:
    """One fold: the model's keyword inputs (batch B), the query (B,) whose row the measures
    read, the source (B,) that holds the answer, the candidates (B, T) bool a measure may name
    (source included, query excluded), and the scalar ``output`` the gradient and the
    ablation explain (a sum over the batch of one number per example)."""

    inputs: dict[str, Tensor]
    query: Tensor
    source: Tensor
    candidates: Tensor
    output: Callable[[Any], Tensor]


def _row(x: Tensor, query: Tensor) -> Tensor:
    """x (B, ..., T, T) → the query's row of every example: (B, ..., T)."""
    return x.movedim(-2, 1)[torch.arange(x.shape[0]), query]


def token_scores(model: nn.Module, ex: Examples) -> dict[str, Tensor]:
    """Each measure's score of every token at the query row: ``heads`` (B, L, H, T) (raw
    weights of every head) and ``attention``, ``rollout``, ``value_norms``, ``grad_attention``
    (B, T)."""
    names = list(attention_layers(model))
    with torch.no_grad(), capture(model) as maps:
        model(**ex.inputs)
    heads = torch.stack([_row(maps[name].dense(), ex.query) for name in names], 1)
    norms = value_norms(model, ex.inputs, layer=names[-1], combine_heads=True)[names[-1]]
    grads = grad_attention(model, ex.inputs, ex.output)
    return {
        "heads": heads,
        "attention": heads[:, -1].mean(1),
        "rollout": _row(rollout(maps), ex.query),
        "value_norms": _row(norms, ex.query),
        "grad_attention": _row(sum(g.sum(1) for g in grads.values()), ex.query),
    }


def ranks_first(scores: Tensor, ex: Examples) -> Tensor:
    """scores (B, ..., T) → (B, ...) bool: the source scores strictly above every other
    candidate."""
    B, T = scores.shape[0], scores.shape[-1]
    flat = scores.reshape(B, -1, T)
    source = flat.gather(-1, ex.source.view(B, 1, 1).expand(B, flat.shape[1], 1))[..., 0]
    rivals = ex.candidates.clone()
    rivals[torch.arange(B), ex.source] = False
    best_rival = flat.masked_fill(~rivals[:, None], float("-inf")).amax(-1)
    return (source > best_rival).reshape(scores.shape[:-1])


def _chosen_heads(model: nn.Module, folds: list[Examples], scored: list[dict], i: int
                  ) -> tuple[tuple[int, int, float], tuple[int, int, float]]:  # fmt: skip
    """For fold i, chosen on the other folds: the head ranking the source first most often
    (layer, head, rate there) and the head whose mean-ablation moves the output most (layer,
    head, summed effect)."""
    others = [j for j in range(len(folds)) if j != i]
    per_head = torch.cat([ranks_first(scored[j]["heads"], folds[j]) for j in others]).float()
    rate = per_head.mean(0)  # (L, H)
    effects = sum(head_effects(model, folds[j].inputs, folds[j].output, mode="mean")
                  for j in others)  # fmt: skip
    H = rate.shape[1]
    best, ablated = int(rate.argmax()), int(effects.abs().argmax())
    return ((*divmod(best, H), float(rate.flatten()[best])),
            (*divmod(ablated, H), float(effects.flatten()[ablated])))  # fmt: skip


def evaluate(model: nn.Module, folds: list[Examples]) -> dict:
    """How often each measure ranks the source first, over all folds' examples; heads are
    chosen on the other folds."""
    if len(folds) < 2:
        raise ValueError(f"evaluate needs at least 2 folds to choose heads on held-out data; "
                         f"got {len(folds)}")  # fmt: skip
    scored = [token_scores(model, fold) for fold in folds]
    right: dict[str, list[Tensor]] = {m: [] for m in MEASURES}
    chosen: dict[str, list[dict]] = {"best_head": [], "ablation_head": []}
    for i, (fold, scores) in enumerate(zip(folds, scored, strict=True)):
        for measure in ("attention", "rollout", "value_norms", "grad_attention"):
            right[measure].append(ranks_first(scores[measure], fold))
        best, ablated = _chosen_heads(model, folds, scored, i)
        for measure, (layer, head, value) in (("best_head", best), ("ablation_head", ablated)):
            right[measure].append(ranks_first(scores["heads"][:, layer, head], fold))
            key = "held_out_rate" if measure == "best_head" else "effect"
            chosen[measure].append({"fold": i, "layer": layer, "head": head, key: value})
    candidates = torch.cat([f.candidates.sum(-1) for f in folds]).float()
    return {
        "examples": int(candidates.numel()),
        "chance": float((1 / candidates).mean()),
        "rates": {m: float(torch.cat(r).float().mean()) for m, r in right.items()},
        "chosen_heads": chosen,
    }


def _answer_logit(query: Tensor, answer: Tensor) -> Callable[[Any], Tensor]:
    rows = torch.arange(len(query))
    return lambda out: out.logits[rows, query, answer].sum()


def lm_folds(ids: Tensor, query: Tensor, source: Tensor) -> list[Examples]:
    """Two folds of a language model's examples: candidates are the positions before the
    query; the output is the right answer's (the source token's) logit at the query."""
    half = len(ids) // 2
    folds = []
    for part in (slice(0, half), slice(half, None)):
        x, q, s = ids[part], query[part], source[part]
        before = torch.arange(x.shape[1]) < q[:, None]
        answer = x[torch.arange(len(x)), s]
        folds.append(Examples({"input_ids": x}, q, s, before, _answer_logit(q, answer)))
    return folds


@torch.no_grad()
def _lm_accuracy(model: nn.Module, folds: list[Examples]) -> float:
    """How often the model's top prediction at the query is the source's token."""
    right = []
    for f in folds:
        ids = f.inputs["input_ids"]
        rows = torch.arange(len(ids))
        right.append(model(ids).logits[rows, f.query].argmax(-1) == ids[rows, f.source])
    return float(torch.cat(right).float().mean())


def _recall(config: FaithfulnessConfig) -> tuple[nn.Module, list[Examples], dict]:
    task = long_range.RecallTask(config.distance)
    model, trained = long_range.train("transformer", task, config.recall)
    g = torch.Generator().manual_seed(config.seed + 20_000)
    ids, targets = task.batch(g, config.examples)
    query = (targets != -100).int().argmax(-1)  # the one scored position
    folds = lm_folds(ids, query, query - config.distance)
    info = {"model": f"long-range Transformer, d = {config.distance}",
            "accuracy": _lm_accuracy(model, folds),
            "final_train_loss": trained.losses[-1]}  # fmt: skip
    return model, folds, info


def _copy(config: FaithfulnessConfig) -> tuple[nn.Module, list[Examples], dict]:
    task = config.copy
    torch.manual_seed(config.seed)
    model = GPT(GPTConfig(vocab_size=task.vocab_size, max_len=task.total, n_layers=2,
                          n_heads=4, d_model=64))  # fmt: skip
    g = torch.Generator().manual_seed(config.seed + 1)
    steps = config.copy_steps
    trained = train_steps(model, lambda _: task.batch(g, 32), steps, lr=config.copy_lr,
                          warmup=steps // 6, desc="copy")  # fmt: skip
    folds = lm_folds(*task.examples(torch.Generator().manual_seed(config.seed + 20_000),
                                     config.examples))  # fmt: skip
    info = {"model": "GPT, 2 layers × 4 heads, D = 64", "accuracy": _lm_accuracy(model, folds),
            "final_train_loss": trained.losses[-1]}  # fmt: skip
    return model, folds, info


def _coreference(config: FaithfulnessConfig) -> tuple[nn.Module, list[Examples], dict]:
    from attnlab.inspection.pretrained import load_minilm

    model, tokenizer = load_minilm("sdpa")
    data = load_pairs()
    pairs = data["pairs"][: config.pairs]
    half = (len(pairs) + 1) // 2
    folds = []
    for part in (pairs[:half], pairs[half:]):  # a pair's two sentences stay in one fold
        sentences = [(p[s], p[f"answer_{s}"], p["candidates"]) for p in part for s in "ab"]
        enc = tokenizer([s for s, _, _ in sentences], padding=True, return_tensors="pt")
        tokens = [tokenizer.convert_ids_to_tokens(row) for row in enc["input_ids"]]
        query = torch.tensor([t.index(data["pronoun"]) for t in tokens])
        source = torch.tensor([t.index(a) for t, (_, a, _) in zip(tokens, sentences, strict=True)])
        candidates = torch.zeros(enc["input_ids"].shape, dtype=torch.bool)
        for row, (t, (_, _, words)) in enumerate(zip(tokens, sentences, strict=True)):
            candidates[row, [t.index(w) for w in words]] = True
        rows = torch.arange(len(query))
        output = lambda out, r=rows, q=query: out.last_hidden_state[r, q].norm(dim=-1).sum()  # noqa: E731
        folds.append(Examples(dict(enc), query, source, candidates, output))
    return model, folds, {"model": "all-MiniLM-L6-v2", "pairs": len(pairs)}


TASKS = {"recall": _recall, "copy": _copy, "coreference": _coreference}


def run(config: FaithfulnessConfig, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)
    result: dict = {"config": asdict(config), "measures": list(MEASURES), "tasks": {}}
    for name, build in TASKS.items():
        model, folds, info = build(config)
        result["tasks"][name] = {**info, **evaluate(model, folds)}
    result["headline"] = {f"{task} {m}": round(r["rates"][m], 3)
                          for task, r in result["tasks"].items() for m in MEASURES}  # fmt: skip
    write_json(out_dir / "faithfulness.json", result)
    _figure(result, out_dir / "faithfulness.png")
    return result


def _figure(result: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tasks = list(result["tasks"])
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(MEASURES)
    for k, measure in enumerate(MEASURES):
        x = [t + (k - (len(MEASURES) - 1) / 2) * width for t in range(len(tasks))]
        rates = [result["tasks"][t]["rates"][measure] for t in tasks]
        ax.bar(x, rates, width, label=measure)
    for t, task in enumerate(tasks):
        ax.hlines(result["tasks"][task]["chance"], t - 0.45, t + 0.45, color="black", ls=":",
                  label="chance" if t == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([f"{t}\n({result['tasks'][t]['examples']} examples)" for t in tasks])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("ranks the source token first")
    ax.set_title("Which measure finds the token the model used?")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return save_figure(fig, path)
