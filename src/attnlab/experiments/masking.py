"""Why mask? (the notes, §masking)

Two identical character-level GPTs train on Shakespeare from the same initialisation and the same
batches; one has the causal mask, the other (``GPTConfig(causal=False)``) lets every position
read the whole window. The target at position t is the character at t + 1, which the unmasked
model can simply look up: its training loss falls towards zero. Then, for both:

- teacher-forced validation loss: the training objective on held-out text (future visible to
  the unmasked model, as in training);
- honest validation loss: each position predicted from its prefix only (the model is run on
  ids[:, :t+1] and scored at t), which is what generation sees;
- generated text from "ROMEO:" and the fraction of its words that are real (appear in the
  training text);
- :func:`attnlab.check_causal`, which perturbs future tokens and reports any position whose
  output changes.

Dimension legend: B batch, T window, V vocabulary.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from attnlab.experiments.common import CharCorpus, train_steps
from attnlab.experiments.results import save_figure, write_json
from attnlab.models.checks import check_causal
from attnlab.models.config import GPTConfig
from attnlab.models.generation import generate_sliding
from attnlab.models.gpt import GPT

__all__ = ["MaskingConfig", "run"]


@dataclass(frozen=True)
class MaskingConfig:
    plays: int | None = 6  # Shakespeare plays read (sorted order); None = all 38
    max_chars: int | None = None  # cut the text (quick runs)
    context: int = 64  # window T
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 1200
    batch: int = 32
    lr: float = 3e-3
    eval_batches: int = 4  # validation windows = eval_batches × batch
    sample_chars: int = 300
    prompt: str = "ROMEO:\n"
    seed: int = 0

    @classmethod
    def quick(cls) -> MaskingConfig:
        return cls(plays=1, max_chars=60_000, context=16, d_model=32, steps=25, batch=8,
                   eval_batches=1, sample_chars=40)  # fmt: skip


@torch.no_grad()
def validation_losses(model: GPT, corpus: CharCorpus, config: MaskingConfig) -> dict[str, float]:
    """Teacher-forced loss (the whole window visible, as in training), honest loss (each
    position scored from a forward pass over its prefix only) and the loss at the last position
    alone, where the two coincide: its target lies outside the window, so even the unmasked model
    was trained there without seeing the answer."""
    g = torch.Generator().manual_seed(config.seed + 1)
    forced, honest, last_position = [], [], []
    for _ in range(config.eval_batches):
        ids, targets = corpus.batch(g, config.batch, config.context, "val")  # (B, T)
        logits = model(ids).logits  # (B, T, V)
        forced.append(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
        last = torch.stack([model(ids[:, : t + 1]).logits[:, -1] for t in range(ids.shape[1])], 1)
        honest.append(F.cross_entropy(last.flatten(0, 1), targets.flatten()))  # last: (B, T, V)
        last_position.append(F.cross_entropy(logits[:, -1], targets[:, -1]))
    mean = lambda xs: float(torch.stack(xs).mean())  # noqa: E731
    return {"teacher_forced": mean(forced), "honest": mean(honest),
            "last_position": mean(last_position)}  # fmt: skip


def real_word_fraction(text: str, vocabulary: set[str]) -> float:
    """The fraction of generated letters that belong to words found in the training text."""
    words = re.findall(r"[a-z]+", text.lower())
    letters = sum(len(w) for w in words)
    return sum(len(w) for w in words if w in vocabulary) / letters if letters else 0.0


def sample(model: GPT, corpus: CharCorpus, config: MaskingConfig) -> str:
    """The prompt and ``sample_chars`` characters after it; past the window, each character is
    predicted from the last ``context - 1`` (:func:`attnlab.models.generation.generate_sliding`)."""
    tok = corpus.tokenizer
    ids = torch.tensor([tok.encode(config.prompt)])  # (1, T)
    g = torch.Generator().manual_seed(config.seed)
    out = generate_sliding(model, ids, config.sample_chars, temperature=0.8, top_k=20, generator=g)
    return tok.decode(out[0].tolist())


def run(config: MaskingConfig, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    corpus = CharCorpus.load(config.plays, config.max_chars)
    vocabulary = set(
        re.findall(r"[a-z]+", corpus.tokenizer.decode(corpus.train_ids.tolist()).lower())
    )
    V = corpus.tokenizer.vocab_size
    result: dict = {"config": asdict(config), "vocab_size": V, "uniform_loss": math.log(V),
                    "models": {}}  # fmt: skip
    for name, causal in (("masked", True), ("unmasked", False)):
        torch.manual_seed(config.seed)
        model = GPT(GPTConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=config.context,
                              n_layers=config.n_layers, n_heads=config.n_heads,
                              d_model=config.d_model, causal=causal))  # fmt: skip
        g = torch.Generator().manual_seed(config.seed)
        trained = train_steps(
            model, lambda _, g=g: corpus.batch(g, config.batch, config.context), config.steps,
            lr=config.lr, desc=f"train ({name})",
        )  # fmt: skip
        text = sample(model, corpus, config)
        report = check_causal(model, corpus.tokenizer.vocab_size, length=config.context)
        result["models"][name] = {
            "loss_curve": trained.losses,
            "final_train_loss": sum(trained.losses[-20:]) / len(trained.losses[-20:]),
            "validation": validation_losses(model, corpus, config),
            "sample": text,
            "real_word_fraction": real_word_fraction(text[len(config.prompt) :], vocabulary),
            "check_causal": {
                "causal": report.causal,
                "report": str(report),
                "leaks": [list(x) for x in report.leaks],
            },
            "seconds": trained.seconds,
        }
    result["final_loss"] = {n: m["final_train_loss"] for n, m in result["models"].items()}
    write_json(out_dir / "masking.json", result)
    _figure(result, out_dir / "masking.png")
    return result


def _figure(result: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    for name, m in result["models"].items():
        ax.plot(m["loss_curve"], label=f"{name}: training loss", lw=1)
    ax.axhline(result["uniform_loss"], color="grey", ls=":", lw=1, label="uniform guess")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.set_title("training loss (teacher forcing)")
    ax.legend(fontsize=8)
    names = list(result["models"])
    x = range(len(names))
    for offset, key in ((-0.2, "teacher_forced"), (0.2, "honest")):
        values = [result["models"][n]["validation"][key] for n in names]
        bars = bx.bar([i + offset for i in x], values, width=0.4, label=key.replace("_", "-"))
        bx.bar_label(bars, fmt="%.2f", fontsize=8)
    real = [result["models"][n]["real_word_fraction"] for n in names]
    labels = [
        f"{n}\n{r:.0%} of generated\nletters in real words"
        for n, r in zip(names, real, strict=True)
    ]
    bx.set_xticks(list(x), labels, fontsize=8)
    bx.set_title("validation loss: whole window vs prefix only")
    bx.legend(fontsize=8)
    fig.suptitle("Why mask: a GPT without the causal mask reads the next character", y=1.03)
    return save_figure(fig, path)
