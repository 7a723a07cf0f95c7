"""Multi-head vs one head (the notes, §multi-head attention).

H ∈ {1, 2, 4, 8} heads at the same width D: W_Q, W_K, W_V, W_O are D × D whatever H is, so every
model has exactly the same parameter count (reported). Each trains from the same seed on the same
batches, on two tasks:

- Shakespeare, character-level language modelling: validation loss (nats/char);
- the recall task of :mod:`attnlab.experiments.long_range` at one distance: validation loss and
  accuracy.

and for each model: how different its heads' patterns are, as the mean pairwise total-variation
distance between the heads' attention rows at the scored positions (every position of text; the
query position of recall; 0 = every head attends identically, 1 = to disjoint keys), averaged
over layers, on the same held-out windows / sequences for every model.

Dimension legend: B batch, H heads, T window.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from attnlab.experiments.common import CharCorpus, head_distance, train_steps
from attnlab.experiments.long_range import RecallTask
from attnlab.experiments.results import save_figure, write_json
from attnlab.inspection.capture import capture
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT
from attnlab.models.params import count_parameters

__all__ = ["HeadsConfig", "run"]


@dataclass(frozen=True)
class HeadsConfig:
    heads: tuple[int, ...] = (1, 2, 4, 8)
    d_model: int = 128
    n_layers: int = 2
    seeds: tuple[int, ...] = (0, 1)  # every (H, task) is trained once per seed
    plays: int | None = 6  # Shakespeare plays read
    max_chars: int | None = None
    context: int = 64  # LM window
    lm_steps: int = 1000
    recall_distance: int = 32
    recall_steps: int = 300
    batch: int = 32
    lr: float = 3e-3  # peak; linear warm-up for `warmup` steps, then cosine decay to lr/10
    warmup: int = 50
    eval_batches: int = 8

    @classmethod
    def quick(cls) -> HeadsConfig:
        return cls(heads=(1, 2), d_model=16, seeds=(0,), plays=1, max_chars=60_000,
                   context=16, lm_steps=10, recall_distance=4, recall_steps=10, batch=8,
                   warmup=2, eval_batches=1)  # fmt: skip


def _model(vocab: int, length: int, heads: int, config: HeadsConfig, seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, max_len=length, n_layers=config.n_layers,
                         n_heads=heads, d_model=config.d_model))  # fmt: skip


@torch.no_grad()
def evaluate(model: GPT, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Validation loss and accuracy over scored targets, and the mean head distance."""
    losses, correct, scored, distances = [], 0, 0, []
    for ids, targets in batches:
        with capture(model) as maps:
            logits = model(ids).logits  # (B, T, V)
        keep = targets != -100
        losses.append(F.cross_entropy(logits[keep], targets[keep]))
        correct += int((logits[keep].argmax(-1) == targets[keep]).sum())
        scored += int(keep.sum())
        # at the scored query rows (every row of text; the query position of recall)
        distances += [head_distance(m.dense(), keep) for m in maps.values()]  # one per layer
    distance = statistics.fmean(distances)
    return {"loss": float(torch.stack(losses).mean()), "accuracy": correct / scored,
            "head_distance": None if distance != distance else distance}  # fmt: skip


