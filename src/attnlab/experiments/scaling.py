"""Why divide by √d_k? (the notes, §1)

Part 1, statistics: for query/key entries drawn with unit variance, q·k has variance d_k. Without
the 1/√d_k factor the softmax saturates as d_k grows: its entropy collapses, one key takes almost
all the weight, and the gradient that reaches q vanishes. Measured for each d_k, with and without
scaling, on ``samples`` random queries over ``n_keys`` keys.

Part 2, training: the same small single-head GPT (head size d_k = d_model) trained on a recall task
(the second half of each sequence repeats the first; loss on the second half) with the scale
1/√d_k and with 1.0, from the same initialisation and batches.

Dimension legend: S samples, N keys, d d_k.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from attnlab.experiments.common import train_steps
from attnlab.experiments.results import save_figure, write_json
from attnlab.functional.attention import scaled_dot_product_attention
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT

__all__ = ["ScalingConfig", "run"]


@dataclass(frozen=True)
class ScalingConfig:
    d_ks: tuple[int, ...] = (16, 64, 256, 1024)  # key sizes compared in part 1
    n_keys: int = 64  # keys per query
    samples: int = 2000  # random queries per d_k
    d_model: int = 256  # part 2: width = head size of the single-head model
    vocab: int = 32  # part 2: token vocabulary of the recall task
    half: int = 16  # part 2: sequence = half random tokens + the same again
    steps: int = 300  # part 2: AdamW steps per run
    batch: int = 32
    lr: float = 3e-3
    seed: int = 0

    @classmethod
    def quick(cls) -> ScalingConfig:
        return cls(samples=200, d_model=64, steps=30, batch=8)


def score_statistics(d_k: int, scaled: bool, config: ScalingConfig) -> dict[str, float]:
    g = torch.Generator().manual_seed(config.seed + d_k)
    q = torch.randn(config.samples, 1, d_k, generator=g, requires_grad=True)  # (S, 1, d)
    k = torch.randn(config.samples, config.n_keys, d_k, generator=g)  # (S, N, d)
    v = torch.randn(config.samples, config.n_keys, d_k, generator=g)
    scale = None if scaled else 1.0
    out, w = scaled_dot_product_attention(q, k, v, scale=scale, need_weights=True)
    (grad,) = torch.autograd.grad(out.sum(), q)
    # The softmax's own gradient: from the output back to the scores, before any 1/√d_k factor.
    scores = ((q @ k.transpose(-2, -1)) * (d_k**-0.5 if scaled else 1.0)).detach()  # (S, 1, N)
    scores.requires_grad_(True)
    (grad_scores,) = torch.autograd.grad((torch.softmax(scores, -1) @ v).sum(), scores)
    w = w.detach()
    entropy = -(w * w.clamp_min(1e-30).log()).sum(-1)  # (S, 1)
    return {
        "score_variance": float(scores.detach().var()),
        "grad_norm_scores": float(grad_scores.norm(dim=-1).mean()),
        "entropy_nats": float(entropy.mean()),
        "max_entropy_nats": math.log(config.n_keys),
        "largest_weight": float(w.amax(-1).mean()),
        "grad_norm_q": float(grad.norm(dim=-1).mean()),
    }


def recall_batch(config: ScalingConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    first = torch.randint(0, config.vocab, (config.batch, config.half), generator=g)
    ids = torch.cat((first, first), dim=1)  # (B, 2·half)
    targets = ids[:, 1:].clone()
    targets[:, : config.half - 1] = -100  # only the repeated half can be predicted
    return ids[:, :-1], targets


def train_curve(scaled: bool, config: ScalingConfig) -> list[float]:
    torch.manual_seed(config.seed)
    model = GPT(GPTConfig(vocab_size=config.vocab, max_len=2 * config.half, n_layers=2,
                          n_heads=1, d_model=config.d_model))  # fmt: skip
    if not scaled:
        for layer in model.layers:
            layer.self_attn.scale = 1.0
    g = torch.Generator().manual_seed(config.seed)
    desc = f"train ({'scaled' if scaled else 'unscaled'})"
    return train_steps(model, lambda _: recall_batch(config, g), config.steps, lr=config.lr,
                       clip=None, desc=desc).losses  # fmt: skip


def run(config: ScalingConfig, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    stats = {
        str(d): {m: score_statistics(d, m == "scaled", config) for m in ("scaled", "unscaled")}
        for d in tqdm(config.d_ks, desc="statistics", leave=False)
    }
    curves = {mode: train_curve(mode == "scaled", config) for mode in ("scaled", "unscaled")}
    result = {
        "config": asdict(config),
        "statistics": stats,
        "loss_curves": curves,
        "final_loss": {m: sum(c[-10:]) / len(c[-10:]) for m, c in curves.items()},  # last 10
    }
    write_json(out_dir / "scaling.json", result)
    _figure(result, out_dir / "scaling.png")
    return result


def _figure(result: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    d_ks = [int(d) for d in result["statistics"]]
    panels = [
        ("score_variance", "variance of scores", True),
        ("entropy_nats", "softmax entropy (nats)", False),
        ("largest_weight", "largest weight", False),
        ("grad_norm_scores", "‖∂out/∂scores‖ (softmax gradient)", True),
        ("grad_norm_q", "‖∂out/∂q‖", True),
    ]
    fig, axes = plt.subplots(1, 6, figsize=(24, 3.6))
    for ax, (key, title, log) in zip(axes[:5], panels, strict=True):
        for mode, style in (("scaled", "o-"), ("unscaled", "s--")):
            ax.plot(
                d_ks, [result["statistics"][str(d)][mode][key] for d in d_ks], style, label=mode
            )
        ax.set_xscale("log", base=2)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("d_k")
        ax.set_title(title)
        ax.legend(fontsize=8)
    ax = axes[5]
    for mode, curve in result["loss_curves"].items():
        ax.plot(curve, label=mode)
    ax.set_xlabel("step")
    ax.set_title(f"recall task loss, d_k = {result['config']['d_model']}")
    ax.legend(fontsize=8)
    fig.suptitle("Why divide by √d_k: unit-variance q, k", y=1.06)
    return save_figure(fig, path)
