"""Training configuration: one frozen dataclass, named presets, TOML files, CLI flags."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CHOICES", "PRESETS", "TrainConfig", "check_fields", "load_config"]


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
    activation: str = "gelu"  # feed-forward: "gelu" (exact, erf), "gelu_tanh" (GPT-2's), "relu"
    dtype: str = "float32"  # "bfloat16": autocast matrix products, float32 master weights
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
        check_fields(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    "task": ("lm", "translate"),
    "tokenizer": ("char", "bpe"),
    "activation": ("gelu", "gelu_tanh", "relu"),
    "dtype": ("float32", "bfloat16"),
}
_TEXT = ("corpus", "out_dir")
# integers ≥ 1
_COUNTS = ("bpe_vocab", "max_words", "n_layers", "n_heads", "d_model", "d_ff", "context", "batch",
           "accumulate", "steps", "eval_interval", "eval_batches")  # fmt: skip
_NON_NEGATIVE_INTS = ("warmup", "seed")
# number fields: (lowest, is the lowest allowed, highest, is the highest allowed)
_RANGES = {"lr": (0.0, False, math.inf, False), "min_lr": (0.0, True, math.inf, False),
           "dropout": (0.0, True, 1.0, False), "weight_decay": (0.0, True, math.inf, False),
           "grad_clip": (0.0, True, math.inf, False), "val_fraction": (0.0, False, 1.0, False),
           "time_limit": (0.0, True, math.inf, False)}  # fmt: skip


def check_fields(config: TrainConfig) -> None:
    """Every field's type and range (run by the constructor): a ValueError naming the field,
    what it must be and the value given."""
    for name, choices in CHOICES.items():
        value = getattr(config, name)
        if value not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    for name in _TEXT:
        if not isinstance(getattr(config, name), str) or not getattr(config, name):
            raise ValueError(f"{name} must be a non-empty string; got {getattr(config, name)!r}")
    for names, lowest in ((_COUNTS, 1), (_NON_NEGATIVE_INTS, 0)):
        for name in names:
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise ValueError(f"{name} must be an integer >= {lowest}; got {value!r}")
    for name, (low, low_ok, high, high_ok) in _RANGES.items():
        value = getattr(config, name)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (is_number and math.isfinite(value) and (low <= value if low_ok else low < value)
                and (value <= high if high_ok else value < high)):  # fmt: skip
            bounds = f"{'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
            raise ValueError(f"{name} must be a finite number in {bounds}; got {value!r}")
    if config.min_lr > config.lr:
        raise ValueError(f"min_lr must be at most lr = {config.lr:g}; got {config.min_lr:g}")


PRESETS: dict[str, dict[str, Any]] = {
    # A character-level GPT sized for 2 CPU cores and ~15 minutes: bfloat16 (its loss follows
    # float32's step for step, docs/training.md) and no dropout (a 15-minute run underfits).
    "shakespeare-char": {
        "task": "lm", "corpus": "shakespeare", "tokenizer": "char", "n_layers": 4,
        "n_heads": 4, "d_model": 192, "d_ff": 768, "context": 128, "dropout": 0.0, "batch": 32,
        "dtype": "bfloat16", "steps": 4000, "lr": 2e-3, "min_lr": 2e-4, "warmup": 100,
        "eval_interval": 500, "time_limit": 900.0, "out_dir": "runs/shakespeare-char",
    },
    # English → Spanish on short Bible verses, BPE on both sides; bfloat16 (the same losses as
    # float32 at 1.5× the speed, docs/training.md), so 4,000 steps fit the 15 minutes.
    "translate-en-es": {
        "task": "translate", "corpus": "bible-en-es", "tokenizer": "bpe", "bpe_vocab": 4000,
        "max_words": 16, "activation": "relu", "n_layers": 3, "n_heads": 4, "d_model": 256,
        "d_ff": 1024, "context": 48, "dropout": 0.1, "batch": 32, "dtype": "bfloat16",
        "steps": 4000, "lr": 1e-3,
        "min_lr": 1e-4, "warmup": 200, "eval_interval": 250, "time_limit": 900.0,
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
        values.update(read_toml(Path(toml_path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training options: {unknown}; known: {sorted(known)}")
    return TrainConfig(**values)


def read_toml(path: Path) -> dict[str, Any]:
    """The table in the TOML file ``path`` (``train --config``), or a clear error."""
    if path.is_dir():
        raise ValueError(f"config {str(path)!r} is a folder; expected a TOML file")
    if not path.is_file():
        raise FileNotFoundError(f"config {str(path)!r}: no such file")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"config {str(path)!r} is not valid TOML: {err}") from None