def run(config: HeadsConfig, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    corpus = CharCorpus.load(config.plays, config.max_chars)
    recall = RecallTask(config.recall_distance)
    tasks = {
        "shakespeare": (corpus.tokenizer.vocab_size, config.context, config.lm_steps,
                        lambda g: corpus.batch(g, config.batch, config.context),
                        lambda g: corpus.batch(g, config.batch, config.context, "val")),
        "recall": (recall.vocab_size, recall.length, config.recall_steps,
                   lambda g: recall.batch(g, config.batch),
                   lambda g: recall.batch(g, config.batch)),
    }  # fmt: skip
    result: dict = {"config": asdict(config), "parameters": {}, "runs": {}}
    for task, (vocab, length, steps, train_batch, val_batch) in tasks.items():
        for H in config.heads:
            per_seed = []
            for seed in config.seeds:
                model = _model(vocab, length, H, config, seed)
                result["parameters"].setdefault(task, {})[str(H)] = {
                    "total": model.num_parameters().total,
                    "attention": count_parameters(model.layers[0].self_attn).total,
                }
                g = torch.Generator().manual_seed(seed)
                trained = train_steps(model, lambda _, g=g, b=train_batch: b(g), steps,
                                      lr=config.lr, warmup=config.warmup,
                                      desc=f"{task} H={H} seed {seed}")  # fmt: skip
                gv = torch.Generator().manual_seed(10_000)  # the same held-out set for all
                scores = evaluate(model, [val_batch(gv) for _ in range(config.eval_batches)])
                per_seed.append({**scores, "loss_curve": trained.losses})
            result["runs"].setdefault(task, {})[str(H)] = {
                "per_seed": per_seed,
                **{
                    k: _mean([s[k] for s in per_seed])
                    for k in ("loss", "accuracy", "head_distance")
                },
            }
            if task == "shakespeare" and max(config.heads) == H:
                result["example"] = _example_maps(model, corpus, config)
    result["final_loss"] = {
        f"{task} H={H}": r["loss"] for task, runs in result["runs"].items() for H, r in runs.items()
    }
    write_json(out_dir / "heads.json", result)
    _figure(result, out_dir / "heads.png")
    return result


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


@torch.no_grad()
def _example_maps(model: GPT, corpus: CharCorpus, config: HeadsConfig) -> dict:
    """Every head's map of the last layer on one validation snippet, for the figure."""
    n = min(48, config.context)
    ids = corpus.val_ids[:n][None]  # (1, n)
    with capture(model) as maps:
        model(ids)
    last = maps[f"layers.{config.n_layers - 1}.self_attn"].dense()[0]  # (H, n, n)
    return {"text": corpus.tokenizer.decode(ids[0].tolist()), "weights": last.tolist()}


def _figure(result: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    example = result.get("example")
    H_max = len(example["weights"]) if example else 0
    fig = plt.figure(figsize=(15, 7.5 if example else 3.8))
    top = fig.add_gridspec(2 if example else 1, 3, hspace=0.45, wspace=0.3)
    heads = [int(h) for h in result["runs"]["shakespeare"]]

    def by_heads(ax, task: str, key: str) -> None:  # mean over seeds, every seed in grey
        runs = result["runs"][task]
        ys = [runs[str(h)][key] for h in heads]
        ax.plot(heads, [float("nan") if y is None else y for y in ys], "o-", label=task)
        for h in heads:
            seeds = [s[key] for s in runs[str(h)]["per_seed"] if s[key] is not None]
            ax.plot([h] * len(seeds), seeds, ".", color="grey", alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xticks(heads, [str(h) for h in heads])
        ax.set_xlabel("heads H (same D, same parameters)")

    ax = fig.add_subplot(top[0, 0])
    by_heads(ax, "shakespeare", "loss")
    ax.set_title("Shakespeare: validation loss (nats/char)")
    ax = fig.add_subplot(top[0, 1])
    for h in heads:  # the recall task is solved by every H: compare how fast
        curves = [s["loss_curve"] for s in result["runs"]["recall"][str(h)]["per_seed"]]
        mean = [sum(c[i] for c in curves) / len(curves) for i in range(len(curves[0]))]
        ax.plot(mean[:150], label=f"H = {h}", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("recall: training loss (mean over seeds)")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(top[0, 2])
    for task in result["runs"]:
        by_heads(ax, task, "head_distance")
    ax.set_ylim(0, 1)
    ax.set_title("mean pairwise head distance (0 = identical)")
    ax.legend(fontsize=8)
    if example:
        maps = top[1, :].subgridspec(1, H_max, wspace=0.1)
        for h, weights in enumerate(example["weights"]):
            ax = fig.add_subplot(maps[0, h])
            ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"head {h}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.text(0.5, 0.04, f"Shakespeare model, H = {H_max}, last layer, on "
                 f"{example['text'][:48]!r}", ha="center", fontsize=9)  # fmt: skip
    fig.suptitle("Multi-head vs one head at equal width and parameter count")
    return save_figure(fig, path)
