"""Attention vs RNN on long-range dependencies (the notes, §attention vs recurrence).

The recall task: a sequence of ``d + offsets`` tokens of noise holds one *value* token (from
its own vocabulary) at a random position p < ``offsets`` and a *query* token exactly d positions
later; the answer at the query position is the value. Nothing else is scored. An RNN must carry
the value through d − 1 steps of noise; a Transformer's query can attend to it in one step.

Compared, at each distance d: a small causal Transformer (attnlab GPT with learned positions, as
GPT-2), PyTorch's ``nn.LSTM`` and ``nn.GRU``, their hidden sizes chosen to match the
Transformer's parameter count at that d (its position table grows with d). All train for the
same number of steps on the same batches; reported: accuracy on fresh sequences, and wall time
per epoch of ``epoch_sequences`` sequences (forward + backward + update), where the Transformer
processes all positions at once and the RNNs step through time.

Dimension legend: B batch, T = d + offsets, V vocabulary (values + noise + query).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.experiments.common import LMBatch, train_steps
from attnlab.experiments.results import save_figure, write_json
from attnlab.models.config import GPTConfig, ModelOutput
from attnlab.models.gpt import GPT
from attnlab.models.params import count_parameters
from attnlab.train.loop import LoopResult

__all__ = ["LongRangeConfig", "RecallTask", "RecurrentLM", "run", "train"]


@dataclass(frozen=True)
class RecallTask:
    distance: int  # d: positions from the value to the query
    values: int = 16  # value tokens 0..values−1; noise tokens values..2·values−1; query 2·values
    offsets: int = 8  # the value sits at a random position p ∈ [0, offsets)

    @property
    def vocab_size(self) -> int:
        return 2 * self.values + 1

    @property
    def length(self) -> int:
        return self.distance + self.offsets

    def batch(self, g: torch.Generator, batch: int) -> LMBatch:
        """ids (B, T) and targets (B, T): −100 everywhere except the value at the query."""
        ids = torch.randint(self.values, 2 * self.values, (batch, self.length), generator=g)
        value = torch.randint(0, self.values, (batch,), generator=g)
        p = torch.randint(0, self.offsets, (batch,), generator=g)
        rows = torch.arange(batch)
        ids[rows, p] = value
        ids[rows, p + self.distance] = 2 * self.values  # the query token
        targets = torch.full_like(ids, -100)
        targets[rows, p + self.distance] = value
        return ids, targets


class RecurrentLM(nn.Module):
    """Embedding → ``nn.LSTM`` or ``nn.GRU`` (batch-first) → linear read-out at every step."""

    def __init__(self, kind: str, vocab_size: int, d_embed: int, hidden: int) -> None:
        super().__init__()
        if kind not in ("lstm", "gru"):
            raise ValueError(f"kind must be 'lstm' or 'gru'; got {kind!r}")
        self.embedding = nn.Embedding(vocab_size, d_embed)
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(d_embed, hidden, batch_first=True)
        if kind == "lstm":  # forget-gate bias 1 (Jozefowicz et al., 2015): remember by default
            with torch.no_grad():
                for bias in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0):
                    bias[hidden : 2 * hidden].fill_(0.5)  # gates i, f, g, o: f sums to 1
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, input_ids: Tensor, targets: Tensor | None = None) -> ModelOutput:
        h, _ = self.rnn(self.embedding(input_ids))  # (B, T, hidden)
        logits = self.head(h)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return ModelOutput(logits, loss)


@dataclass(frozen=True)
class LongRangeConfig:
    distances: tuple[int, ...] = (8, 32, 128, 512)
    d_model: int = 64  # Transformer width (and the RNNs' embedding size)
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 400  # AdamW steps per model and distance
    batch: int = 32
    lr: float = 2e-3
    epoch_sequences: int = 1024  # "an epoch" for the timing column
    eval_sequences: int = 1024
    seed: int = 0

    @classmethod
    def quick(cls) -> LongRangeConfig:
        return cls(distances=(4, 16), d_model=16, n_heads=2, steps=20, batch=8,
                   epoch_sequences=64, eval_sequences=64)  # fmt: skip


def matched_hidden(kind: str, target: int, vocab: int, d_embed: int) -> int:
    """The hidden size whose RNN language model has the parameter count nearest ``target``."""
    gates = 4 if kind == "lstm" else 3

    def count(h: int) -> int:  # gates·(h·(d_embed + h) + 2h) + h·vocab + vocab + vocab·d_embed
        return gates * (h * (d_embed + h) + 2 * h) + h * vocab + vocab + vocab * d_embed

    # the real root of count(h) = target, then the nearer of the integers around it (the count
    # is quadratic in h, so rounding the root can pick the farther one)
    a, b = gates, gates * (d_embed + 2) + vocab
    c = vocab + vocab * d_embed - target
    root = (-b + math.sqrt(max(0, b * b - 4 * a * c))) / (2 * a)
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(sorted(candidates), key=lambda h: abs(count(h) - target))


def build(kind: str, task: RecallTask, config: LongRangeConfig, target: int = 0) -> nn.Module:
    torch.manual_seed(config.seed)
    if kind == "transformer":
        return GPT(GPTConfig(vocab_size=task.vocab_size, max_len=task.length,
                             n_layers=config.n_layers, n_heads=config.n_heads,
                             d_model=config.d_model))  # fmt: skip
    hidden = matched_hidden(kind, target, task.vocab_size, config.d_model)
    return RecurrentLM(kind, task.vocab_size, config.d_model, hidden)


def train(kind: str, task: RecallTask, config: LongRangeConfig, target: int = 0
          ) -> tuple[nn.Module, LoopResult]:  # fmt: skip
    """Build a model (:func:`build`) and train it for ``config.steps`` steps on the task's
    batches from a generator seeded by ``config.seed + d``: every kind sees the same batches."""
    model = build(kind, task, config, target)
    g = torch.Generator().manual_seed(config.seed + task.distance)
    batches = lambda _: task.batch(g, config.batch)  # noqa: E731
    trained = train_steps(model, batches, config.steps, lr=config.lr,
                          desc=f"{kind} d={task.distance}")  # fmt: skip
    return model, trained


@torch.no_grad()
def accuracy(model: nn.Module, task: RecallTask, config: LongRangeConfig) -> float:
    g = torch.Generator().manual_seed(config.seed + 10_000 + task.distance)  # unseen sequences
    correct = 0
    for start in range(0, config.eval_sequences, 256):
        ids, targets = task.batch(g, min(256, config.eval_sequences - start))
        logits = model(ids).logits  # (B, T, V)
        scored = targets != -100
        correct += int((logits[scored].argmax(-1) == targets[scored]).sum())
    return correct / config.eval_sequences


def run(config: LongRangeConfig, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    result: dict = {"config": asdict(config), "chance": 1 / RecallTask(1).values, "runs": {}}
    for d in config.distances:
        task = RecallTask(d)
        target = count_parameters(build("transformer", task, config)).total
        for kind in ("transformer", "lstm", "gru"):
            model, trained = train(kind, task, config, target)
            per_step = trained.seconds / config.steps
            result["runs"].setdefault(kind, {})[str(d)] = {
                "parameters": count_parameters(model).total,
                "hidden": getattr(getattr(model, "rnn", None), "hidden_size", config.d_model),
                "accuracy": accuracy(model, task, config),
                "seconds_per_epoch": per_step * config.epoch_sequences / config.batch,
                "final_train_loss": sum(trained.losses[-20:]) / len(trained.losses[-20:]),
                "loss_curve": trained.losses,
            }
    result["final_loss"] = {
        f"{kind} d={d}": r["final_train_loss"]
        for kind, runs in result["runs"].items() for d, r in runs.items()
    }  # fmt: skip
    write_json(out_dir / "long-range.json", result)
    _figure(result, out_dir / "long-range.png")
    return result


def _figure(result: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind, runs in result["runs"].items():
        ds = [int(d) for d in runs]
        params = runs[str(ds[0])]["parameters"]
        ax.plot(
            ds,
            [runs[str(d)]["accuracy"] for d in ds],
            "o-",
            label=f"{kind} ({params:,} params at d={ds[0]})",
        )
        bx.plot(ds, [runs[str(d)]["seconds_per_epoch"] for d in ds], "o-", label=kind)
    ax.axhline(result["chance"], color="grey", ls=":", lw=1, label="chance")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on fresh sequences")
    ax.set_title(f"recall at distance d ({result['config']['steps']} steps each)")
    bx.set_yscale("log")
    bx.set_ylabel(f"seconds per epoch ({result['config']['epoch_sequences']} sequences)")
    bx.set_title("training time (2 CPU cores)")
    for a in (ax, bx):
        a.set_xscale("log", base=2)
        a.set_xlabel("distance d")
        a.legend(fontsize=8)
    return save_figure(fig, path)
