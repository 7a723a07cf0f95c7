"""Training configuration: one frozen dataclass, named presets, TOML files, CLI flags."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PRESETS", "TrainConfig", "load_config"]


@dataclass(frozen=True)
class TrainConfig:
    task: str = "lm"  # "lm" (GPT on text) or "translate" (EncoderDecoder on verse pairs)
    corpus: str = "shakespeare"  # "shakespeare", "bible-en-es", or a path to a UTF-8 text file
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab: int = 4000  # BPE vocabulary size (per language for translation)
    max_words: int = 16  # translation: keep verses with at most this many English words
    n_layers: int = 4  # decoder (and encoder) layers
    n_heads: int = 4
    d_model: int = 256
    d_ff: int = 1024
    context: int = 128  # LM context length / translation max tokens per side
    dropout: float = 0.1
    batch: int = 32  # sequences per optimiser step, per process (before accumulation)
    accumulate: int = 1  # gradient accumulation steps per optimiser step
    steps: int = 2000  # optimiser steps
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 1e-4  # cosine floor
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    eval_interval: int = 200  # steps between validation runs (and checkpoints)
    eval_batches: int = 20
    val_fraction: float = 0.05  # last share of the corpus held out (deterministic split)
    time_limit: float = 0.0  # seconds; stop (and save) when exceeded, 0 = none
    seed: int = 1337
    out_dir: str = "runs/default"

    def __post_init__(self) -> None:
        if self.task not in ("lm", "translate"):
            raise ValueError(f"task must be 'lm' or 'translate'; got {self.task!r}")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"tokenizer must be 'char' or 'bpe'; got {self.tokenizer!r}")
        for name in ("n_layers", "n_heads", "d_model", "d_ff", "context", "batch", "accumulate",
                     "steps", "eval_interval", "eval_batches"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1); got {self.val_fraction}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # A character-level GPT sized for 2 CPU cores and ~15 minutes.
    "shakespeare-char": {
        "task": "lm", "corpus": "shakespeare", "tokenizer": "char", "n_layers": 4,
        "n_heads": 4, "d_model": 192, "d_ff": 768, "context": 128, "dropout": 0.1, "batch": 32,
        "steps": 1500, "lr": 2e-3, "min_lr": 2e-4, "warmup": 100, "eval_interval": 250,
        "time_limit": 900.0, "out_dir": "runs/shakespeare-char",
    },
    # English → Spanish on short Bible verses, BPE on both sides.
    "translate-en-es": {
        "task": "translate", "corpus": "bible-en-es", "tokenizer": "bpe", "bpe_vocab": 4000,
        "max_words": 16, "n_layers": 3, "n_heads": 4, "d_model": 256, "d_ff": 1024,
        "context": 48, "dropout": 0.1, "batch": 32, "steps": 3000, "lr": 1e-3, "min_lr": 1e-4,
        "warmup": 200, "eval_interval": 250, "time_limit": 900.0,
        "out_dir": "runs/translate-en-es",
    },
}  # fmt: skip


def load_config(preset: str | None = None, toml_path: str | Path | None = None,
                **overrides: Any) -> TrainConfig:  # fmt: skip
    """Defaults ← preset ← TOML file ← flags (later wins). Unknown keys are errors."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        values.update(PRESETS[preset])
    if toml_path is not None:
        with open(toml_path, "rb") as f:
            values.update(tomllib.load(f))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training options: {unknown}; known: {sorted(known)}")
    return TrainConfig(**values)
